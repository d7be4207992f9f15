"""Crash and resume: a checkpoint after every round; a resumed run ends with the same model and ledger as
an uninterrupted one, charges no round twice, and a corrupted or foreign checkpoint is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fl_core.config import build_config
from fl_core.errors import RunDirectoryError
from fl_core.experiment import run_experiment
from fl_core.rundir import read_run
from privagg.cli import main

PRIVATE = [
    "data.dataset=breast_cancer",
    "model.name=mlp",
    "data.num_clients=8",
    "train.local_epochs=1",
    "centralized.enabled=false",
    "strategy.name=fedadam",  # server optimizer moments must survive too
    "secagg.enabled=true",
    "dp.mode=distributed",
    "dp.noise_multiplier=0.8",
    "dp.seed=5",
    "sampling.dropout_rate=0.1",
]


class Crash(Exception):
    pass


def _rows(path: Path) -> list[dict]:
    rows = [json.loads(s) for s in (path / "metrics.jsonl").read_text().splitlines()]
    timing = ("wall_s", "sim_round_s")
    return [{k: v for k, v in r.items() if k not in timing and "cpu" not in k} for r in rows]


def _same_run(a: Path, b: Path) -> None:
    ra, rb = read_run(a), read_run(b)
    np.testing.assert_array_equal(ra.final, rb.final)
    assert ra.privacy["ledger"] == rb.privacy["ledger"]
    assert ra.privacy["epsilon"] == rb.privacy["epsilon"]
    assert _rows(a) == _rows(b)
    assert ra.membership["participants"] == rb.membership["participants"]


def test_a_crashed_run_resumed_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    cfg = build_config(overrides=[*PRIVATE, "run.rounds=6"])
    run_experiment(cfg, out=tmp_path / "whole")

    def crash_after_three(rec) -> None:
        if rec.round == 3:
            raise Crash

    with pytest.raises(Crash):
        run_experiment(cfg, out=tmp_path / "cut", on_round=crash_after_three)
    partial = tmp_path / "cut.partial"
    assert (partial / "checkpoint.json").is_file() and len(_rows(partial)) == 3
    res = run_experiment(cfg, out=tmp_path / "cut", resume=True)
    assert [r.round for r in res.history] == [1, 2, 3, 4, 5, 6]
    _same_run(tmp_path / "whole", tmp_path / "cut")
    # six rounds charged once each
    ledger = read_run(tmp_path / "cut").privacy["ledger"]
    released = [r["round"] for r in _rows(tmp_path / "cut") if not r["secagg_aborted"]]
    assert [e["round_id"] for e in ledger["entries"]] == released  # each charged once
    assert not (tmp_path / "cut" / "checkpoint.json").exists()  # a finished run keeps no resume point


def test_a_sigkilled_privagg_run_resumes_to_the_same_model_and_ledger(tmp_path: Path) -> None:
    sets = [x for item in [*PRIVATE, "run.rounds=24"] for x in ("--set", item)]
    assert main(["run", *sets, "--out", str(tmp_path / "whole"), "-q"]) == 0
    cmd = [sys.executable, "-m", "privagg.cli", "run", *sets, "--out", str(tmp_path / "killed"), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "killed.partial" / "metrics.jsonl"
    deadline = time.monotonic() + 600  # a loaded machine can take minutes to import torch and train
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(metrics.read_text().splitlines())
    assert 3 <= done_before < 24
    assert main(["run", "--resume", str(tmp_path / "killed.partial"), "-q"]) == 0
    _same_run(tmp_path / "whole", tmp_path / "killed")
    ledger = read_run(tmp_path / "killed").privacy["ledger"]
    ids = [e["round_id"] for e in ledger["entries"]]
    released = [r["round"] for r in _rows(tmp_path / "killed") if not r["secagg_aborted"]]
    assert ids == released and len(released) > 18  # each released round charged once, aborted ones never


def _crashed(tmp_path: Path) -> Path:
    cfg = build_config(overrides=[*PRIVATE, "run.rounds=4"])

    def crash(rec) -> None:
        if rec.round == 2:
            raise Crash

    with pytest.raises(Crash):
        run_experiment(cfg, out=tmp_path / "r", on_round=crash)
    return tmp_path / "r.partial"


@pytest.mark.parametrize("damage", ["truncate_json", "flip_arrays", "other_config", "missing"])
def test_a_damaged_or_foreign_checkpoint_is_refused(tmp_path: Path, damage: str) -> None:
    partial = _crashed(tmp_path)
    cfg = build_config(overrides=[*PRIVATE, "run.rounds=4"])
    if damage == "truncate_json":
        text = (partial / "checkpoint.json").read_text()
        (partial / "checkpoint.json").write_text(text[: len(text) // 2])
        needle = "corrupt"
    elif damage == "flip_arrays":
        (arrays,) = partial.glob("checkpoint-*.npz")  # one pair at a time
        blob = bytearray(arrays.read_bytes())
        blob[len(blob) // 2] ^= 0x01
        arrays.write_bytes(bytes(blob))
        needle = "hash"
    elif damage == "other_config":
        cfg = build_config(overrides=[*PRIVATE, "run.rounds=5"])
        needle = "differs"
    else:
        (partial / "checkpoint.json").unlink()
        needle = "no checkpoint"
    with pytest.raises(RunDirectoryError, match=needle):
        run_experiment(cfg, out=tmp_path / "r", resume=True)
    assert partial.is_dir()  # nothing was deleted


def test_resume_from_the_cli_refuses_what_it_cannot_continue(tmp_path: Path, capsys) -> None:
    assert main(["run", "--resume", str(tmp_path / "none.partial"), "-q"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path / "plain"), "-q"]) == 2
    assert "NAME.partial" in capsys.readouterr().err


def test_a_crash_between_the_two_checkpoint_files_leaves_a_resumable_pair(tmp_path: Path) -> None:
    # review: the npz was replaced before the json, so a crash between the renames lost the run
    from fl_core import checkpoint

    state = {"round": 1, "weights": np.arange(4.0), "note": "one"}
    checkpoint.save(tmp_path, state, "cfg")
    (tmp_path / "checkpoint-2.npz").write_bytes(b"half-written next round")  # the crash
    back = checkpoint.load(tmp_path, "cfg")
    assert back["round"] == 1 and np.array_equal(back["weights"], np.arange(4.0))
    checkpoint.save(tmp_path, {**state, "round": 2}, "cfg")
    assert [p.name for p in tmp_path.glob("checkpoint-*.npz")] == ["checkpoint-2.npz"]
