"""`privagg run` end to end on a tiny config: every artifact, documented columns; bad input exits 2."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import tomllib

from privagg.cli import main

TINY = [
    "--set",
    "data.dataset=breast_cancer",
    "--set",
    "model.name=logreg",
    "--set",
    "data.num_clients=4",
    "--set",
    "run.rounds=2",
    "--set",
    "train.local_epochs=1",
]
COLUMNS = [
    "round",
    "sampled",
    "completed",
    "dropped",
    "rejected",
    "train_loss",
    "test_loss",
    "test_accuracy",
    "bytes_down",
    "bytes_up",
    "wall_s",
    "sim_round_s",
]


def test_run_writes_every_artifact(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", *TINY, "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "config.toml",
        "membership.json",
        "metrics.csv",
        "metrics.jsonl",
        "model.npz",
        "privacy.json",
        "summary.json",
    ]
    cfg = tomllib.loads((out / "config.toml").read_text())
    assert cfg["data"]["num_clients"] == 4 and cfg["run"]["rounds"] == 2 and cfg["model"]["name"] == "logreg"
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in lines] == [1, 2]
    assert list(lines[0]) == COLUMNS
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == COLUMNS and len(rows) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["rounds"] == 2
        and 0 <= summary["fl"]["accuracy"] <= 1
        and "accuracy" in summary["centralized"]
    )
    assert not (tmp_path / "run.partial").exists()


def test_existing_folder_refused_unless_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["run", *TINY, "--out", str(out), "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err
    assert (out / "keep.txt").exists()
    assert main(["run", *TINY, "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert not (out / "keep.txt").exists() and (out / "summary.json").exists()


def test_failed_run_leaves_only_a_partial_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # a learning rate this large makes regression diverge during the rounds: the run fails mid-way
    diverge = ["--set", "data.dataset=diabetes", "--set", "model.name=mlp", "--set", "train.lr=1e6"]
    code = main(["run", *TINY, *diverge, "--out", str(out), "--quiet"])
    assert code == 2
    assert not out.exists()
    partial = tmp_path / "run.partial"
    assert (partial / "error.txt").exists() and not (partial / "summary.json").exists()
    error = (partial / "error.txt").read_text()
    assert "TrainingDivergedError" in error and "lower train.lr" in error


def test_bad_key_is_one_line_exit_2_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "privagg.cli",
            "run",
            "--set",
            "data.num_clientz=3",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown config key 'data.num_clientz'"
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.partial").exists()


def test_version_and_short_help() -> None:
    from privagg import __version__

    out = subprocess.run(
        [sys.executable, "-m", "privagg.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"privagg {__version__}"
    cmd = [sys.executable, "-m", "privagg.cli", "-h"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "Usage" in out.stdout and "budget" in out.stdout


def test_commands_that_need_no_training_never_import_torch() -> None:
    # --help, --version and budget answer without torch or opacus (they cost seconds to import)
    probe = (
        "import sys; from privagg.cli import main; import privagg, fl_core, dp; "
        "rc = main(['budget', '--sampling-rate', '0.01', '-r', '100', '-z', '1.0', '--json']); "
        "assert rc == 0, rc; "
        "bad = [m for m in ('torch', 'opacus') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True)


def test_quiet_prints_only_the_result(tmp_path: Path, capsys) -> None:
    assert main(["run", *TINY, "--out", str(tmp_path / "q"), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "resolved config" not in printed and "round " not in printed
    assert "done:" in printed and "run folder" in printed
