"""Offline datasets: scikit-learn's bundled files and the UCI Heart Disease sites shipped in this package
(never downloaded), MedMNIST files already on disk, and bring-your-own arrays, torch data or loader functions.

Every dataset comes with a fixed train/test split under a seed; features are scaled with statistics of the
TRAIN split only, so the test split never leaks into preprocessing.
"""

from __future__ import annotations

import re
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
    ``groups_test`` (when known) holds the same ids for the test split, so results can be read per site.
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
    groups_test: np.ndarray | None = None

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
#: The bundled dataset shipped inside this package (fl_core/data/heart_disease/, CC BY 4.0).
HEART_DISEASE = "heart_disease"
#: Every name load_dataset accepts without a prefix; the registry config validation checks against.
DATASETS: tuple[str, ...] = (*_LOADERS, HEART_DISEASE)

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
    """Load an offline dataset (nothing is ever downloaded) with a fixed, stratified (classification) split.

    Bundled names: digits -> (N, 1, 8, 8) pixels in [0, 1]; breast_cancer -> (N, 30) standardized;
    diabetes -> (N, 10) standardized, target standardized (train stats), with derived age-band groups
    (see DIABETES_GROUPS_SOURCE); heart_disease -> the UCI Heart Disease data shipped in this package,
    with its 4 real hospital sites as groups (see load_heart_disease).

    Two more forms read data the user has on disk or in code (see dataset_problem for the rules):
    ``medmnist:/path/to/pathmnist.npz`` (a MedMNIST file; its official train/test split is kept, so
    ``test_fraction`` and ``seed`` do not apply) and ``package.module:function`` (an import path to a
    function called as ``function(test_fraction=..., seed=...)`` that returns a Dataset).
    """
    from sklearn.model_selection import train_test_split

    if not isinstance(name, str) or (name not in DATASETS and ":" not in name):
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    if not isinstance(test_fraction, (int, float)) or not 0.0 < float(test_fraction) < 1.0:
        raise DataError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    if name == HEART_DISEASE:
        return load_heart_disease(test_fraction=float(test_fraction), seed=int(seed))
    if name not in _LOADERS:
        return _load_by_reference(name, float(test_fraction), int(seed))
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


# ---------------------------------------------------------------- UCI Heart Disease (shipped in the package)

#: The 4 hospital sites in the order of their group ids, with their documented sizes (920 patients).
HEART_DISEASE_SITES: tuple[str, ...] = ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")
HEART_DISEASE_SITE_SIZES: tuple[int, ...] = (304, 293, 123, 200)
HEART_DISEASE_GROUPS_SOURCE = (
    "real: the hospital site each patient was recorded at "
    "(0 Cleveland, 1 Hungary, 2 Switzerland, 3 VA Long Beach)"
)
HEART_DISEASE_CITATION = (
    "Janosi, Steinbrunn, Pfisterer and Detrano (1988), Heart Disease, UCI Machine Learning Repository, "
    "https://doi.org/10.24432/C52P4X (CC BY 4.0)"
)
_HEART_FILE = "heart_disease_uci.csv"
_HEART_SHA256 = "574f2fa2b43012fa25fca4fcdb36bd7c6bccdd0af4242f6c0e4c8633c5a072ae"
#: Numeric columns; a 0 in these two is a missing value recorded as 0 (cholesterol at the Swiss site).
_HEART_NUMERIC: tuple[str, ...] = ("age", "trestbps", "chol", "thalch", "oldpeak", "ca")
_HEART_ZERO_IS_MISSING: tuple[str, ...] = ("trestbps", "chol")
#: Categorical columns and their fixed vocabularies; an empty cell becomes its own "missing" category,
#: so the feature layout never depends on the split.
_HEART_CATEGORICAL: dict[str, tuple[str, ...]] = {
    "sex": ("Male", "Female"),
    "cp": ("typical angina", "atypical angina", "non-anginal", "asymptomatic"),
    "fbs": ("TRUE", "FALSE", ""),
    "restecg": ("normal", "st-t abnormality", "lv hypertrophy", ""),
    "exang": ("TRUE", "FALSE", ""),
    "slope": ("upsloping", "flat", "downsloping", ""),
    "thal": ("normal", "fixed defect", "reversable defect", ""),
}


