"""Split a training set over clients: IID, Dirichlet label skew, label shards, quantity skew, natural groups.

Every scheme gives every example to exactly one client and every client at least ``min_size`` examples,
or raises PartitionError naming the offending value. Randomness comes only from np.random.default_rng(seed).
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from fl_core.errors import PartitionError

PARTITIONERS: tuple[str, ...] = ("iid", "dirichlet", "shards", "quantity", "natural")

#: Quantile bins used to turn a regression target into pseudo-labels for "dirichlet" and "shards".
REGRESSION_BINS = 10
#: How many times "dirichlet" redraws before giving up on the min_size requirement.
DIRICHLET_MAX_RETRIES = 1000
_NUMBER = (int, float, np.integer, np.floating)


def partition(
    labels: np.ndarray,
    num_clients: int,
    scheme: str,
    *,
    seed: int,
    alpha: float = 0.5,
    shards_per_client: int = 2,
    quantity_sigma: float = 1.0,
    groups: np.ndarray | None = None,
    min_size: int = 1,
) -> list[np.ndarray]:
    """Return one sorted int64 index array per client (indices into ``labels``), covering each example once.

    Schemes: "iid" (shuffle, near-equal sizes); "dirichlet" (per class, client shares ~ Dir(alpha);
    redrawn until every client has >= min_size; Hsu et al. 2019, Li et al. 2022 NIID-Bench); "shards"
    (label-pure shards, shards_per_client each, so a client holds at most that many labels; McMahan et
    al. 2017); "quantity" (IID labels, sizes ~ lognormal(0, quantity_sigma)); "natural" (one client per
    group id, groups dealt round-robin in a seeded order when there are more groups than clients).
    Float labels are a regression target: "dirichlet" and "shards" first cut it into 10 quantile bins.
    """
    y = _check_labels(labels)
    n = y.shape[0]
    k = _check_int("num_clients", num_clients, 1)
    m = _check_int("min_size", min_size, 1)
    spc = _check_int("shards_per_client", shards_per_client, 1)
    if isinstance(alpha, bool) or not isinstance(alpha, _NUMBER):
        raise PartitionError(f"alpha must be a number > 0, got {alpha!r}")
    if not (math.isfinite(float(alpha)) and float(alpha) > 0):
        raise PartitionError(f"alpha must be a finite number > 0, got {alpha!r}")
    if isinstance(quantity_sigma, bool) or not isinstance(
        quantity_sigma, (int, float, np.floating, np.integer)
    ):
        raise PartitionError(f"quantity_sigma must be a number >= 0, got {quantity_sigma!r}")
    if not (math.isfinite(float(quantity_sigma)) and float(quantity_sigma) >= 0):
        raise PartitionError(f"quantity_sigma must be a finite number >= 0, got {quantity_sigma!r}")
    if scheme not in PARTITIONERS:
        raise PartitionError(f"unknown partition scheme {scheme!r}; known schemes: {', '.join(PARTITIONERS)}")
    if k * m > n:
        raise PartitionError(
            f"cannot give num_clients={k} clients min_size={m} example(s) each from {n} examples"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise PartitionError(f"seed must be an integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    if scheme == "iid":
        parts = _iid(n, k, rng)
    elif scheme == "dirichlet":
        parts = _dirichlet(_pseudo_labels(y), k, float(alpha), m, rng)
    elif scheme == "shards":
        parts = _shards(_pseudo_labels(y), k, spc, rng)
    elif scheme == "quantity":
        parts = _quantity(n, k, float(quantity_sigma), m, rng)
    else:
        parts = _natural(_check_groups(groups, n), k, rng)
    out = [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    smallest = min(len(p) for p in out)
    if smallest < m:
        raise PartitionError(
            f"scheme {scheme!r} left a client with {smallest} example(s) < min_size={m} "
            f"(num_clients={k}, n={n}); use fewer clients or a smaller min_size"
        )
    return out


def label_counts(labels: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
    """Matrix (clients x labels) of example counts per client and label, for reports and tests."""
    classes, inverse = np.unique(np.asarray(labels), return_inverse=True)
    counts = np.zeros((len(parts), len(classes)), dtype=np.int64)
    for c, idx in enumerate(parts):
        counts[c] = np.bincount(inverse[idx], minlength=len(classes))
    return counts


# ---------------------------------------------------------------- checks


def _check_int(name: str, value: object, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PartitionError(f"{name} must be an integer >= {lowest}, got {value!r}")
    if int(value) < lowest:
        raise PartitionError(f"{name} must be >= {lowest}, got {value}")
    return int(value)


def _check_labels(labels: object) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise PartitionError(f"labels must be a 1-D array, got shape {y.shape}")
    if y.shape[0] == 0:
        raise PartitionError("labels is empty: nothing to partition")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise PartitionError(f"labels must be numeric, got dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y)):
        raise PartitionError("labels contain NaN/Inf")
    return y


def _check_groups(groups: object, n: int) -> np.ndarray:
    if groups is None:
        raise PartitionError("scheme 'natural' needs groups (one id per example); this dataset has none")
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise PartitionError(f"groups must have shape ({n},) like the labels, got {g.shape}")
    return g


def _pseudo_labels(y: np.ndarray) -> np.ndarray:
    """Class ids 0..K-1; a float (regression) target is cut into REGRESSION_BINS quantile bins first."""
    if np.issubdtype(y.dtype, np.floating):
        cuts = np.quantile(y, np.linspace(0, 1, REGRESSION_BINS + 1)[1:-1])
        y = np.searchsorted(cuts, y, side="right")
    return np.unique(y, return_inverse=True)[1].reshape(-1)


# ---------------------------------------------------------------- schemes


def _iid(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    return np.array_split(rng.permutation(n), k)


def _dirichlet(y: np.ndarray, k: int, alpha: float, m: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Per class, client shares ~ Dir(alpha); a client already holding n/k examples gets no more."""
    n = y.shape[0]
    by_class = [np.flatnonzero(y == c) for c in range(int(y.max()) + 1)]
    for _ in range(DIRICHLET_MAX_RETRIES):
        parts: list[list[np.ndarray]] = [[] for _ in range(k)]
        sizes = np.zeros(k, dtype=np.int64)
        for idx in by_class:
            idx = rng.permutation(idx)
            p = rng.dirichlet(np.full(k, alpha))
            p = np.where(sizes < n / k, p, 0.0)
            total = p.sum()
            p = p / total if total > 0 else np.full(k, 1.0 / k)
            cuts = (np.cumsum(p)[:-1] * len(idx)).astype(np.int64)
            for c, chunk in enumerate(np.split(idx, cuts)):
                parts[c].append(chunk)
                sizes[c] += len(chunk)
        if sizes.min() >= m:
            return [np.concatenate(p) for p in parts]
    raise PartitionError(
        f"dirichlet with alpha={alpha} could not give each of num_clients={k} clients min_size={m} "
        f"example(s) from {n} examples in {DIRICHLET_MAX_RETRIES} draws; raise alpha or use fewer clients"
    )


