"""Adaptive server optimizers FedAdam and FedYogi (Reddi et al., ICLR 2021, Algorithm 2).

The mean client delta is the pseudo-gradient (with its sign: a step *along* it); the server keeps
first and second moments m, v and steps x <- x + eta * m / (sqrt(v) + tau).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from fl_core.errors import ConfigError
from fl_core.strategies.base import Strategy
from fl_core.types import ModelVector


class FedOpt(Strategy):
    """Shared moment bookkeeping; subclasses define the second-moment rule."""

    def __init__(self, server_lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3):
        for key, val, lo, hi in (
            ("server_lr", server_lr, 0.0, np.inf),
            ("tau", tau, 0.0, np.inf),
        ):
            if not np.isfinite(val) or not lo < val < hi:
                raise ConfigError(f"strategy.{key} must be > 0, got {val}")
        for key, val in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= val < 1.0:
                raise ConfigError(f"strategy.{key} must be in [0, 1), got {val}")
        self.server_lr, self.beta1, self.beta2, self.tau = (
            float(server_lr),
            float(beta1),
            float(beta2),
            float(tau),
        )
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None

    def initialize(self, weights: ModelVector) -> None:
        self.m = np.zeros(weights.size, dtype=np.float64)
        self.v = np.full(weights.size, self.tau**2, dtype=np.float64)

    @abstractmethod
    def _second_moment(self, v: np.ndarray, g2: np.ndarray) -> np.ndarray:
        """The next second moment from the current one and the squared pseudo-gradient."""

    def apply(self, global_weights: ModelVector, mean_delta: ModelVector, round_: int) -> ModelVector:
        if self.m is None or self.v is None:
            self.initialize(global_weights)
        if self.m is None or self.v is None or self.m.size != mean_delta.size:
            raise ConfigError(
                f"{self.name}: delta has {mean_delta.size} values; moments were sized for another model"
            )
        g = mean_delta.astype(np.float64)
        self.m = self.beta1 * self.m + (1.0 - self.beta1) * g
        self.v = self._second_moment(self.v, g * g)
        step = self.server_lr * self.m / (np.sqrt(self.v) + self.tau)
        return (global_weights + step).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {
            "m": None if self.m is None else self.m.copy(),
            "v": None if self.v is None else self.v.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.m = None if state.get("m") is None else np.asarray(state["m"], dtype=np.float64)
        self.v = None if state.get("v") is None else np.asarray(state["v"], dtype=np.float64)


class FedAdam(FedOpt):
    """v <- beta2 v + (1 - beta2) g^2."""

    name = "fedadam"

    def _second_moment(self, v: np.ndarray, g2: np.ndarray) -> np.ndarray:
        return self.beta2 * v + (1.0 - self.beta2) * g2


class FedYogi(FedOpt):
    """v <- v - (1 - beta2) g^2 sign(v - g^2): additive, so v grows slowly on sparse large gradients."""

    name = "fedyogi"

    def _second_moment(self, v: np.ndarray, g2: np.ndarray) -> np.ndarray:
        return v - (1.0 - self.beta2) * g2 * np.sign(v - g2)
