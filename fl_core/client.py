"""The client side of a round: the `Client` protocol (no torch needed to implement it)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from fl_core.types import ClientUpdate, ModelVector, RoundConfig


@runtime_checkable
class Client(Protocol):
    """Anything that trains on local data and answers with a model delta (Flower-style `fit`).

    The server evaluates the global model itself (`evaluate_fn`), so a client needs no `evaluate`."""

    client_id: int
    num_examples: int

    def fit(self, global_weights: ModelVector, config: RoundConfig) -> ClientUpdate: ...