def heart_disease_feature_names() -> tuple[str, ...]:
    """Names of load_heart_disease's feature columns, in order (numeric, missing flags, one-hot)."""
    names = list(_HEART_NUMERIC)
    names += [f"{c}_missing" for c in _HEART_NUMERIC]
    for col, vocab in _HEART_CATEGORICAL.items():
        names += [f"{col}={v or 'missing'}" for v in vocab]
    return tuple(names)


@cache
def _raw_heart_disease() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse the shipped CSV: (numeric with NaN for missing, one-hot categoricals, binary target, site id)."""
    import csv
    import hashlib
    import io
    from importlib.resources import files

    raw = (files("fl_core.data") / "heart_disease" / _HEART_FILE).read_bytes()
    if hashlib.sha256(raw).hexdigest() != _HEART_SHA256:
        raise DataError(f"the shipped {_HEART_FILE} does not match its recorded SHA-256; reinstall privagg")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
    numeric = np.full((len(rows), len(_HEART_NUMERIC)), np.nan)
    onehot: list[np.ndarray] = []
    for j, col in enumerate(_HEART_NUMERIC):
        for i, row in enumerate(rows):
            cell = row[col].strip()
            if cell and not (col in _HEART_ZERO_IS_MISSING and float(cell) == 0.0):
                numeric[i, j] = float(cell)
    for col, vocab in _HEART_CATEGORICAL.items():
        block = np.zeros((len(rows), len(vocab)))
        for i, row in enumerate(rows):
            cell = row[col].strip()
            if cell not in vocab:
                raise DataError(f"{_HEART_FILE}: column {col!r} has unexpected value {cell!r} in row {i + 2}")
            block[i, vocab.index(cell)] = 1.0
        onehot.append(block)
    target = np.array([int(row["num"]) > 0 for row in rows], dtype=np.int64)
    site = np.array([HEART_DISEASE_SITES.index(row["dataset"]) for row in rows], dtype=np.int64)
    return numeric, np.concatenate(onehot, axis=1), target, site


def heart_disease_sites() -> np.ndarray:
    """Site id (index into HEART_DISEASE_SITES) of every patient in the shipped file, in file order."""
    return _raw_heart_disease()[3].copy()


def load_heart_disease(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """The UCI Heart Disease data (920 patients, 4 hospital sites), offline, as a binary task.

    Target: disease present (``num`` > 0) against absent, the usual reading of this data. The split is
    stratified by site and label, so every site keeps its share in train and test. Missing numeric values
    (empty, or a 0 cholesterol / blood pressure) are filled with the TRAIN median and flagged in a
    ``*_missing`` column; categoricals are one-hot with an explicit missing category; then every column
    is standardized with TRAIN statistics. ``groups_train``/``groups_test`` are the real site ids (the
    "natural" partition gives each client whole sites). Citation: HEART_DISEASE_CITATION.
    """
    from sklearn.model_selection import train_test_split

    numeric, onehot, target, site = _raw_heart_disease()
    idx_train, idx_test = train_test_split(
        np.arange(len(target)),
        test_size=test_fraction,
        random_state=seed,
        shuffle=True,
        stratify=site * 2 + target,
    )
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    median = np.nanmedian(numeric[idx_train], axis=0)
    missing = np.isnan(numeric).astype(np.float64)
    filled = np.where(np.isnan(numeric), median, numeric)
    x = np.concatenate([filled, missing, onehot], axis=1)
    x_tr, x_te, _, _ = standardize(x[idx_train], x[idx_test])
    base = dataset_from_arrays(
        HEART_DISEASE,
        x_tr,
        target[idx_train],
        x_te,
        target[idx_test],
        task="classification",
        groups_train=site[idx_train],
        groups_source=HEART_DISEASE_GROUPS_SOURCE,
    )
    return replace(base, groups_test=site[idx_test].copy())


# ---------------------------------------------------------------- data on the user's disk or in code

#: Prefix forms of a dataset reference: "medmnist:/path/file.npz".
MEDMNIST_PREFIX = "medmnist"
#: The keys of a MedMNIST .npz file (val_* is optional here and not used: privagg selects nothing on it).
MEDMNIST_KEYS: tuple[str, ...] = ("train_images", "train_labels", "test_images", "test_labels")
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def dataset_problem(name: object) -> str | None:
    """Why ``name`` cannot be a dataset (one line), or None when it can: cheap, for config validation.

    Accepted: a bundled name (DATASETS); ``medmnist:PATH`` with PATH an existing file; an import path
    ``package.module:function`` whose top-level package is installed. Imports nothing heavy (no torch)
    and reads no file beyond checking that it exists.
    """
    import importlib.util
    from pathlib import Path

    if not isinstance(name, str) or not name:
        return f"dataset must be a non-empty string, got {name!r}"
    if name in DATASETS:
        return None
    prefix, sep, rest = name.partition(":")
    if not sep:
        known = ", ".join(DATASETS)
        return f"unknown dataset {name!r}; known datasets: {known}, or medmnist:PATH, or module:function"
    if prefix == MEDMNIST_PREFIX:
        if not rest:
            return "dataset 'medmnist:' needs a file path, e.g. medmnist:/data/pathmnist.npz"
        if not Path(rest).expanduser().is_file():
            return f"dataset {name!r}: no such file {rest!r}"
        return None
    if not _IMPORT_PATH.match(name):
        return (
            f"unknown dataset {name!r}; a reference is medmnist:PATH or package.module:function "
            f"(known prefixes: {MEDMNIST_PREFIX})"
        )
    top = prefix.split(".")[0]
    if importlib.util.find_spec(top) is None:
        return f"dataset {name!r}: no installed module {top!r}"
    return None


def is_known_dataset(name: object) -> bool:
    """True when load_dataset can be asked for ``name`` (see dataset_problem, which says why not)."""
    return dataset_problem(name) is None


def _load_by_reference(name: str, test_fraction: float, seed: int) -> Dataset:
    problem = dataset_problem(name)
    if problem is not None:
        raise DataError(problem)
    prefix, _, rest = name.partition(":")
    if prefix == MEDMNIST_PREFIX:
        return load_medmnist(rest)
    import importlib

    try:
        module = importlib.import_module(prefix)
    except ImportError as exc:
        raise DataError(f"dataset {name!r}: cannot import {prefix!r}: {exc}") from None
    func = getattr(module, rest, None)
    if not callable(func):
        raise DataError(f"dataset {name!r}: {prefix!r} has no function {rest!r}")
    ds = func(test_fraction=test_fraction, seed=seed)
    if not isinstance(ds, Dataset):
        raise DataError(f"dataset {name!r}: {rest}() returned {type(ds).__name__}, not fl_core.data.Dataset")
    return ds


def _medmnist_images(path: str, key: str, arr: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, C) with C in {1, 3} -> (N, C, H, W); values / 255."""
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3):
        arr = np.transpose(arr, (0, 3, 1, 2))
    else:
        raise DataError(
            f"medmnist file {path!r}: {key} has shape {arr.shape}; expected (N, H, W) or (N, H, W, 1|3) "
            "(3-D volumes are not supported)"
        )
    return arr.astype(np.float32) / 255.0


