"""Safe building blocks for your own loop: distributed DP composed with secure aggregation in one call.

`distributed_dp_sum` runs the same `DistributedGaussian` mechanism and `SecureAggregator` as the
federated server, so the survivors secagg requires and the encoding range follow from the noise: every
client's share is sized for the smallest cohort the round may finish with, and secagg refuses to unmask
fewer, so no released sum ever carries less noise than accounted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from dp_accounting import DpEvent

from fl_core.aggregators import SecureAggregator, Transmission
from fl_core.errors import ConfigError, FLError
from fl_core.mechanisms import DistributedGaussian, RoundContext
from fl_core.privacy import PrivacySpec
from fl_core.sampling import ClientSampler
from fl_core.types import ClientUpdate


class RoundAbortedError(FLError):
    """Too few clients survived for the noise the shares were sized for: nothing was released."""


@dataclass(frozen=True)
class PrivateSum:
    """The noised sum of clipped updates, who contributed, and what the release costs (its DpEvent)."""

    total: np.ndarray
    survivors: tuple[int, ...]
    min_survivors: int
    noise_stddev: float
    event: DpEvent
    transmission: Transmission


def distributed_dp_sum(
    updates: Sequence[np.ndarray] | Mapping[int, np.ndarray],
    *,
    clip_norm: float,
    noise_multiplier: float,
    dropout_tolerance: float = 0.3,
    corrupt_fraction: float = 0.05,
    dropouts: Mapping[int, str] | None = None,
    seed: int | None = None,
) -> PrivateSum:
    """Clip each update to `clip_norm`, add each client's Gaussian share, and sum them under SecAgg+.

    The sum carries N(0, (z C)^2) at least (more when more than the minimum survive), charged as one
    Gaussian of multiplier z with replace-one sensitivity 2C over a fixed cohort (`event`). `dropouts`
    maps a client to the secagg stage it vanishes in. Raises RoundAbortedError when fewer than
    ceil((1 - dropout_tolerance) n) clients survive, ConfigError for impossible parameters.
    """
    items = dict(updates) if isinstance(updates, Mapping) else dict(enumerate(updates))
    n = len(items)
    if n < 2:
        raise ConfigError(f"a secure sum needs at least 2 clients, got {n}")
    vectors = {cid: np.asarray(v) for cid, v in items.items()}
    dims = {v.size for v in vectors.values()}
    if len(dims) != 1 or any(v.ndim != 1 for v in vectors.values()):
        raise ConfigError(f"updates must be 1-D vectors of one length, got lengths {sorted(dims)}")
    dim = dims.pop()
    spec = PrivacySpec(
        mode="distributed",
        secagg=True,
        clip_norm=clip_norm,
        noise_multiplier=noise_multiplier,
        dropout_tolerance=dropout_tolerance,
        corrupt_fraction=corrupt_fraction,
        seed=seed,
    )
    mech = DistributedGaussian(spec, dim=dim, sampler=ClientSampler(n, "fixed", n))
    ctx = RoundContext(1, n, os.urandom(16))
    contributions = {
        cid: mech.client_side(ClientUpdate(cid, v.astype(np.float32), 1), ctx) for cid, v in vectors.items()
    }
    agg = SecureAggregator(dropout_tolerance=dropout_tolerance, corrupt_fraction=corrupt_fraction)
    tx = agg.aggregate(ctx, contributions, dict(dropouts or {}), mech, np.zeros(dim, np.float32))
    if tx.sums is None:
        raise RoundAbortedError(f"nothing released: {tx.aborted}")
    m_min = mech.min_survivors(ctx)
    return PrivateSum(
        total=tx.sums.delta,
        survivors=tx.sums.survivors,
        min_survivors=m_min,
        noise_stddev=noise_multiplier * clip_norm * float(np.sqrt(len(tx.sums.survivors) / m_min)),
        event=mech.round_event(ctx),
        transmission=tx,
    )
