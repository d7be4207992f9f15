"""Medical data offline: the UCI Heart Disease sites shipped in the package, MedMNIST files on disk,
import-path datasets, and the cheap name check config validation uses."""

from __future__ import annotations

import csv
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from fl_core.data import (
    DATASETS,
    HEART_DISEASE_SITE_SIZES,
    HEART_DISEASE_SITES,
    dataset_problem,
    is_known_dataset,
    load_dataset,
    partition,
)
from fl_core.data.datasets import (
    HEART_DISEASE_CITATION,
    heart_disease_feature_names,
    heart_disease_sites,
)
from fl_core.errors import DataError

# ---------------------------------------------------------------- UCI Heart Disease


def test_heart_disease_registered_and_shipped_with_licence() -> None:
    assert "heart_disease" in DATASETS and is_known_dataset("heart_disease")
    folder = files("fl_core.data") / "heart_disease"
    licence = (folder / "LICENSE.md").read_text()
    assert "CC BY 4.0" in licence and "Janosi" in licence and "10.24432/C52P4X" in licence
    assert "Janosi" in HEART_DISEASE_CITATION


def test_heart_disease_site_sizes_are_the_documented_ones() -> None:
    # Counted straight from the CSV, independently of the loader's parser.
    with (files("fl_core.data") / "heart_disease" / "heart_disease_uci.csv").open() as fh:
        sites = [row["dataset"] for row in csv.DictReader(fh)]
    assert len(sites) == 920
    assert (
        tuple(sites.count(s) for s in HEART_DISEASE_SITES) == HEART_DISEASE_SITE_SIZES == (304, 293, 123, 200)
    )
    np.testing.assert_array_equal(np.bincount(heart_disease_sites()), HEART_DISEASE_SITE_SIZES)


def test_heart_disease_split_keeps_every_patient_and_site_shares() -> None:
    ds = load_dataset("heart_disease", test_fraction=0.25, seed=4)
    assert ds.groups_train is not None and ds.groups_test is not None
    assert ds.groups_source is not None and ds.groups_source.startswith("real")
    per_site = np.bincount(ds.groups_train, minlength=4) + np.bincount(ds.groups_test, minlength=4)
    np.testing.assert_array_equal(per_site, HEART_DISEASE_SITE_SIZES)
    # Stratified by site: each site keeps a quarter of its patients in the test split.
    test_share = np.bincount(ds.groups_test, minlength=4)
    assert np.all(np.abs(test_share - 0.25 * np.array(HEART_DISEASE_SITE_SIZES)) <= 2)
    assert ds.x_train.shape[1] == len(heart_disease_feature_names())
    assert set(np.unique(ds.y_train)) == {0, 1}
    # The usual binary target: 509 of 920 patients have num > 0.
    assert int(ds.y_train.sum() + ds.y_test.sum()) == 509


def test_heart_disease_missing_values_filled_and_flagged() -> None:
    ds = load_dataset("heart_disease")
    names = heart_disease_feature_names()
    assert np.all(np.isfinite(ds.x_train)) and np.all(np.isfinite(ds.x_test))
    # Standardized with train statistics: every column centred, every non-constant column of unit spread.
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    spread = ds.x_train.std(axis=0)
    np.testing.assert_allclose(spread[spread > 0], 1.0, atol=1e-5)
    chol_missing = ds.x_train[:, names.index("chol_missing")]
    # Cholesterol 0 or empty at the Swiss site is missing, so nearly every Swiss patient is flagged...
    swiss = ds.groups_train == HEART_DISEASE_SITES.index("Switzerland")
    flagged = chol_missing > chol_missing.min()
    assert flagged[swiss].mean() > 0.9
    # ...and no Cleveland patient is.
    cleveland = ds.groups_train == HEART_DISEASE_SITES.index("Cleveland")
    assert not flagged[cleveland].any()


def test_heart_disease_natural_partition_gives_each_client_exactly_one_site() -> None:
    ds = load_dataset("heart_disease")
    assert ds.groups_train is not None
    parts = partition(ds.y_train, 4, "natural", seed=3, groups=ds.groups_train)
    sites_per_client = [set(np.unique(ds.groups_train[p]).tolist()) for p in parts]
    assert all(len(s) == 1 for s in sites_per_client)
    assert sorted(next(iter(s)) for s in sites_per_client) == [0, 1, 2, 3]
    for p, s in zip(parts, sites_per_client, strict=True):
        assert len(p) == int(np.sum(ds.groups_train == next(iter(s))))
    # Two clients: each holds whole sites, never a part of one.
    for p in partition(ds.y_train, 2, "natural", seed=3, groups=ds.groups_train):
        for site in np.unique(ds.groups_train[p]):
            assert np.sum(ds.groups_train[p] == site) == np.sum(ds.groups_train == site)


