"""examples/flower_app on Flower's Deployment Engine over loopback (`fl_core.flower.deploy.LocalDeployment`):
one `flower-superlink`, three `flower-supernode` processes (insecure, telemetry off, no runtime dependency
installation, a temporary FLWR_HOME) and `flwr run` to completion; one SuperNode is killed mid-run and
the run still completes (the round it left finishes without it or aborts cleanly, the next one runs).
Every process is stopped by its PID. Slow (minutes: Flower starts a ClientApp process per message), so
CI runs it once per run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from fl_core.flower.deploy import LocalDeployment  # noqa: E402

ROOT = Path(__file__).parents[2]
APP = ROOT / "examples" / "flower_app"


def test_flwr_run_completes_and_survives_a_killed_supernode(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    with LocalDeployment(3, pythonpath=[str(ROOT)], workdir=tmp_path) as dep:
        settings = (
            "num-server-rounds=3 stage-timeout=90.0 data.num_clients=3 secagg.dropout_tolerance=0.5 "
            f'summary-file="{summary}"'
        )
        dep.run(APP, run_config=settings)
        assert dep.wait_for("run", r"\[ROUND 2/3\]", 900), dep.log("run")[-3000:]
        dep.kill("supernode2")  # a SuperNode dies mid-run
        assert dep.wait_for_file(summary, 1500), dep.log("run")[-3000:]
    done = json.loads(summary.read_text())
    rounds = {r["round"]: r for r in done["rounds"]}
    assert set(rounds) == {1, 2, 3}, done
    assert (rounds[1]["survivors"], rounds[1]["started"], rounds[1]["aborted"]) == (3, 3, None)
    # the round it left finishes without it, or aborts cleanly (nothing released, nothing charged)
    assert rounds[2]["aborted"] is None or rounds[2]["survivors"] == 0
    assert rounds[3]["aborted"] is None and rounds[3]["survivors"] == 2  # the next round runs with the rest
    assert 0.0 <= done["final"]["accuracy"] <= 1.0 and done["epsilon"]["server_knowing_cohort"] > 0
    for p in dep.procs.values():  # every process it started has exited
        assert p.poll() is not None
