"""Canary clients for auditing client-level DP in one run (Andrew et al., ICLR 2024, Sec. 3).

A canary client holds no data: every round it is sampled it sends `norm * direction`, a fixed random unit
vector. Each canary is inserted into the population with probability 1/2; after the run, the cosine of
each canary's direction with the final model delta separates inserted canaries from the others only as
far as the mechanism leaks (`audits.canaries` turns the cosines into an epsilon estimate and a bound).
Canaries are ordinary protocol clients, so they run under secure aggregation and every client-level DP
mode. Directions come from a seeded generator: they are public by design (the auditor knows them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fl_core.errors import ConfigError
from fl_core.types import ClientUpdate, ModelVector, RoundConfig


@dataclass(frozen=True)
class CanaryPlan:
    """m canary directions (m x d unit vectors), which of them are inserted, and the update norm."""

    directions: np.ndarray
    inserted: np.ndarray
    norm: float

    @classmethod
    def draw(cls, m: int, dim: int, norm: float, seed: int) -> CanaryPlan:
        if m < 1:
            raise ConfigError(f"audit.canary_clients must be >= 1 to draw canaries, got {m}")
        if not (np.isfinite(norm) and norm > 0):
            raise ConfigError(f"audit.canary_norm must be > 0, got {norm}")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCA7A]))
        g = rng.standard_normal((m, dim))
        directions = (g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)
        inserted = rng.random(m) < 0.5
        return cls(directions, inserted, float(norm))

    def clients(self, first_id: int) -> list[CanaryClient]:
        """The inserted canaries as clients with ids first_id, first_id + 1, ..."""
        rows = np.flatnonzero(self.inserted)
        return [CanaryClient(first_id + i, self.directions[r], self.norm) for i, r in enumerate(rows)]


class CanaryClient:
    """A `Client` that always answers with the same update: `norm * direction`."""

    num_examples = 1

    def __init__(self, client_id: int, direction: np.ndarray, norm: float) -> None:
        self.client_id = client_id
        self.update = (norm * direction).astype(np.float32)

    def fit(self, global_weights: ModelVector, config: RoundConfig) -> ClientUpdate:
        if global_weights.shape != self.update.shape:
            raise ConfigError(
                f"canary client {self.client_id}: model has {global_weights.size} weights, "
                f"canary {self.update.size}"
            )
        return ClientUpdate(self.client_id, self.update.copy(), 1, {})