# ---------------------------------------------------------------- MedMNIST files on disk


def _write_medmnist(path: Path, *, rgb: bool, n_train: int = 30, n_test: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    shape = (28, 28, 3) if rgb else (28, 28)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, *shape), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 3).reshape(-1, 1).astype(np.uint8),
        "val_images": rng.integers(0, 256, size=(5, *shape), dtype=np.uint8),
        "val_labels": np.zeros((5, 1), dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, *shape), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 3).reshape(-1, 1).astype(np.uint8),
    }
    np.savez_compressed(path, **arrays)
    return arrays


@pytest.mark.parametrize("rgb", [False, True])
def test_medmnist_file_loads_with_its_official_split(tmp_path: Path, rgb: bool) -> None:
    path = tmp_path / "pathmnist.npz"
    arrays = _write_medmnist(path, rgb=rgb)
    ds = load_dataset(f"medmnist:{path}")
    channels = 3 if rgb else 1
    assert ds.name == "pathmnist" and ds.task == "classification" and ds.num_classes == 3
    assert ds.x_train.shape == (30, channels, 28, 28) and ds.x_test.shape == (12, channels, 28, 28)
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    expected = arrays["train_images"] if not rgb else np.transpose(arrays["train_images"], (0, 3, 1, 2))
    np.testing.assert_allclose(ds.x_train.reshape(expected.shape), expected / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, arrays["test_labels"].ravel())
    # The official split is kept whatever the seed.
    np.testing.assert_array_equal(load_dataset(f"medmnist:{path}", seed=9).x_train, ds.x_train)


def test_medmnist_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nothere.npz"
    assert not is_known_dataset(f"medmnist:{missing}")
    with pytest.raises(DataError, match="no such file"):
        load_dataset(f"medmnist:{missing}")
    partial = tmp_path / "partial.npz"
    np.savez(partial, train_images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"lacks key\(s\) \['train_labels'"):
        load_dataset(f"medmnist:{partial}")
    multi = tmp_path / "chestmnist.npz"
    arrays = _write_medmnist(tmp_path / "ok.npz", rgb=False)
    arrays["train_labels"] = np.zeros((30, 14), np.uint8)
    np.savez(multi, **arrays)
    with pytest.raises(DataError, match="multi-label"):
        load_dataset(f"medmnist:{multi}")
    not_npz = tmp_path / "junk.npz"
    not_npz.write_text("not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(f"medmnist:{not_npz}")


# ---------------------------------------------------------------- import paths and the cheap check


def make_tiny(*, test_fraction: float, seed: int) -> object:
    """An import-path dataset for the test below."""
    from fl_core.data import dataset_from_arrays

    rng = np.random.default_rng(seed)
    return dataset_from_arrays("tiny", rng.normal(size=(8, 2)), np.arange(8) % 2, np.ones((2, 2)), [0, 1])


def not_a_dataset(*, test_fraction: float, seed: int) -> object:
    return 42


def test_import_path_dataset() -> None:
    ds = load_dataset(f"{__name__}:make_tiny", seed=3)
    assert ds.name == "tiny" and ds.num_train == 8
    with pytest.raises(DataError, match="returned int"):
        load_dataset(f"{__name__}:not_a_dataset")
    with pytest.raises(DataError, match="has no function 'nope'"):
        load_dataset(f"{__name__}:nope")


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("mnist", "unknown dataset 'mnist'; known datasets: digits"),
        ("", "non-empty"),
        ("medmnist:", "needs a file path"),
        ("foo:/x/y.npz", "known prefixes: medmnist"),
        ("no_such_pkg_xyz.mod:fn", "no installed module 'no_such_pkg_xyz'"),
    ],
)
def test_dataset_problem_says_why(name: str, match: str) -> None:
    problem = dataset_problem(name)
    assert problem is not None and match in problem and "\n" not in problem
    assert not is_known_dataset(name)


def test_is_known_dataset_checks_existence_only(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    # Cheap: the file exists, so the name is accepted; reading it is load_dataset's job (and fails there).
    assert is_known_dataset(f"medmnist:{junk}")
    assert is_known_dataset("fl_core.data:load_dataset")
    assert not is_known_dataset(42)
