"""A user's own dataset and model, reachable by import path (tests.fl_core._byo:...)."""

from __future__ import annotations

import numpy as np
from torch import nn

from fl_core.data import Dataset, dataset_from_arrays


def blobs(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Two Gaussian blobs in 5 dimensions: a task any linear model learns."""
    rng = np.random.default_rng(seed)
    n = 240
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 5)).astype(np.float32) + 1.5 * y[:, None]
    cut = int(n * (1 - test_fraction))
    return dataset_from_arrays("blobs", x[:cut], y[:cut], x[cut:], y[cut:], task="classification")


def tiny_net(input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    width = int(np.prod(input_shape))
    return nn.Sequential(nn.Flatten(), nn.Linear(width, 8), nn.ReLU(), nn.Linear(8, num_outputs))


def not_a_dataset(test_fraction: float = 0.2, seed: int = 0) -> list[int]:
    return [1, 2, 3]
