"""Client sampling per round: a fixed-size cohort, or Poisson sampling with rate q (for DP amplification)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from fl_core.errors import ConfigError


@dataclass(frozen=True)
class ClientSampler:
    """`fixed`: m clients uniformly without replacement; `poisson`: each client independently with rate q."""

    num_clients: int
    mode: Literal["fixed", "poisson"] = "fixed"
    clients_per_round: int = 10
    rate: float = 0.1

    def __post_init__(self) -> None:
        if self.num_clients < 1:
            raise ConfigError(f"num_clients must be >= 1, got {self.num_clients}")
        if self.mode == "fixed":
            if not 1 <= self.clients_per_round <= self.num_clients:
                m, n = self.clients_per_round, self.num_clients
                raise ConfigError(f"sampling.clients_per_round must be in [1, {n}], got {m}")
        elif self.mode == "poisson":
            if not (0.0 < self.rate <= 1.0):
                raise ConfigError(f"sampling.rate must be in (0, 1], got {self.rate}")
        else:
            raise ConfigError(f"sampling.mode must be 'fixed' or 'poisson', got {self.mode!r}")

    @property
    def expected_cohort(self) -> float:
        return float(self.clients_per_round) if self.mode == "fixed" else self.rate * self.num_clients

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Sorted client ids of one round's cohort (possibly empty under Poisson sampling)."""
        if self.mode == "fixed":
            return np.sort(rng.choice(self.num_clients, size=self.clients_per_round, replace=False))
        return np.flatnonzero(rng.random(self.num_clients) < self.rate)
