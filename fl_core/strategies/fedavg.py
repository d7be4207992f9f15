"""FedAvg (McMahan et al., AISTATS 2017) and FedProx (Li et al., MLSys 2020)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fl_core.errors import ConfigError
from fl_core.strategies.base import Strategy
from fl_core.types import ModelVector


class FedAvg(Strategy):
    """x <- x + server_lr * mean delta; server_lr = 1 is the original FedAvg."""

    name = "fedavg"

    def __init__(self, server_lr: float = 1.0) -> None:
        if not np.isfinite(server_lr) or server_lr <= 0:
            raise ConfigError(f"strategy.server_lr must be > 0, got {server_lr}")
        self.server_lr = float(server_lr)

    def apply(self, global_weights: ModelVector, mean_delta: ModelVector, round_: int) -> ModelVector:
        return (global_weights + np.float32(self.server_lr) * mean_delta).astype(np.float32)


class FedProx(FedAvg):
    """FedAvg on the server; clients add the proximal term mu/2 ||w - w_global||^2 to their loss."""

    name = "fedprox"

    def __init__(self, proximal_mu: float = 0.01, server_lr: float = 1.0) -> None:
        super().__init__(server_lr)
        if not np.isfinite(proximal_mu) or proximal_mu < 0:
            raise ConfigError(f"strategy.proximal_mu must be >= 0, got {proximal_mu}")
        self.proximal_mu = float(proximal_mu)

    def client_config(self, round_: int) -> dict[str, Any]:
        return {"proximal_mu": self.proximal_mu}
