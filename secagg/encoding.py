"""Fixed-point encoding of float vectors into Z_{2^32} so that the ring sum of n clients cannot wrap.

Each value is clipped to [-c, c], scaled by s = (2^(b-1) - 1) / c and stochastically rounded with an
explicit generator (rounding is unbiased and not secret); the integer is stored in two's complement.
With b = 32 - ceil(log2 n), |sum| <= n (2^(b-1) - 1) < 2^31, so the uint32 ring sum read as int32 is
the exact integer sum, and the decoded float sum is within n / s of the sum of the clipped inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from secagg.errors import SecAggConfigError

__all__ = ["RING_BITS", "FixedPointEncoding", "max_bits_for"]

RING_BITS = 32


def max_bits_for(n_clients: int) -> int:
    """Largest per-input bit width b so n signed b-bit values sum inside int32: 32 - ceil(log2 n)."""
    if not isinstance(n_clients, int) or isinstance(n_clients, bool) or n_clients < 1:
        raise SecAggConfigError(f"number of clients must be an int >= 1, got {n_clients!r}")
    bits = RING_BITS - math.ceil(math.log2(n_clients)) if n_clients > 1 else RING_BITS
    if bits < 2:
        raise SecAggConfigError(f"{n_clients} clients leave fewer than 2 bits per input in a 32-bit ring")
    return bits


@dataclass(frozen=True)
class FixedPointEncoding:
    """float <-> Z_{2^32} with clipping range `clip_range` and `bits` bits per input (sign included)."""

    clip_range: float
    bits: int

    def __post_init__(self) -> None:
        c = self.clip_range
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c <= 0:
            raise SecAggConfigError(f"clip_range must be a finite float > 0, got {c!r}")
        b = self.bits
        if isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= RING_BITS:
            raise SecAggConfigError(f"bits must be an int in [2, {RING_BITS}], got {b!r}")

    @classmethod
    def for_clients(cls, n_clients: int, clip_range: float, bits: int | None = None) -> FixedPointEncoding:
        """Encoding for `n_clients`: `bits` defaults to, and may not exceed, max_bits_for(n)."""
        limit = max_bits_for(n_clients)
        if bits is None:
            bits = limit
        elif bits > limit:
            raise SecAggConfigError(
                f"bits={bits} lets the sum of {n_clients} clients wrap the 32-bit ring; at most {limit}"
            )
        return cls(float(clip_range), bits)

    @property
    def max_level(self) -> int:
        """Largest encoded magnitude, 2^(b-1) - 1."""
        return (1 << (self.bits - 1)) - 1

    @property
    def scale(self) -> float:
        """Integer units per unit of input."""
        return self.max_level / self.clip_range

    def max_clients(self) -> int:
        """Most inputs whose sum cannot wrap: floor((2^31 - 1) / (2^(b-1) - 1))."""
        return ((1 << (RING_BITS - 1)) - 1) // self.max_level

    def max_sum_error(self, n_clients: int) -> float:
        """Bound on |decoded sum - sum of clipped inputs| per entry: n / scale (each rounding moves < 1)."""
        return n_clients / self.scale

    def encode(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Clip, scale, stochastically round (E[q] = s x) and return uint32 two's complement words."""
        if not isinstance(rng, np.random.Generator):
            raise SecAggConfigError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        x = np.asarray(values)
        if x.ndim != 1:
            raise SecAggConfigError(f"expected a 1-D vector, got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
            raise SecAggConfigError(f"expected a numeric vector, got dtype {x.dtype}")
        y = np.clip(x, -self.clip_range, self.clip_range, dtype=np.float64)
        if not np.isfinite(y).all():
            raise SecAggConfigError("input vector contains NaN")
        y *= self.scale
        y += rng.random(y.shape[0])  # floor(v + U) rounds up with probability frac(v): unbiased
        np.floor(y, out=y)
        np.clip(y, -self.max_level, self.max_level, out=y)  # guards float rounding at the edges
        return y.astype(np.int32).view(np.uint32)

    def decode_sum(self, ring_sum: np.ndarray) -> np.ndarray:
        """Map the uint32 ring sum of up to max_clients() encodings back to a float64 sum."""
        s = np.asarray(ring_sum)
        if s.dtype != np.uint32:
            raise SecAggConfigError(f"ring sum must be uint32, got {s.dtype}")
        return s.view(np.int32).astype(np.float64) / self.scale
