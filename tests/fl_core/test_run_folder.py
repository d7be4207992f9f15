"""The run folder keeps what an audit needs (model without pickle, its hash, membership), your own data
and model run through the same entry point, and canary clients take part as ordinary clients."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from fl_core.config import build_config
from fl_core.errors import ConfigError, DataError, RunDirectoryError
from fl_core.experiment import client_partition, resolve_dataset, resolve_model, run_experiment
from fl_core.rundir import read_run
from privagg.cli import main
from tests.fl_core._byo import blobs, tiny_net

TINY = [
    "data.dataset=breast_cancer",
    "model.name=logreg",
    "data.num_clients=4",
    "run.rounds=2",
    "train.local_epochs=1",
    "centralized.enabled=false",
]
BYO = ["data.dataset=tests.fl_core._byo:blobs", "model.name=tests.fl_core._byo:tiny_net"]


def test_model_and_membership_round_trip(tmp_path: Path) -> None:
    cfg = build_config(overrides=TINY)
    res = run_experiment(cfg, out=tmp_path / "r")
    assert res.run_dir == tmp_path / "r"
    run = read_run(tmp_path / "r")
    np.testing.assert_array_equal(run.final, res.final_weights)
    np.testing.assert_array_equal(run.initial, res.initial_weights)
    assert not np.array_equal(run.initial, run.final)
    digest = hashlib.sha256((tmp_path / "r" / "model.npz").read_bytes()).hexdigest()
    assert run.summary["model_sha256"] == digest
    # membership reproduces the partition exactly, and the indices cover the train split once
    ds = run.load_dataset()
    parts = client_partition(cfg, ds)
    assert [p.tolist() for p in parts] == [p.tolist() for p in run.client_indices]
    assert sorted(np.concatenate(run.client_indices).tolist()) == list(range(ds.num_train))
    assert run.membership["participants"] == [[0, 1, 2, 3], [0, 1, 2, 3]]
    # the rebuilt model holds the final weights
    from fl_core.models import get_flat

    np.testing.assert_array_equal(get_flat(run.build_model()), run.final)


def test_a_tampered_model_is_refused(tmp_path: Path) -> None:
    run_experiment(build_config(overrides=TINY), out=tmp_path / "r")
    path = tmp_path / "r" / "model.npz"
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RunDirectoryError, match="SHA-256"):
        read_run(tmp_path / "r")
    with pytest.raises(RunDirectoryError, match="not a run folder"):
        read_run(tmp_path / "nothing")


def test_your_own_dataset_and_model_objects_write_the_same_run_folder(tmp_path: Path) -> None:
    cfg = build_config(overrides=TINY)
    res = run_experiment(cfg, dataset=blobs(), model=tiny_net, out=tmp_path / "own")
    names = sorted(p.name for p in (tmp_path / "own").iterdir())
    assert names == sorted(
        ["config.toml", "membership.json", "metrics.csv", "metrics.jsonl", "model.npz", "privacy.json",
         "summary.json"]
    )  # fmt: skip
    assert res.info["dataset"] == "blobs" and res.final["accuracy"] > 0.7
    assert res.info["num_parameters"] == 5 * 8 + 8 + 8 * 2 + 2
    member = json.loads((tmp_path / "own" / "membership.json").read_text())
    assert member["dataset_source"].startswith("object")


@pytest.mark.parametrize(
    "privacy",
    [
        [],
        ["secagg.enabled=true"],
        ["dp.mode=central", "dp.noise_multiplier=0.5"],
        ["dp.mode=distributed", "secagg.enabled=true", "dp.noise_multiplier=0.5"],
        ["dp.mode=local", "dp.noise_multiplier=0.8"],
        [
            "dp.mode=distributed", "secagg.enabled=true", "dp.mechanism=discrete_gaussian",
            "dp.noise_multiplier=0.5", "sampling.mode=poisson", "sampling.rate=1.0",
        ],
    ],
    ids=["none", "secagg", "central", "distributed", "local", "ddg"],
)  # fmt: skip
def test_import_paths_run_under_every_privacy_mode_from_the_cli(tmp_path: Path, privacy: list[str]) -> None:
    sets = [x for item in [*TINY, *BYO, "data.num_clients=6", *privacy] for x in ("--set", item)]
    assert main(["run", *sets, "--out", str(tmp_path / "r"), "--quiet"]) == 0
    run = read_run(tmp_path / "r")
    assert run.config.data.dataset.endswith(":blobs")
    assert run.summary["rounds"] == 2 and run.privacy["statement"]
    assert run.final.size == 5 * 8 + 8 + 8 * 2 + 2


def test_bad_import_paths_are_config_errors() -> None:
    with pytest.raises(DataError, match="no function"):
        resolve_dataset(build_config(overrides=["data.dataset=tests.fl_core._byo:nope"]))
    with pytest.raises(ConfigError, match="cannot be imported"):
        resolve_model(build_config(overrides=["model.name=tests.fl_core._byo:nope"]), blobs())
    with pytest.raises(DataError, match="not fl_core.data.Dataset"):
        resolve_dataset(build_config(overrides=["data.dataset=tests.fl_core._byo:not_a_dataset"]))
    with pytest.raises(ConfigError, match="unknown dataset"):
        build_config(overrides=["data.dataset=mnist"])
    with pytest.raises(ConfigError, match="unknown model"):
        build_config(overrides=["model.name=vgg"])


def test_a_partial_folder_is_never_deleted_without_overwrite(tmp_path: Path) -> None:
    partial = tmp_path / "r.partial"
    partial.mkdir()
    (partial / "metrics.jsonl").write_text('{"round": 1}\n')
    with pytest.raises(RunDirectoryError, match="unfinished run"):
        run_experiment(build_config(overrides=TINY), out=tmp_path / "r")
    assert (partial / "metrics.jsonl").read_text() == '{"round": 1}\n'
    run_experiment(build_config(overrides=TINY), out=tmp_path / "r", overwrite=True)
    assert not partial.exists() and (tmp_path / "r" / "model.npz").is_file()


def test_out_naming_an_existing_file_is_refused_before_training(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    with pytest.raises(RunDirectoryError, match="not a folder"):
        run_experiment(build_config(overrides=TINY), out=target)
    assert target.read_text() == "keep me"


def test_canary_clients_take_part_and_are_recorded(tmp_path: Path) -> None:
    cfg = build_config(
        overrides=[*TINY, "audit.canary_clients=16", "dp.mode=central", "dp.noise_multiplier=0.3",
                   "dp.clip_norm=0.5", "run.rounds=3"]
    )  # fmt: skip
    res = run_experiment(cfg, out=tmp_path / "c")
    run = read_run(tmp_path / "c")
    assert run.canaries is not None
    c = run.canaries
    assert c.directions.shape == (16, run.final.size) and c.norm == 0.5
    np.testing.assert_allclose(np.linalg.norm(c.directions, axis=1), 1.0, rtol=1e-5)
    k = int(c.inserted.sum())
    assert 0 < k < 16
    ids = run.membership["canary_client_ids"]
    assert ids == list(range(4, 4 + k))
    assert all(set(ids) <= set(p) for p in run.membership["participants"])  # every round, all clients
    # inserted canaries point along the model's movement more than the others do
    delta = run.final - run.initial
    cos = c.directions @ delta / np.linalg.norm(delta)
    assert cos[c.inserted].mean() > cos[~c.inserted].mean()
    assert res.info["num_clients"] == 4


def test_canaries_are_refused_under_local_dp() -> None:
    with pytest.raises(ConfigError, match="membership attacks"):
        build_config(overrides=["audit.canary_clients=4", "dp.mode=local"])
