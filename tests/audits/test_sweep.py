"""Sweeps: expansion and naming, one-line errors before anything runs, failing points, resume, folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import audits.sweep as sweep_mod
from audits.sweep import (
    SWEEP_FILE,
    SweepFolderError,
    SweepProgress,
    SweepSpecError,
    load_spec,
    run_sweep,
)

#: A base config whose runs take well under a second: logistic regression, 3 clients, 2 rounds.
TINY: dict[str, Any] = {
    "run": {"rounds": 2},
    "centralized": {"enabled": False},
    "model": {"name": "logreg"},
    "data": {"num_clients": 3, "partition": "iid"},
    "train": {"local_epochs": 1},
}


def _spec(**extra: Any) -> dict[str, Any]:
    return {"base": TINY, **extra}


# ---------------------------------------------------------------- expansion


def test_grid_zip_and_seeds_expand_to_the_cartesian_product() -> None:
    spec = load_spec(
        _spec(
            grid={"data.partition": ["iid", "dirichlet"], "train.lr": [0.05, 0.1, 0.2]},
            zip={"data.num_clients": [3, 4], "sampling.clients_per_round": [2, 3]},
            seeds=[0, 1],
        )
    )
    assert len(spec.points) == 2 * 3 * 2 * 2
    names = [p.name for p in spec.points]
    assert len(set(names)) == len(names)
    assert set(spec.varying) == {
        "data.partition",
        "train.lr",
        "data.num_clients",
        "sampling.clients_per_round",
    }
    # Zipped keys move together: never 3 clients with 3 per round.
    pairs = {
        (p.config["data"]["num_clients"], p.config["sampling"]["clients_per_round"]) for p in spec.points
    }
    assert pairs == {(3, 2), (4, 3)}
    # Every point is a resolved config (defaults filled in), with its seed.
    first = spec.points[0]
    assert first.config["run"]["seed"] == first.seed == 0 and first.config["run"]["rounds"] == 2
    assert first.name == "partition=iid_lr=0.05_num_clients=3_clients_per_round=2_seed=0"


def test_nested_tables_mean_the_same_as_dotted_keys() -> None:
    dotted = load_spec(_spec(grid={"dp.clip_norm": [0.5, 1.0]}, seeds=[0]))
    nested = load_spec(_spec(grid={"dp": {"clip_norm": [0.5, 1.0]}}, seeds=[0]))
    assert [p.config for p in dotted.points] == [p.config for p in nested.points]
    assert [p.name for p in dotted.points] == ["clip_norm=0.5_seed=0", "clip_norm=1_seed=0"]


def test_groups_union_with_shared_grid_and_duplicates_run_once() -> None:
    spec = load_spec(
        _spec(
            seeds=[0],
            grid={"train.lr": [0.05, 0.1]},
            group=[
                {"name": "iid", "set": {"data.partition": "iid"}},
                {"name": "skew", "set": {"data.partition": "dirichlet"}, "grid": {"data.alpha": [0.1, 1.0]}},
                {"name": "again", "set": {"data.partition": "iid"}},  # the same configs as group "iid"
            ],
        )
    )
    assert len(spec.points) == 2 + 2 * 2
    assert {p.group for p in spec.points} == {"iid", "skew"}
    assert "skew_partition=dirichlet_lr=0.05_alpha=0.1_seed=0" in [p.name for p in spec.points]


def test_device_mixes_as_grid_values_get_readable_names() -> None:
    spec = load_spec(
        _spec(grid={"devices.mix": [{"iot_sensor": 1}, {"flagship_phone": 2, "tablet": 1}]}, seeds=[0])
    )
    assert [p.name for p in spec.points] == ["mix=iot_sensor_seed=0", "mix=flagship_phone2+tablet1_seed=0"]
    assert spec.points[1].config["devices"]["mix"] == {"flagship_phone": 2.0, "tablet": 1.0}


def test_spec_hash_is_stable_and_covers_the_spec(tmp_path: Path) -> None:
    a = load_spec(_spec(grid={"train.lr": [0.1, 0.2]}))
    b = load_spec(_spec(grid={"train.lr": [0.1, 0.2]}))
    c = load_spec(_spec(grid={"train.lr": [0.1, 0.3]}))
    assert a.spec_hash == b.spec_hash != c.spec_hash
    # A base given as a file is hashed by its contents: editing the file changes the hash.
    base = tmp_path / "base.toml"
    base.write_text("[run]\nrounds = 2\n")
    spec_file = tmp_path / "sweep.toml"
    spec_file.write_text('base = "base.toml"\nseeds = [0]\n[grid]\n"train.lr" = [0.1, 0.2]\n')
    first = load_spec(spec_file)
    assert first.points[0].config["run"]["rounds"] == 2
    base.write_text("[run]\nrounds = 3\n")
    assert load_spec(spec_file).spec_hash != first.spec_hash


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (_spec(grid={"dp.bogus": [1, 2]}), "unknown config key 'dp.bogus'"),
        (_spec(grid={"rounds": [1, 2]}), "unknown config key 'rounds'"),
        (_spec(grid={}), "grid is empty"),
        (_spec(), "the sweep is empty"),
        (_spec(grid={"train.lr": []}), "'train.lr' has an empty list"),
        (_spec(grid={"train.lr": 0.1}), "must be a list"),
        (_spec(grid={"dp.mode": ["none", "bogus"]}), r"point dp=bogus_seed=0: config key 'dp.mode'"),
        (_spec(grid={"train.lr": [0.1, -1.0]}), "config key 'train.lr'"),
        (_spec(zip={"train.lr": [0.1, 0.2], "data.alpha": [1.0]}), "one length"),
        (_spec(grids={"train.lr": [0.1]}), r"unknown sweep key\(s\) \['grids'\]"),
        (_spec(grid={"train.lr": [0.1, 0.2]}, seeds=[]), "seeds must be"),
        (_spec(grid={"train.lr": [0.1, 0.2]}, seeds=[1, 1]), "seeds must be"),
        (_spec(grid={"run.seed": [1, 2]}), "top-level 'seeds"),
        (_spec(group=[{"name": "a", "sett": {}}]), r"unknown key\(s\) \['sett'\]"),
        ({"base": "missing.toml", "grid": {"train.lr": [0.1]}}, "does not exist"),
    ],
)
def test_bad_specs_are_one_line_errors_before_anything_runs(
    spec: dict[str, Any], match: str, tmp_path: Path
) -> None:
    with pytest.raises(SweepSpecError, match=match) as info:
        run_sweep(spec, tmp_path / "out", jobs=1)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- running


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the runs the sweep starts (in this process, jobs=1), still running each for real."""
    calls: list[str] = []
    real = sweep_mod._execute

    def counted(config: Any, folder: Path) -> None:
        calls.append(folder.name)
        real(config, folder)

    monkeypatch.setattr(sweep_mod, "_execute", counted)
    return calls


