"""privagg audit / sweep / report from the command line: they write what they say, and bad input is one
line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from privagg.cli import main

TINY = ["data.dataset=breast_cancer", "model.name=logreg", "data.num_clients=6", "run.rounds=2",
        "train.local_epochs=1", "centralized.enabled=false"]  # fmt: skip


def _sets(items: list[str]) -> list[str]:
    return [x for item in items for x in ("--set", item)]


def test_audit_writes_its_report_into_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    extra = ["audit.canary_clients=8", "dp.mode=central", "dp.noise_multiplier=1.0", "dp.seed=1"]
    assert main(["run", *_sets([*TINY, *extra]), "--out", str(run), "-q"]) == 0
    assert main(["audit", str(run), "--attacks", "loss,canary", "--shadows", "2", "-q"]) == 0
    report = json.loads((run / "audit.json").read_text())
    assert set(report["audits"]) == {"loss", "canary"}
    assert (run / "audit.md").is_file()


def test_audit_refuses_what_does_not_fit(tmp_path: Path, capsys) -> None:
    assert main(["audit", str(tmp_path / "nothing"), "-q"]) == 2
    assert capsys.readouterr().err.startswith("error:")
    run = tmp_path / "run"
    assert main(["run", *_sets(TINY), "--out", str(run), "-q"]) == 0
    capsys.readouterr()
    assert main(["audit", str(run), "--attacks", "canary", "-q"]) == 2  # a run without canaries
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_sweep_then_report(tmp_path: Path) -> None:
    spec = tmp_path / "sweep.toml"
    spec.write_text(
        "seeds = [0]\n"
        + '[base]\nrun = {rounds = 2}\ndata = {dataset = "breast_cancer", num_clients = 4}\n'
        + 'model = {name = "logreg"}\ncentralized = {enabled = false}\ntrain = {local_epochs = 1}\n'
        + '[grid]\n"train.lr" = [0.05, 0.1]\n'
    )
    assert main(["sweep", str(spec), "--out", str(tmp_path / "sw"), "--jobs", "1", "-q"]) == 0
    assert main(["report", str(tmp_path / "sw"), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.html").is_file() and (tmp_path / "rep" / "results.csv").is_file()
    # resumed: nothing runs again
    assert main(["sweep", str(spec), "--out", str(tmp_path / "sw"), "--jobs", "1", "-q"]) == 0


def test_sweep_with_an_unknown_key_is_one_line(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text('[grid]\n"train.lrr" = [0.1, 0.2]\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "lrr" in err
    assert not (tmp_path / "sw").exists()
