"""Shamir t-of-n secret sharing over the prime field GF(2^256 + 297) with Python integers.

The field is larger than any 32-byte secret (AES seeds, X25519 private keys); coefficients come from
`secrets`; Lagrange coefficients at zero are cached per set of x-coordinates (Shamir 1979).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from functools import lru_cache

from secagg.errors import InvalidMessageError, SecAggConfigError, ThresholdError

__all__ = [
    "PRIME",
    "SHARE_BYTES",
    "split",
    "reconstruct",
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


def split(secret: int, threshold: int, xs: Sequence[int], prime: int = PRIME) -> list[int]:
    """Share `secret` so that any `threshold` of the points (x, y) recover it; returns y for each x in xs."""
    if not 0 <= secret < prime:
        raise SecAggConfigError(f"secret must be in [0, p), got {secret}")
    if not 1 <= threshold <= len(xs):
        raise SecAggConfigError(f"threshold must be in [1, {len(xs)}], got {threshold}")
    _check_points(xs, prime)
    coeffs = [secret] + [secrets.randbelow(prime) for _ in range(threshold - 1)]
    ys = []
    for x in xs:
        acc = 0
        for c in reversed(coeffs):  # Horner
            acc = (acc * x + c) % prime
        ys.append(acc)
    return ys


@lru_cache(maxsize=8192)
def lagrange_at_zero(xs: tuple[int, ...], prime: int = PRIME) -> tuple[int, ...]:
    """Coefficients l_i with f(0) = sum l_i f(x_i) for every polynomial of degree < len(xs)."""
    _check_points(xs, prime)
    out = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * xj % prime
                den = den * (xj - xi) % prime
        out.append(num * pow(den, -1, prime) % prime)
    return tuple(out)


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