def test_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    # 'natural' needs site ids, which digits has not: that point fails at run time, the others run.
    spec = _spec(grid={"data.partition": ["iid", "natural", "dirichlet"]}, seeds=[0])
    events: list[SweepProgress] = []
    result = run_sweep(spec, tmp_path, jobs=1, progress=events.append)
    assert result.failed == ("partition=natural_seed=0",)
    assert result.ran == ("partition=iid_seed=0", "partition=dirichlet_seed=0")
    assert [e.finished for e in events] == [1, 2, 3] and all(e.total == 3 for e in events)
    state = json.loads((tmp_path / SWEEP_FILE).read_text())
    assert state["failed"] == ["partition=natural_seed=0"]
    failed = next(p for p in state["points"] if p["name"] == "partition=natural_seed=0")
    assert failed["status"] == "failed" and failed["error"].startswith("PartitionError: scheme 'natural'")
    for name in result.ran:
        summary = json.loads((tmp_path / "runs" / name / "summary.json").read_text())
        assert summary["rounds"] == 2
    assert not (tmp_path / "runs" / "partition=natural_seed=0").exists()


def test_resume_skips_finished_points_and_reruns_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting(monkeypatch)
    spec = _spec(grid={"train.lr": [0.05, 0.1, 0.2]}, seeds=[0])
    first = run_sweep(spec, tmp_path, jobs=1)
    assert len(calls) == 3 and len(first.ran) == 3
    runs = tmp_path / "runs"
    stamps = {n: (runs / n / "summary.json").stat().st_mtime_ns for n in first.ran}
    # Simulate an interruption: one point left half-written (its folder still .partial).
    victim = "lr=0.1_seed=0"
    (runs / victim).rename(runs / f"{victim}.partial")
    (runs / f"{victim}.partial" / "summary.json").unlink()
    calls.clear()
    second = run_sweep(spec, tmp_path, jobs=1)
    assert calls == [victim]
    assert second.ran == (victim,) and set(second.skipped) == set(first.ran) - {victim}
    for name in second.skipped:
        assert (runs / name / "summary.json").stat().st_mtime_ns == stamps[name]
    assert not (runs / f"{victim}.partial").exists() and (runs / victim / "summary.json").is_file()
    calls.clear()
    third = run_sweep(spec, tmp_path, jobs=1)
    assert calls == [] and len(third.skipped) == 3


def test_a_folder_from_another_spec_or_not_a_sweep_is_refused(tmp_path: Path) -> None:
    run_sweep(_spec(grid={"train.lr": [0.05, 0.1]}), tmp_path / "a", jobs=1)
    with pytest.raises(SweepFolderError, match="different spec"):
        run_sweep(_spec(grid={"train.lr": [0.05, 0.2]}), tmp_path / "a", jobs=1)
    other = tmp_path / "b"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(SweepFolderError, match="not a sweep folder"):
        run_sweep(_spec(grid={"train.lr": [0.05, 0.1]}), other, jobs=1)
    with pytest.raises(SweepSpecError, match="jobs"):
        run_sweep(_spec(grid={"train.lr": [0.05, 0.1]}), tmp_path / "c", jobs=0)


def test_parallel_workers_write_the_same_runs_as_one_process(tmp_path: Path) -> None:
    spec = _spec(grid={"data.partition": ["iid", "natural", "dirichlet"]}, seeds=[0])
    parallel = run_sweep(spec, tmp_path / "par", jobs=2)
    assert set(parallel.ran) == {"partition=iid_seed=0", "partition=dirichlet_seed=0"}
    assert parallel.failed == ("partition=natural_seed=0",)
    serial = run_sweep(spec, tmp_path / "ser", jobs=1)
    for name in serial.ran:
        a = [json.loads(line) for line in (tmp_path / "par" / "runs" / name / "metrics.jsonl").open()]
        b = [json.loads(line) for line in (tmp_path / "ser" / "runs" / name / "metrics.jsonl").open()]
        # Deterministic under the seed whichever process ran it.
        assert [r["test_accuracy"] for r in a] == [r["test_accuracy"] for r in b]
