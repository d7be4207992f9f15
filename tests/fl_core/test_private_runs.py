"""Private runs end to end: epsilon per round in metrics.jsonl, privacy.json, budget stop, local DP-SGD."""

from __future__ import annotations

import json
from pathlib import Path

from fl_core.config import build_config
from fl_core.experiment import run_experiment
from privagg.cli import main

TINY = [
    "data.dataset=breast_cancer",
    "model.name=logreg",
    "data.num_clients=6",
    "train.local_epochs=1",
    "centralized.enabled=false",
]
CENTRAL = ["dp.mode=central", "sampling.mode=poisson", "sampling.rate=0.5", "dp.noise_multiplier=1.0"]


def _run(out: Path, settings: list[str]) -> list[dict]:
    """`privagg run` with TINY + settings; returns the metrics.jsonl rows."""
    args = ["run", "--out", str(out), "--quiet"]
    for s in [*TINY, *settings]:
        args += ["--set", s]
    assert main(args) == 0
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_central_dp_run_writes_epsilon_per_round_and_privacy_json(tmp_path: Path) -> None:
    out = tmp_path / "run"
    rows = _run(out, ["run.rounds=3", *CENTRAL, "dp.seed=1"])
    eps = [r["epsilon"] for r in rows]
    assert len(eps) == 3 and 0 < eps[0] < eps[1] < eps[2]
    privacy = json.loads((out / "privacy.json").read_text())
    assert privacy["epsilon"] == eps[-1] and privacy["dp_mode"] == "central"
    assert privacy["epsilon_pld"] <= privacy["epsilon_rdp"]
    assert "NOT for production" in privacy["warning"]  # a seeded run says so
    summary = json.loads((out / "summary.json").read_text())
    assert summary["privacy"]["noise_seeded"] is True


def test_budget_stop_keeps_everything_and_records_why(tmp_path: Path) -> None:
    out = tmp_path / "run"
    rows = _run(out, ["run.rounds=50", *CENTRAL, "dp.max_epsilon=4.0"])
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < len(rows) < 50 and summary["rounds"] == len(rows)
    assert "max_epsilon" in summary["stopped"] and rows[-1]["epsilon"] <= 4.0


def test_local_dp_sgd_run_reports_sample_level_epsilon() -> None:
    res = run_experiment(
        build_config(
            overrides=[*TINY, "run.rounds=2", "dp.mode=local", "dp.noise_multiplier=1.0", "dp.clip_norm=1.0"]
        )
    )
    eps = [r.extra["epsilon"] for r in res.history]
    assert 0 < eps[0] < eps[1]
    assert res.privacy["statement"].endswith("after 2 rounds") and "sample-level" in res.privacy["statement"]
    assert len(res.privacy["client_epsilons"]) == 6
    assert res.privacy["grad_sample_mode"] == ["ghost"]  # logreg: all layers ghost-capable


def test_target_epsilon_is_calibrated_and_never_exceeded() -> None:
    res = run_experiment(
        build_config(
            overrides=[
                *TINY,
                "run.rounds=4",
                "dp.mode=central",
                "sampling.mode=poisson",
                "sampling.rate=0.5",
                "dp.target_epsilon=8.0",
            ]
        )
    )
    assert res.privacy["epsilon"] <= 8.0
    assert res.privacy["epsilon"] > 7.0  # calibration lands just under the target, not far below


def test_privacy_json_names_the_adversary(tmp_path: Path) -> None:
    # distributed DP exists for the server, which draws the cohorts: its epsilon (no amplification) is
    # the headline and what target_epsilon calibrates; an observer of the model gets amplification
    out = tmp_path / "dist"
    sets = ["run.rounds=3", "secagg.enabled=true", "dp.mode=distributed", "sampling.mode=poisson",
            "sampling.rate=0.5", "dp.target_epsilon=4.0", "dp.seed=2"]  # fmt: skip
    _run(out, sets)
    privacy = json.loads((out / "privacy.json").read_text())
    by = privacy["epsilon_by_adversary"]
    assert privacy["headline_adversary"] == "server_knowing_cohort"
    assert privacy["epsilon"] == by["server_knowing_cohort"] <= 4.0
    assert by["observer_of_model"] < by["server_knowing_cohort"]
    assert "against the server" in privacy["statement"]
    central = tmp_path / "central"
    _run(central, ["run.rounds=3", *CENTRAL, "dp.seed=1"])
    privacy = json.loads((central / "privacy.json").read_text())
    assert privacy["headline_adversary"] == "observer_of_model"
    assert privacy["epsilon"] == privacy["epsilon_by_adversary"]["observer_of_model"]


def test_local_dp_statement_describes_per_client_ledgers(tmp_path: Path) -> None:
    # review: with fixed sampling privacy.json said "replace-one (fixed cohorts)", a client-level notion
    out = tmp_path / "local"
    _run(out, ["run.rounds=2", "dp.mode=local", "dp.noise_multiplier=1.0"])
    privacy = json.loads((out / "privacy.json").read_text())
    assert "training example" in privacy["neighbouring"] and "fixed cohorts" not in privacy["neighbouring"]
    assert set(privacy["client_epsilons"]) == {str(i) for i in range(6)}
