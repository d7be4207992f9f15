"""Server aggregation strategies: FedAvg, FedProx, FedAdam, FedYogi behind one `Strategy` ABC."""

from __future__ import annotations

from typing import Any

from fl_core.errors import ConfigError
from fl_core.strategies.base import Strategy, weighted_mean_delta
from fl_core.strategies.fedavg import FedAvg, FedProx
from fl_core.strategies.fedopt import FedAdam, FedOpt, FedYogi

STRATEGIES: dict[str, type[Strategy]] = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
}


def build_strategy(name: str, **params: Any) -> Strategy:
    """A strategy by name with its parameters; unknown names and bad values raise ConfigError."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
    return cls(**params)


__all__ = [
    "STRATEGIES",
    "FedAdam",
    "FedAvg",
    "FedOpt",
    "FedProx",
    "FedYogi",
    "Strategy",
    "build_strategy",
    "weighted_mean_delta",
]
