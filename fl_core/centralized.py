"""The non-federated baseline: same model, initial weights, optimizer and passes, on pooled data."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from fl_core.errors import TrainingDivergedError
from fl_core.models import set_flat
from fl_core.training import Task, as_tensors, evaluate, train_epochs
from fl_core.types import ModelVector


def matched_epochs(rounds: int, local_epochs: int, expected_cohort: float, num_clients: int) -> int:
    """Expected passes over the pooled data that FL makes: rounds * local_epochs * (cohort / clients)."""
    return max(1, math.ceil(rounds * local_epochs * expected_cohort / num_clients - 1e-9))


def train_centralized(
    model: torch.nn.Module,
    initial_weights: ModelVector,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    task: Task,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float = 0.0,
    seed: int = 0,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train from `initial_weights` for `epochs`; returns test metrics after every epoch."""
    set_flat(model, initial_weights)
    xt, yt = as_tensors(x_train, y_train, task)
    xs, ys = as_tensors(x_test, y_test, task)
    gen = torch.Generator().manual_seed(seed)
    curve: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        loss = train_epochs(
            model, xt, yt, task, epochs=1, batch_size=batch_size, lr=lr, momentum=momentum, generator=gen
        )
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"the centralized baseline diverged (train loss {loss} in epoch {epoch} at lr={lr}); "
                "lower train.lr"
            )
        metrics = {"train_loss": loss, **evaluate(model, xs, ys, task)}
        curve.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    return curve
