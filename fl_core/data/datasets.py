"""Offline datasets: scikit-learn's bundled files (never downloaded) and bring-your-own arrays or torch data.

Every dataset comes with a fixed train/test split under a seed; features are scaled with statistics of the
TRAIN split only, so the test split never leaks into preprocessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Literal

import numpy as np

from fl_core.errors import DataError

if TYPE_CHECKING:
    import torch.utils.data

Task = Literal["classification", "regression"]
TASKS: tuple[str, ...] = ("classification", "regression")


@dataclass(frozen=True)
class Dataset:
    """A train/test pair ready for federated training: float32 features, int64 classes or float32 targets.

    ``groups_train`` holds a natural group id per training example (for the "natural" partitioner), and
    ``groups_source`` says where the groups come from (e.g. "derived: ..." when they are not a real site id).
    Regression targets may be standardized; ``target_mean``/``target_std`` undo it (R^2 is unaffected).
    """

    name: str
    task: Task
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    groups_train: np.ndarray | None = None
    groups_source: str | None = None
    target_mean: float = 0.0
    target_std: float = 1.0

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, without the batch axis."""
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def num_outputs(self) -> int:
        """Width of a model's output layer: the number of classes, or 1 for regression."""
        return self.num_classes if self.task == "classification" else 1

    @property
    def num_train(self) -> int:
        """Number of training examples."""
        return int(self.x_train.shape[0])

    @property
    def num_test(self) -> int:
        """Number of test examples."""
        return int(self.x_test.shape[0])


# ---------------------------------------------------------------- validation of user arrays


def _as_float_features(name: str, which: str, x: object) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(f"dataset {name!r}: {which} must be numeric, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise DataError(
            f"dataset {name!r}: {which} must have shape (N, ...) with at least one feature axis, "
            f"got shape {arr.shape}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
        raise DataError(f"dataset {name!r}: {which} has {bad} NaN/Inf value(s) (after casting to float32)")
    return out


def _as_target_vector(name: str, which: str, y: object) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"dataset {name!r}: {which} must be a vector of shape (N,), got shape {arr.shape}")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(f"dataset {name!r}: {which} must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.complexfloating):
        if np.iscomplexobj(arr):
            raise DataError(f"dataset {name!r}: {which} must be real, got dtype {arr.dtype}")
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise DataError(f"dataset {name!r}: {which} has {bad} NaN/Inf value(s)")
    return arr


def _infer_task(y_train: np.ndarray, task: str | None, name: str) -> Task:
    if task is None:
        return "regression" if np.issubdtype(y_train.dtype, np.floating) else "classification"
    if task not in TASKS:
        raise DataError(f"dataset {name!r}: task must be one of {TASKS}, got {task!r}")
    return task  # type: ignore[return-value]


def _class_ids(name: str, which: str, y: np.ndarray) -> np.ndarray:
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.equal(np.floor(y), y)):
            raise DataError(f"dataset {name!r}: classification {which} must be whole numbers, got {y[:5]}...")
    ids = y.astype(np.int64)
    if ids.size and int(ids.min()) < 0:
        raise DataError(f"dataset {name!r}: class ids in {which} must be >= 0, got {int(ids.min())}")
    return ids


def dataset_from_arrays(
    name: str,
    x_train: object,
    y_train: object,
    x_test: object,
    y_test: object,
    *,
    task: Task | None = None,
    groups_train: object | None = None,
    groups_source: str | None = None,
) -> Dataset:
    """Bring your own arrays in one call: shapes, dtypes and NaN/Inf are checked (DataError), values kept.

    The task is inferred from ``y_train`` when not given: integer/bool labels mean classification (class ids
    0..K-1, K = largest id + 1), floating targets mean regression.
    """
    if not isinstance(name, str) or not name:
        raise DataError(f"dataset name must be a non-empty string, got {name!r}")
    xtr = _as_float_features(name, "x_train", x_train)
    xte = _as_float_features(name, "x_test", x_test)
    ytr = _as_target_vector(name, "y_train", y_train)
    yte = _as_target_vector(name, "y_test", y_test)
    if xtr.shape[0] != ytr.shape[0]:
        raise DataError(f"dataset {name!r}: x_train has {xtr.shape[0]} rows but y_train has {ytr.shape[0]}")
    if xte.shape[0] != yte.shape[0]:
        raise DataError(f"dataset {name!r}: x_test has {xte.shape[0]} rows but y_test has {yte.shape[0]}")
    if xtr.shape[0] == 0 or xte.shape[0] == 0:
        raise DataError(
            f"dataset {name!r}: train and test need >= 1 example each, got {xtr.shape[0]} and {xte.shape[0]}"
        )
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(
            f"dataset {name!r}: x_train examples have shape {xtr.shape[1:]} but x_test has {xte.shape[1:]}"
        )
    kind = _infer_task(ytr, task, name)
    if kind == "classification":
        ytr_out, yte_out = _class_ids(name, "y_train", ytr), _class_ids(name, "y_test", yte)
        num_classes = int(max(ytr_out.max(), yte_out.max())) + 1
        if num_classes < 2:
            raise DataError(f"dataset {name!r}: classification needs >= 2 classes, got {num_classes}")
    else:
        ytr_out = np.ascontiguousarray(ytr, dtype=np.float32)
        yte_out = np.ascontiguousarray(yte, dtype=np.float32)
        num_classes = 1
    groups = None
    if groups_train is not None:
        groups = np.asarray(groups_train)
        if groups.ndim != 1 or groups.shape[0] != xtr.shape[0]:
            raise DataError(
                f"dataset {name!r}: groups_train must have shape ({xtr.shape[0]},), got {groups.shape}"
            )
        if not (np.issubdtype(groups.dtype, np.integer) or np.issubdtype(groups.dtype, np.bool_)):
            raise DataError(f"dataset {name!r}: groups_train must hold integer ids, got dtype {groups.dtype}")
        groups = groups.astype(np.int64)
    return Dataset(
        name=name,
        task=kind,
        x_train=xtr,
        y_train=ytr_out,
        x_test=xte,
        y_test=yte_out,
        num_classes=num_classes,
        groups_train=groups,
        groups_source=groups_source if groups is not None else None,
    )


