"""examples/flower_app on Flower's Deployment Engine over loopback (`fl_core.flower.deploy.LocalDeployment`):
one `flower-superlink`, three `flower-supernode` processes (insecure, telemetry off, no runtime dependency
installation, a temporary FLWR_HOME) and `flwr run` to completion; one SuperNode is killed mid-run and
the run still completes (the round it left finishes without it or aborts cleanly, the next one runs).
Every process is stopped by its PID. Slow (minutes: Flower starts a ClientApp process per message), so
CI runs it once per run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from fl_core.flower.deploy import LocalDeployment  # noqa: E402

ROOT = Path(__file__).parents[2]
APP = ROOT / "examples" / "flower_app"
ROUND_LINE = r"privagg round (\d): (\d) of (\d) survived, aborted=(\S+)"


def test_flwr_run_completes_and_survives_a_killed_supernode(tmp_path: Path) -> None:
    with LocalDeployment(3, pythonpath=[str(ROOT)], workdir=tmp_path) as dep:
        settings = "num-server-rounds=3 stage-timeout=90.0 data.num_clients=3 secagg.dropout_tolerance=0.5"
        run = dep.run(APP, run_config=settings)
        assert dep.wait_for("run", r"\[ROUND 2/3\]", 900), dep.log("run")[-3000:]
        dep.kill("supernode2")  # a SuperNode dies mid-run
        run.wait(timeout=1200)
        text = dep.log("run")
    rounds = {int(r): (int(s), int(n), a) for r, s, n, a in re.findall(ROUND_LINE, text)}
    assert set(rounds) == {1, 2, 3}, text[-3000:]
    assert rounds[1] == (3, 3, "None")  # the whole cohort, securely summed
    survived, _, aborted = rounds[3]
    assert aborted == "None" and survived == 2  # the next round runs with the two that are left
    assert rounds[2][2] == "None" or "ThresholdError" in text  # finished without it, or aborted cleanly
    assert re.search(r"privagg: final accuracy \{.*'accuracy': 0\.\d+", text), text[-2000:]
    for p in dep.procs.values():  # every process it started has exited
        assert p.poll() is not None
