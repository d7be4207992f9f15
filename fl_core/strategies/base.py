"""The Strategy extension point: how the server turns the clients' mean delta into the next global model.

A strategy only ever needs the example-weighted *mean* delta, never an individual update, so the same
strategy runs unchanged behind secure aggregation (which reveals only sums).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from fl_core.errors import UpdateRejectedError
from fl_core.types import ClientUpdate, ModelVector


def weighted_mean_delta(updates: Sequence[ClientUpdate]) -> ModelVector:
    """sum_i n_i d_i / sum_i n_i (McMahan et al. 2017, FedAvg), accumulated in float64."""
    if not updates:
        raise UpdateRejectedError("no client updates to aggregate")
    total = np.zeros(updates[0].delta.size, dtype=np.float64)
    weight = 0
    for u in updates:
        total += u.num_examples * u.delta.astype(np.float64)
        weight += u.num_examples
    return (total / weight).astype(np.float32)


class Strategy(ABC):
    """Server-side aggregation rule. Subclasses implement `apply`; state must survive `state_dict`."""

    name: str = "strategy"

    def initialize(self, weights: ModelVector) -> None:
        """Called once with the initial global weights (server optimizers size their moments here)."""

    def client_config(self, round_: int) -> dict[str, Any]:
        """Extra fields for this round's RoundConfig (e.g. FedProx's mu)."""
        return {}

    @abstractmethod
    def apply(self, global_weights: ModelVector, mean_delta: ModelVector, round_: int) -> ModelVector:
        """The next global model from the current one and the example-weighted mean client delta."""

    def aggregate(
        self, global_weights: ModelVector, updates: Sequence[ClientUpdate], round_: int
    ) -> ModelVector:
        """Plaintext convenience: weighted mean of the updates, then `apply`."""
        return self.apply(global_weights, weighted_mean_delta(updates), round_)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (for checkpoint/resume)."""