def _medmnist_labels(path: str, key: str, arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2 and arr.shape[1] > 1:
        raise DataError(
            f"medmnist file {path!r}: {key} has {arr.shape[1]} columns (multi-label, e.g. ChestMNIST); "
            "only single-label files are supported"
        )
    return arr.reshape(-1)


def load_medmnist(path: str) -> Dataset:
    """A MedMNIST ``.npz`` file the user has on disk (e.g. pathmnist.npz), read without any download.

    Uses the file's official split: ``train_images``/``train_labels`` train, ``test_images``/
    ``test_labels`` test (``val_*`` is not used). Images become float32 (N, C, H, W) in [0, 1]; labels
    (N, 1) become class ids. The dataset is named after the file (``pathmnist``).
    """
    from pathlib import Path

    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"medmnist file {path!r} does not exist")
    try:
        with np.load(p, allow_pickle=False) as npz:
            missing = [k for k in MEDMNIST_KEYS if k not in npz.files]
            if missing:
                raise DataError(
                    f"medmnist file {path!r} lacks key(s) {missing}; a MedMNIST file holds "
                    f"{', '.join(MEDMNIST_KEYS)} (and val_images, val_labels)"
                )
            arrays = {k: np.asarray(npz[k]) for k in MEDMNIST_KEYS}
    except (OSError, ValueError) as exc:
        raise DataError(f"medmnist file {path!r} is not a readable .npz: {exc}") from None
    return dataset_from_arrays(
        p.stem,
        _medmnist_images(path, "train_images", arrays["train_images"]),
        _medmnist_labels(path, "train_labels", arrays["train_labels"]),
        _medmnist_images(path, "test_images", arrays["test_images"]),
        _medmnist_labels(path, "test_labels", arrays["test_labels"]),
        task="classification",
    )
