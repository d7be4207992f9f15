"""Partitioners: every example to exactly one client, parameters respected, seeded, and every bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl_core.data import PARTITIONERS, label_counts, load_dataset, partition
from fl_core.errors import DataError, PartitionError

SETTINGS = settings(max_examples=40, deadline=None)


def _assert_exact_cover(parts: list[np.ndarray], n: int, num_clients: int, min_size: int = 1) -> None:
    assert len(parts) == num_clients
    for p in parts:
        assert p.dtype == np.int64 and p.ndim == 1 and len(p) >= min_size
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n))


@st.composite
def labelled(draw: st.DrawFn, max_n: int = 300) -> tuple[np.ndarray, int]:
    n = draw(st.integers(40, max_n))
    classes = draw(st.integers(2, 10))
    seed = draw(st.integers(0, 2**32 - 1))
    y = np.random.default_rng(seed).integers(0, classes, n)
    return y, draw(st.integers(1, n // 20))


@SETTINGS
@given(data=labelled(), seed=st.integers(0, 2**31), min_size=st.integers(1, 3))
def test_iid_and_quantity_cover_exactly(data: tuple[np.ndarray, int], seed: int, min_size: int) -> None:
    y, k = data
    iid = partition(y, k, "iid", seed=seed, min_size=min_size)
    _assert_exact_cover(iid, len(y), k, min_size)
    sizes = [len(p) for p in iid]
    assert max(sizes) - min(sizes) <= 1
    quantity = partition(y, k, "quantity", seed=seed, quantity_sigma=1.5, min_size=min_size)
    _assert_exact_cover(quantity, len(y), k, min_size)


@SETTINGS
@given(data=labelled(), seed=st.integers(0, 2**31), alpha=st.floats(0.3, 10.0))
def test_dirichlet_covers_exactly(data: tuple[np.ndarray, int], seed: int, alpha: float) -> None:
    y, k = data
    _assert_exact_cover(partition(y, k, "dirichlet", seed=seed, alpha=alpha), len(y), k)


@SETTINGS
@given(data=labelled(), seed=st.integers(0, 2**31), spc=st.integers(1, 4))
def test_shards_cover_exactly_and_bound_labels(data: tuple[np.ndarray, int], seed: int, spc: int) -> None:
    y, k = data
    labels_present = len(np.unique(y))
    k = max(k, -(-labels_present // spc))  # enough shards to hold every label
    parts = partition(y, k, "shards", seed=seed, shards_per_client=spc)
    _assert_exact_cover(parts, len(y), k, spc)
    labels_per_client = (label_counts(y, parts) > 0).sum(axis=1)
    assert labels_per_client.max() <= spc


@SETTINGS
@given(
    n_groups=st.integers(1, 12),
    k=st.integers(1, 12),
    seed=st.integers(0, 2**31),
    gseed=st.integers(0, 2**31),
)
def test_natural_keeps_groups_whole(n_groups: int, k: int, seed: int, gseed: int) -> None:
    k = min(k, n_groups)
    rng = np.random.default_rng(gseed)
    groups = np.r_[np.arange(n_groups), rng.integers(0, n_groups, 60)] * 7 + 3  # arbitrary ids, each present
    y = rng.integers(0, 3, len(groups))
    parts = partition(y, k, "natural", seed=seed, groups=groups)
    _assert_exact_cover(parts, len(y), k)
    owners = [set(groups[p].tolist()) for p in parts]
    assert sum(len(o) for o in owners) == n_groups  # each group lies in exactly one client
    per_client = [len(o) for o in owners]
    assert max(per_client) - min(per_client) <= 1  # round-robin deal


def test_natural_one_client_per_group() -> None:
    groups = np.array([5, 5, 9, 9, 9, 2])
    parts = partition(np.zeros(6, dtype=int), 3, "natural", seed=0, groups=groups)
    assert sorted(tuple(p.tolist()) for p in parts) == [(0, 1), (2, 3, 4), (5,)]


def test_natural_on_diabetes_derived_sites() -> None:
    ds = load_dataset("diabetes")
    parts = partition(ds.y_train, 4, "natural", seed=0, groups=ds.groups_train)
    _assert_exact_cover(parts, len(ds.y_train), 4)
    assert sorted(len(p) for p in parts) == sorted(np.bincount(ds.groups_train).tolist())


def _mean_label_entropy(y: np.ndarray, parts: list[np.ndarray]) -> float:
    counts = label_counts(y, parts).astype(float)
    p = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return float(h.mean())


def test_dirichlet_small_alpha_is_more_skewed() -> None:
    y = load_dataset("digits").y_train
    for seed in range(3):
        skewed = _mean_label_entropy(y, partition(y, 10, "dirichlet", seed=seed, alpha=0.1))
        mild = _mean_label_entropy(y, partition(y, 10, "dirichlet", seed=seed, alpha=100.0))
        iid = _mean_label_entropy(y, partition(y, 10, "iid", seed=seed))
        assert skewed < 0.7 * mild
        assert mild > 0.95 * np.log(10) and iid > 0.95 * np.log(10)


def test_quantity_sizes_vary_with_sigma() -> None:
    y = np.zeros(2000, dtype=int)
    equal = [len(p) for p in partition(y, 20, "quantity", seed=1, quantity_sigma=0.0)]
    assert max(equal) - min(equal) <= 1
    cv = []
    for sigma in (0.3, 1.5):
        sizes = np.array([len(p) for p in partition(y, 20, "quantity", seed=1, quantity_sigma=sigma)])
        cv.append(sizes.std() / sizes.mean())
    assert 0.1 < cv[0] < cv[1]


def test_quantity_keeps_labels_iid() -> None:
    y = load_dataset("digits").y_train
    parts = partition(y, 5, "quantity", seed=0, quantity_sigma=1.0)
    big = max(parts, key=len)
    assert len(np.unique(y[big])) == 10


def test_regression_targets_are_binned_for_label_schemes() -> None:
    y = load_dataset("diabetes").y_train
    assert y.dtype == np.float32
    for scheme in ("dirichlet", "shards"):
        parts = partition(y, 5, scheme, seed=0, alpha=0.1, shards_per_client=2)
        _assert_exact_cover(parts, len(y), 5)
    # Shards of a binned target: each client covers at most 2 of the 10 quantile bins, a narrow target range.
    parts = partition(y, 5, "shards", seed=0, shards_per_client=2)
    spans = [float(np.ptp(y[p])) for p in parts]
    assert np.median(spans) < 0.8 * float(np.ptp(y))


@pytest.mark.parametrize("scheme", [s for s in PARTITIONERS if s != "natural"])
def test_deterministic_under_seed(scheme: str) -> None:
    y = load_dataset("digits").y_train
    a = partition(y, 12, scheme, seed=5)
    b = partition(y, 12, scheme, seed=5)
    c = partition(y, 12, scheme, seed=6)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c, strict=True))


def test_does_not_touch_global_numpy_state() -> None:
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    partition(np.arange(100) % 4, 5, "dirichlet", seed=1)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


Y = np.arange(100) % 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_clients": 0}, "num_clients must be >= 1, got 0"),
        ({"num_clients": -3}, "num_clients must be >= 1, got -3"),
        ({"num_clients": 2.5}, "num_clients must be an integer"),
        ({"num_clients": True}, "num_clients must be an integer"),
        ({"num_clients": 101}, "num_clients=101 .* from 100 examples"),
        ({"num_clients": 30, "min_size": 4}, "num_clients=30 clients min_size=4"),
        ({"min_size": 0}, "min_size must be >= 1, got 0"),
        ({"scheme": "dirichlet", "alpha": 0.0}, "alpha must be a finite number > 0, got 0.0"),
        ({"scheme": "dirichlet", "alpha": -1.0}, "alpha .* got -1.0"),
        ({"scheme": "dirichlet", "alpha": float("nan")}, "alpha .* got nan"),
        ({"scheme": "dirichlet", "alpha": float("inf")}, "alpha .* got inf"),
        ({"scheme": "dirichlet", "alpha": "big"}, "alpha must be a number"),
        ({"scheme": "shards", "shards_per_client": 0}, "shards_per_client must be >= 1, got 0"),
        ({"scheme": "shards", "num_clients": 1, "shards_per_client": 2}, "2 shards cannot cover 4 labels"),
        ({"scheme": "shards", "num_clients": 40, "shards_per_client": 3}, "120 shards exceed the 100"),
        ({"scheme": "shards", "num_clients": 10, "shards_per_client": 1, "min_size": 11}, "min_size=11"),
        ({"scheme": "quantity", "quantity_sigma": -0.5}, "quantity_sigma .* got -0.5"),
        (
            {"scheme": "sorted"},
            "unknown partition scheme 'sorted'.*iid, dirichlet, shards, quantity, natural",
        ),
        ({"scheme": "natural"}, "'natural' needs groups"),
        ({"scheme": "natural", "groups": np.arange(10)}, r"groups must have shape \(100,\)"),
        ({"scheme": "natural", "groups": np.arange(100) % 3}, "num_clients=5 exceeds the 3 natural groups"),
        (
            {"scheme": "natural", "num_clients": 2, "groups": np.r_[0, np.ones(99)], "min_size": 2},
            "min_size=2",
        ),
        ({"labels": np.zeros((10, 2))}, "1-D"),
        ({"labels": np.zeros(0)}, "empty"),
        ({"labels": np.r_[np.zeros(9), np.nan]}, "NaN"),
        ({"seed": None}, "seed must be an integer"),
    ],
)
def test_bad_inputs_raise_partition_error(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"labels": Y, "num_clients": 5, "scheme": "iid", "seed": 0}
    args.update(kwargs)
    with pytest.raises(PartitionError, match=match):
        partition(**args)  # type: ignore[arg-type]


def test_partition_error_is_a_data_error() -> None:
    with pytest.raises(DataError):
        partition(Y, 0, "iid", seed=0)


def test_dirichlet_gives_up_with_a_clear_error() -> None:
    y = np.repeat([0, 1], 50)
    with pytest.raises(PartitionError, match=r"alpha=0.01 .* num_clients=10 .* min_size=10 .* 1000 draws"):
        partition(y, 10, "dirichlet", seed=0, alpha=0.01, min_size=10)


def test_exactly_enough_examples() -> None:
    parts = partition(np.arange(12) % 3, 4, "dirichlet", seed=0, alpha=1.0, min_size=3)
    assert [len(p) for p in parts] == [3, 3, 3, 3]
