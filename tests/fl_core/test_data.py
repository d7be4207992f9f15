"""Offline loaders and bring-your-own data: shapes, dtypes, splits, train-only scaling, every bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_digits
from torch.utils.data import TensorDataset

from fl_core.data import DATASETS, Dataset, dataset_from_arrays, dataset_from_torch, load_dataset, standardize
from fl_core.data.datasets import DIABETES_GROUPS_SOURCE
from fl_core.errors import DataError

EXPECTED = {
    # name: (total examples, example shape, task, classes)
    "digits": (1797, (1, 8, 8), "classification", 10),
    "breast_cancer": (569, (30,), "classification", 2),
    "diabetes": (442, (10,), "regression", 1),
    "heart_disease": (920, (36,), "classification", 2),
}


def test_known_names() -> None:
    assert set(DATASETS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loader_shapes_dtypes_split_sizes(name: str) -> None:
    total, shape, task, classes = EXPECTED[name]
    ds = load_dataset(name)
    n_test = math.ceil(0.2 * total)
    assert ds.x_train.shape == (total - n_test, *shape)
    assert ds.x_test.shape == (n_test, *shape)
    assert ds.input_shape == shape
    assert ds.task == task and ds.num_classes == classes
    assert ds.num_outputs == (classes if task == "classification" else 1)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    expected_y = np.int64 if task == "classification" else np.float32
    assert ds.y_train.dtype == expected_y and ds.y_test.dtype == expected_y
    assert ds.y_train.shape == (total - n_test,) and ds.y_test.shape == (n_test,)
    for arr in (ds.x_train, ds.x_test, ds.y_train, ds.y_test):
        assert np.all(np.isfinite(arr))


@pytest.mark.parametrize("name", ["digits", "breast_cancer"])
def test_split_is_stratified(name: str) -> None:
    ds = load_dataset(name, test_fraction=0.25, seed=3)
    all_counts = np.bincount(np.concatenate([ds.y_train, ds.y_test]))
    test_counts = np.bincount(ds.y_test, minlength=len(all_counts))
    # Each class keeps its share in the test split, to within one example.
    assert np.all(np.abs(test_counts - 0.25 * all_counts) <= 1.0)


def test_split_deterministic_under_seed_and_varies_with_it() -> None:
    a, b, c = load_dataset("digits", seed=7), load_dataset("digits", seed=7), load_dataset("digits", seed=8)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


def test_split_partitions_the_raw_data() -> None:
    raw = load_digits()
    ds = load_dataset("digits", seed=1)
    pooled = np.concatenate([ds.x_train, ds.x_test]).reshape(len(raw.target), 64) * 16.0
    order = np.lexsort(pooled.T)
    raw_order = np.lexsort(raw.data.T)
    np.testing.assert_array_equal(pooled[order], raw.data[raw_order])


def test_digits_pixels_in_unit_interval_and_exact() -> None:
    ds = load_dataset("digits")
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    levels = np.unique(ds.x_train * 16.0)
    np.testing.assert_array_equal(levels, np.arange(17, dtype=np.float32))


def test_standardize_known_answer_ignores_test_statistics() -> None:
    train = np.array([[0.0, 5.0], [2.0, 5.0]])
    test = np.array([[100.0, 7.0]])
    tr, te, mean, std = standardize(train, test)
    np.testing.assert_array_equal(mean, [1.0, 5.0])
    np.testing.assert_array_equal(std, [1.0, 1.0])  # constant column: std 0 -> 1, no division by zero
    np.testing.assert_array_equal(tr, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(te, [[99.0, 2.0]])


@pytest.mark.parametrize("name", ["breast_cancer", "diabetes"])
def test_tabular_standardized_with_train_statistics_only(name: str) -> None:
    ds = load_dataset(name)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-5)
    # Had the test split been pooled into the statistics, the train columns would not be exactly centred;
    # the test split itself is not centred.
    assert np.abs(ds.x_test.mean(axis=0)).max() > 1e-3


def test_diabetes_target_standardized_and_reversible() -> None:
    raw_y = load_diabetes().target
    ds = load_dataset("diabetes")
    assert abs(float(ds.y_train.mean())) < 1e-5 and abs(float(ds.y_train.std()) - 1.0) < 1e-5
    back = np.concatenate([ds.y_train, ds.y_test]) * ds.target_std + ds.target_mean
    np.testing.assert_allclose(np.sort(back), np.sort(raw_y), atol=1e-3)
    # The mean is the train split's, not the whole set's.
    assert ds.target_mean != pytest.approx(float(raw_y.mean()), abs=1e-9)


def test_diabetes_derived_age_groups() -> None:
    ds = load_dataset("diabetes")
    assert ds.groups_train is not None and ds.groups_source == DIABETES_GROUPS_SOURCE
    assert ds.groups_source.startswith("derived")
    counts = np.bincount(ds.groups_train)
    assert len(counts) == 4 and counts.min() >= 0.2 * len(ds.y_train)
    # Bands are ordered by age: every example of band g is younger than every example of band g + 1.
    age = ds.x_train[:, 0]
    for g in range(3):
        assert age[ds.groups_train == g].max() < age[ds.groups_train == g + 1].min()


def test_sklearn_datasets_have_no_natural_groups() -> None:
    assert load_dataset("digits").groups_train is None
    assert load_dataset("breast_cancer").groups_train is None


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(DataError, match="mnist.*digits.*breast_cancer.*diabetes"):
        load_dataset("mnist")


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_bad_test_fraction(fraction: float) -> None:
    with pytest.raises(DataError, match="test_fraction"):
        load_dataset("digits", test_fraction=fraction)


def test_bad_seed() -> None:
    with pytest.raises(DataError, match="seed"):
        load_dataset("digits", seed=-1)


# ---------------------------------------------------------------- bring your own arrays


def _toy(n: int = 12, f: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, f)), np.arange(n) % 3, rng.normal(size=(4, f)), np.array([0, 1, 2, 1])


def test_from_arrays_infers_classification() -> None:
    ds = dataset_from_arrays("toy", *_toy())
    assert isinstance(ds, Dataset)
    assert ds.task == "classification" and ds.num_classes == 3 and ds.num_outputs == 3
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.groups_train is None


def test_from_arrays_infers_regression_and_keeps_values() -> None:
    x, _, xt, _ = _toy()
    y = np.linspace(-1, 1, 12)
    ds = dataset_from_arrays("reg", x, y, xt, np.zeros(4))
    assert ds.task == "regression" and ds.num_classes == 1 and ds.num_outputs == 1
    assert ds.y_train.dtype == np.float32
    np.testing.assert_array_equal(ds.y_train, y.astype(np.float32))
    np.testing.assert_array_equal(ds.x_train, x.astype(np.float32))


def test_from_arrays_explicit_task_and_column_targets() -> None:
    x, y, xt, yt = _toy()
    ds = dataset_from_arrays("t", x, y.astype(np.float64)[:, None], xt, yt, task="classification")
    assert ds.y_train.dtype == np.int64 and ds.y_train.shape == (12,)
    ds2 = dataset_from_arrays("t", x, y, xt, yt, task="regression")
    assert ds2.task == "regression" and ds2.y_train.dtype == np.float32


def test_from_arrays_groups() -> None:
    x, y, xt, yt = _toy()
    ds = dataset_from_arrays("g", x, y, xt, yt, groups_train=np.arange(12) // 4, groups_source="site id")
    assert ds.groups_train is not None and ds.groups_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(ds.groups_train), [4, 4, 4])
    assert ds.groups_source == "site id"


def _with(**changes: object) -> dict[str, object]:
    x, y, xt, yt = _toy()
    args: dict[str, object] = {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt}
    args.update(changes)
    return args


def _nan_x() -> np.ndarray:
    x = _toy()[0].copy()
    x[3, 1] = np.nan
    return x


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"y_train": np.arange(11) % 3}, "12 rows but y_train has 11"),
        ({"y_test": np.array([0, 1])}, "4 rows but y_test has 2"),
        ({"x_train": _nan_x()}, "x_train has 1 NaN/Inf"),
        ({"x_test": np.full((4, 3), np.inf)}, "x_test has 12 NaN/Inf"),
        ({"x_train": np.full((12, 3), 1e300)}, "NaN/Inf value.*float32"),
        ({"y_train": np.r_[np.zeros(11), np.nan]}, "y_train has 1 NaN/Inf"),
        ({"x_test": np.zeros((4, 5))}, r"shape \(3,\) but x_test has \(5,\)"),
        ({"x_train": np.zeros(12)}, "at least one feature axis"),
        ({"y_train": np.zeros((12, 2))}, "vector of shape"),
        ({"x_train": np.array([["a"] * 3] * 12)}, "numeric"),
        ({"y_train": np.r_[np.arange(11) % 3, -1]}, "must be >= 0"),
        ({"x_train": np.zeros((0, 3)), "y_train": np.zeros(0, dtype=int)}, ">= 1 example"),
        ({"y_train": np.zeros(12, dtype=int), "y_test": np.zeros(4, dtype=int)}, ">= 2 classes"),
        ({"groups_train": np.arange(5)}, "groups_train must have shape"),
        ({"groups_train": np.linspace(0, 1, 12)}, "integer ids"),
    ],
)
def test_from_arrays_rejects(changes: dict[str, object], match: str) -> None:
    with pytest.raises(DataError, match=match):
        dataset_from_arrays("bad", **_with(**changes))  # type: ignore[arg-type]


def test_from_arrays_rejects_fractional_class_ids_and_bad_task() -> None:
    x, _, xt, yt = _toy()
    with pytest.raises(DataError, match="whole numbers"):
        dataset_from_arrays("bad", x, np.full(12, 0.5), xt, yt, task="classification")
    with pytest.raises(DataError, match="task"):
        dataset_from_arrays("bad", x, np.zeros(12), xt, yt, task="ranking")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="name"):
        dataset_from_arrays("", x, np.zeros(12), xt, yt)


# ---------------------------------------------------------------- bring your own torch data


def test_from_torch_matches_arrays() -> None:
    x, y, xt, yt = _toy(n=700)  # more than one DataLoader batch
    train = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    test = TensorDataset(torch.from_numpy(xt), torch.from_numpy(yt))
    ds = dataset_from_torch("t", train, test)
    ref = dataset_from_arrays("t", x, y, xt, yt)
    assert ds.task == "classification" and ds.num_classes == ref.num_classes
    np.testing.assert_array_equal(ds.x_train, ref.x_train)
    np.testing.assert_array_equal(ds.y_train, ref.y_train)
    np.testing.assert_array_equal(ds.y_test, ref.y_test)


def test_from_torch_regression_and_images() -> None:
    images = torch.rand(10, 1, 4, 4)
    targets = torch.linspace(0, 1, 10)
    ds = dataset_from_torch("img", TensorDataset(images, targets), TensorDataset(images[:3], targets[:3]))
    assert ds.task == "regression" and ds.input_shape == (1, 4, 4)
    np.testing.assert_array_equal(ds.x_train, images.numpy())


def test_from_torch_rejects_non_pairs_and_nan() -> None:
    x = torch.zeros(5, 2)
    with pytest.raises(DataError, match="pairs"):
        dataset_from_torch("t", TensorDataset(x), TensorDataset(x))
    bad = x.clone()
    bad[0, 0] = float("nan")
    y = torch.tensor([0, 1, 0, 1, 0])
    with pytest.raises(DataError, match="NaN"):
        dataset_from_torch("t", TensorDataset(bad, y), TensorDataset(x, y))
