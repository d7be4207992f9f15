"""Shamir t-of-n secret sharing over the prime field GF(2^256 + 297) with Python integers.

The field is larger than any 32-byte secret (AES seeds, X25519 private keys); coefficients come from
`secrets`; Lagrange coefficients at zero are cached per set of x-coordinates (Shamir 1979).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from secagg.errors import InconsistentSharesError, InvalidMessageError, SecAggConfigError, ThresholdError

__all__ = [
    "PRIME",
    "SHARE_BYTES",
    "split",
    "reconstruct",
    "reconstruct_checked",
    "batch_inverse",
    "lagrange_at_zero",
    "share_to_bytes",
    "share_from_bytes",
]

PRIME = 2**256 + 297  # smallest prime above 2^256
SHARE_BYTES = 33


def _check_points(xs: Sequence[int], prime: int) -> None:
    if len(set(xs)) != len(xs):
        raise SecAggConfigError(f"x-coordinates must be distinct, got {list(xs)}")
    for x in xs:
        if not 0 < x < prime:
            raise SecAggConfigError(f"x-coordinate must be in [1, p), got {x}")


def split(
    secret: int,
    threshold: int,
    xs: Sequence[int],
    prime: int = PRIME,
    randbelow: Callable[[int], int] = secrets.randbelow,
) -> list[int]:
    """Share `secret` so that any `threshold` of the points (x, y) recover it; returns y for each x in xs.

    The threshold - 1 random coefficients come from `randbelow` (`secrets` unless a session passes its
    keyed DRBG, `hazmat.drbg`, so that a resumed session reproduces its messages)."""
    if not 0 <= secret < prime:
        raise SecAggConfigError(f"secret must be in [0, p), got {secret}")
    if not 1 <= threshold <= len(xs):
        raise SecAggConfigError(f"threshold must be in [1, {len(xs)}], got {threshold}")
    _check_points(xs, prime)
    coeffs = [secret] + [randbelow(prime) for _ in range(threshold - 1)]
    ys = []
    for x in xs:
        acc = 0
        for c in reversed(coeffs):  # Horner
            acc = (acc * x + c) % prime
        ys.append(acc)
    return ys


def batch_inverse(values: Sequence[int], prime: int = PRIME) -> list[int]:
    """Inverses of non-zero field elements with one modular exponentiation (Montgomery's trick):
    3(m - 1) multiplications replace m - 1 inversions, the dominant cost of reconstruction."""
    prefix = []
    acc = 1
    for v in values:
        prefix.append(acc)
        acc = acc * v % prime
    if acc == 0:
        raise SecAggConfigError("cannot invert zero")
    inv = pow(acc, -1, prime)
    out = [0] * len(prefix)
    for i in range(len(prefix) - 1, -1, -1):
        out[i] = inv * prefix[i] % prime
        inv = inv * values[i] % prime
    return out


@lru_cache(maxsize=8192)
def lagrange_at_zero(xs: tuple[int, ...], prime: int = PRIME) -> tuple[int, ...]:
    """Coefficients l_i with f(0) = sum l_i f(x_i) for every polynomial of degree < len(xs)."""
    _check_points(xs, prime)
    nums, dens = [], []
    for i, xi in enumerate(xs):
        nums.append(math.prod(xj for j, xj in enumerate(xs) if j != i) % prime)
        dens.append(math.prod(xj - xi for j, xj in enumerate(xs) if j != i) % prime)
    return tuple(n * d % prime for n, d in zip(nums, batch_inverse(dens, prime), strict=True))


def reconstruct(points: Sequence[tuple[int, int]], threshold: int, prime: int = PRIME) -> int:
    """Recover the secret from at least `threshold` points (uses the `threshold` with smallest x).

    Raises ThresholdError with fewer points: t - 1 shares are consistent with every secret.
    """
    if len(points) < threshold:
        raise ThresholdError(f"need {threshold} shares to reconstruct, got {len(points)}")
    chosen = sorted(points)[:threshold]
    xs = tuple(x for x, _ in chosen)
    lam = lagrange_at_zero(xs, prime)
    acc = 0
    for (_, y), li in zip(chosen, lam, strict=False):
        if not 0 <= y < prime:
            raise InvalidMessageError(f"share value out of field range: {y}")
        acc += li * y
    return acc % prime


def share_to_bytes(y: int) -> bytes:
    """Fixed-width little-endian encoding of a share value."""
    return y.to_bytes(SHARE_BYTES, "little")


def share_from_bytes(raw: bytes) -> int:
    """Inverse of share_to_bytes, validating width and field range."""
    if len(raw) != SHARE_BYTES:
        raise InvalidMessageError(f"share must be {SHARE_BYTES} bytes, got {len(raw)}")
    y = int.from_bytes(raw, "little")
    if y >= PRIME:
        raise InvalidMessageError("share value out of field range")
    return y


def _weights(xs: Sequence[int], prime: int) -> tuple[list[int], list[int]]:
    """v_j = 1 / prod_{l != j}(x_j - x_l) and 1 / x_j for arbitrary distinct points: one batched inversion."""
    m = len(xs)
    diff = np.subtract.outer(np.asarray(xs, dtype=np.int64), np.asarray(xs, dtype=np.int64))
    np.fill_diagonal(diff, 1)  # x < 2^33: differences fit int64; products are taken as Python ints
    dens = [math.prod(row) % prime for row in diff.tolist()]
    inv = batch_inverse(dens + list(xs), prime)
    return inv[:m], inv[m:]


@lru_cache(maxsize=64)
def _universe(size: int, prime: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Weights of the full point set x = 1..size: prod_{l != j}(j - l) = (j - 1)! (-1)^(size - j)
    (size - j)!, so one batched inversion per size serves every subset (`_subset_weights`)."""
    fact = [1] * (size + 1)
    for i in range(1, size + 1):
        fact[i] = fact[i - 1] * i
    dens = [(-1) ** (size - j) * fact[j - 1] * fact[size - j] % prime for j in range(1, size + 1)]
    inv = batch_inverse(dens + list(range(1, size + 1)), prime)
    return tuple(inv[:size]), tuple(inv[size:])


def _subset_weights(xs: Sequence[int], size: int, prime: int) -> tuple[list[int], list[int]]:
    """v_j of a subset of 1..size without any inversion: v_j(subset) = v_j(all) * prod over the missing
    points l of (x_j - l), a few small factors when few holders are missing."""
    full_v, full_ix = _universe(size, prime)
    present = set(xs)
    missing = [x for x in range(1, size + 1) if x not in present]
    v = [full_v[x - 1] * math.prod(x - gap for gap in missing) % prime for x in xs]
    return v, [full_ix[x - 1] for x in xs]


def _consistent_secret(
    xs: Sequence[int], ys: Sequence[int], threshold: int, prime: int, weights: tuple[list[int], list[int]]
) -> int | None:
    """f(0) when the m points lie on one polynomial of degree < threshold, else None.

    With v_j = 1 / prod_{l != j}(x_j - x_l), the points lie on such a polynomial iff
    sum_j v_j y_j x_j^e = 0 for e = 0 .. m - t - 1 (the parity checks of the Reed-Solomon code whose
    codewords are the sharings; McEliece and Sarwate 1981), and then f(0) = (-1)^(m-1) (prod x) sum_j
    v_j y_j / x_j (Lagrange at zero in barycentric form)."""
    m = len(xs)
    v, inv_x = weights
    z = [vj * y % prime for vj, y in zip(v, ys, strict=True)]
    w = list(z)
    for _ in range(m - threshold):
        if sum(w) % prime:
            return None
        w = [wj * xj for wj, xj in zip(w, xs, strict=True)]  # grows by <= 32 bits a step: no reduction
    acc = sum(zj * ix for zj, ix in zip(z, inv_x, strict=True)) * math.prod(xs) % prime
    return acc if m % 2 else (prime - acc) % prime


def reconstruct_checked(
    points: Sequence[tuple[int, int]], threshold: int, prime: int = PRIME, universe: int | None = None
) -> tuple[int, bool]:
    """Recover the secret from all points and say whether it was verified.

    With more than `threshold` points, all must lie on one polynomial of degree < threshold (error
    detection): otherwise InconsistentSharesError names the x-coordinates whose removal makes the rest
    consistent (the culprit when one share is bad and at least t + 2 arrived), or all of them when no
    single removal does. With exactly `threshold` points nothing can be checked: (secret, False).
    `universe=K` says every x lies in 1..K (the protocol's x = position in the owner's neighbourhood):
    the weights then come from a per-K table with no inversion per secret.
    """
    if len(points) < threshold:
        raise ThresholdError(f"need {threshold} shares to reconstruct, got {len(points)}")
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    _check_points(xs, prime)
    for y in ys:
        if not 0 <= y < prime:
            raise InvalidMessageError(f"share value out of field range: {y}")

    def weights(sub: Sequence[int]) -> tuple[list[int], list[int]]:
        if universe is not None and all(1 <= x <= universe for x in sub):
            return _subset_weights(sub, universe, prime)
        return _weights(sub, prime)

    secret = _consistent_secret(xs, ys, threshold, prime, weights(xs))
    if secret is not None:
        return secret, len(points) > threshold
    suspects = []
    if len(points) >= threshold + 2:
        for j in range(len(points)):
            rx = [x for i, x in enumerate(xs) if i != j]
            ry = [y for i, y in enumerate(ys) if i != j]
            if _consistent_secret(rx, ry, threshold, prime, weights(rx)) is not None:
                suspects.append(xs[j])
    raise InconsistentSharesError(
        f"{len(points)} shares do not lie on one polynomial of degree < {threshold}",
        suspects=tuple(suspects) if suspects else tuple(sorted(xs)),
    )