def _materialize(name: str, which: str, data: torch.utils.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    import torch
    from torch.utils.data import DataLoader

    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    try:
        for batch in DataLoader(data, batch_size=512, shuffle=False):
            if not isinstance(batch, (list, tuple)) or len(batch) != 2:
                raise DataError(f"dataset {name!r}: {which} items must be (x, y) pairs")
            x, y = batch
            xs.append(torch.as_tensor(x).detach().cpu().numpy())
            ys.append(torch.as_tensor(y).detach().cpu().numpy())
    except (TypeError, RuntimeError) as exc:
        raise DataError(f"dataset {name!r}: cannot read {which} as (x, y) pairs: {exc}") from exc
    if not xs:
        raise DataError(f"dataset {name!r}: {which} is empty")
    return np.concatenate(xs), np.concatenate(ys)


def dataset_from_torch(
    name: str,
    train: torch.utils.data.Dataset,
    test: torch.utils.data.Dataset,
    *,
    task: Task | None = None,
) -> Dataset:
    """Bring a torch Dataset of (x, y) pairs: materialized into arrays, checked by dataset_from_arrays."""
    x_train, y_train = _materialize(name, "train", train)
    x_test, y_test = _materialize(name, "test", test)
    return dataset_from_arrays(name, x_train, y_train, x_test, y_test, task=task)


# ---------------------------------------------------------------- scikit-learn's bundled datasets


@cache
def _raw_digits() -> tuple[np.ndarray, np.ndarray, None]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64), None


@cache
def _raw_breast_cancer() -> tuple[np.ndarray, np.ndarray, None]:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64), None


@cache
def _raw_diabetes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    return bunch.data.astype(np.float64), bunch.target.astype(np.float64), bunch.data[:, 0].astype(np.float64)


_LOADERS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray | None]]] = {
    "digits": _raw_digits,
    "breast_cancer": _raw_breast_cancer,
    "diabetes": _raw_diabetes,
}
DATASETS: tuple[str, ...] = tuple(_LOADERS)

#: Diabetes' derived "sites": age bands cut at the quartiles of the TRAIN ages (sklearn ships no site id).
DIABETES_GROUPS_SOURCE = "derived: 4 age bands cut at the train-split age quartiles (not a real site id)"


def standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scale both splits by the TRAIN split's mean and std per column (std 0 -> 1): (tr, te, mean, std)."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std, mean, std


def _age_bands(age_train: np.ndarray) -> np.ndarray:
    cuts = np.quantile(age_train, [0.25, 0.5, 0.75])
    return np.searchsorted(cuts, age_train, side="right").astype(np.int64)


def load_dataset(name: str, *, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Load a scikit-learn bundled dataset (no download) with a fixed, stratified (classification) split.

    digits -> (N, 1, 8, 8) pixels in [0, 1]; breast_cancer -> (N, 30) standardized; diabetes -> (N, 10)
    standardized, target standardized (train stats), with derived age-band groups
    (see DIABETES_GROUPS_SOURCE).
    """
    from sklearn.model_selection import train_test_split

    if name not in _LOADERS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    if not isinstance(test_fraction, (int, float)) or not 0.0 < float(test_fraction) < 1.0:
        raise DataError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    x, y, extra = _LOADERS[name]()
    classification = name != "diabetes"
    idx_train, idx_test = train_test_split(
        np.arange(len(y)),
        test_size=float(test_fraction),
        random_state=int(seed),
        shuffle=True,
        stratify=y if classification else None,
    )
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    if name == "digits":
        x_tr = (x[idx_train] / 16.0)[:, None, :, :]
        x_te = (x[idx_test] / 16.0)[:, None, :, :]
        return dataset_from_arrays(name, x_tr, y[idx_train], x_te, y[idx_test], task="classification")
    x_tr, x_te, _, _ = standardize(x[idx_train], x[idx_test])
    if classification:
        return dataset_from_arrays(name, x_tr, y[idx_train], x_te, y[idx_test], task="classification")
    y_tr, y_te, y_mean, y_std = standardize(y[idx_train], y[idx_test])
    groups = _age_bands(extra[idx_train]) if extra is not None else None
    base = dataset_from_arrays(
        name,
        x_tr,
        y_tr,
        x_te,
        y_te,
        task="regression",
        groups_train=groups,
        groups_source=DIABETES_GROUPS_SOURCE,
    )
    return replace(base, target_mean=float(y_mean), target_std=float(y_std))