def _shards(y: np.ndarray, k: int, spc: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Cut each label's examples into label-pure shards (balanced sizes); deal spc shards per client."""
    n_shards = k * spc
    counts = np.bincount(y)
    labels_present = int(np.count_nonzero(counts))
    if n_shards < labels_present:
        raise PartitionError(
            f"shards: num_clients*shards_per_client={k}*{spc}={n_shards} shards cannot cover "
            f"{labels_present} labels (one label per shard); raise shards_per_client or use 'dirichlet'"
        )
    if n_shards > y.shape[0]:
        raise PartitionError(
            f"shards: num_clients*shards_per_client={n_shards} shards exceed the {y.shape[0]} examples"
        )
    per_label = np.where(counts > 0, 1, 0)
    heap = [(-float(counts[c]), c) for c in range(len(counts)) if counts[c] > 1]
    heapq.heapify(heap)
    for _ in range(n_shards - labels_present):
        _, c = heapq.heappop(heap)
        per_label[c] += 1
        if per_label[c] < counts[c]:
            heapq.heappush(heap, (-counts[c] / per_label[c], c))
    shards: list[np.ndarray] = []
    for c in range(len(counts)):
        if counts[c]:
            shards.extend(np.array_split(rng.permutation(np.flatnonzero(y == c)), per_label[c]))
    order = rng.permutation(n_shards)
    return [np.concatenate([shards[s] for s in order[c * spc : (c + 1) * spc]]) for c in range(k)]


def _quantity(n: int, k: int, sigma: float, m: int, rng: np.random.Generator) -> list[np.ndarray]:
    """IID labels; client sizes = min_size + a lognormal(0, sigma) share of the rest (largest remainder)."""
    weights = rng.lognormal(mean=0.0, sigma=sigma, size=k)
    spare = n - k * m
    quota = weights / weights.sum() * spare
    extra = np.floor(quota).astype(np.int64)
    short = spare - int(extra.sum())
    extra[np.argsort(-(quota - extra), kind="stable")[:short]] += 1
    sizes = m + extra
    return np.split(rng.permutation(n), np.cumsum(sizes)[:-1])


def _natural(groups: np.ndarray, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One client per group; with fewer clients than groups, groups go round-robin in a seeded order."""
    ids, inverse = np.unique(groups, return_inverse=True)
    inverse = inverse.reshape(-1)
    if k > len(ids):
        raise PartitionError(
            f"natural: num_clients={k} exceeds the {len(ids)} natural groups; use num_clients <= {len(ids)}"
        )
    owner = np.empty(len(ids), dtype=np.int64)
    owner[rng.permutation(len(ids))] = np.arange(len(ids)) % k
    client_of_example = owner[inverse]
    return [np.flatnonzero(client_of_example == c) for c in range(k)]
