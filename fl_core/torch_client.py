"""A torch `Client` over in-memory arrays, sharing one model workspace across simulated clients."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from fl_core.errors import DataError
from fl_core.models import get_flat, set_flat
from fl_core.training import Task, as_tensors, evaluate, train_epochs
from fl_core.types import ClientUpdate, ModelVector, RoundConfig


class TorchClient:
    """A client holding (x, y) arrays; trains a shared model workspace in place (one process, many clients).

    The workspace module is overwritten with the global weights at every call, so sharing it between
    simulated clients is safe and saves building one model per client.
    """

    def __init__(
        self, client_id: int, x: np.ndarray, y: np.ndarray, task: Task, workspace: nn.Module
    ) -> None:
        if len(x) == 0:
            raise DataError(f"client {client_id} has no data")
        if len(x) != len(y):
            raise DataError(f"client {client_id}: {len(x)} inputs but {len(y)} labels")
        self.client_id = client_id
        self.num_examples = len(x)
        self.task: Task = task
        self._x, self._y = as_tensors(x, y, task)
        self._model = workspace

    def fit(self, global_weights: ModelVector, config: RoundConfig) -> ClientUpdate:
        """Local SGD from the global weights; returns local - global, example count and mean train loss."""
        start = time.process_time()
        set_flat(self._model, global_weights)
        gen = torch.Generator().manual_seed(_client_seed(config.seed, config.round, self.client_id))
        center = [p.detach().clone() for p in self._model.parameters()] if config.proximal_mu > 0 else None
        loss = train_epochs(
            self._model,
            self._x,
            self._y,
            self.task,
            epochs=config.local_epochs,
            batch_size=config.batch_size,
            lr=config.lr,
            momentum=config.momentum,
            generator=gen,
            prox_center=center,
            proximal_mu=config.proximal_mu,
        )
        delta = get_flat(self._model) - global_weights
        return ClientUpdate(
            client_id=self.client_id,
            delta=delta.astype(np.float32, copy=False),
            num_examples=self.num_examples,
            metrics={"train_loss": loss},
            compute_s=time.process_time() - start,
        )

    def evaluate(self, global_weights: ModelVector, config: RoundConfig) -> dict[str, float]:
        """Metrics of the global model on this client's local data."""
        set_flat(self._model, global_weights)
        return evaluate(self._model, self._x, self._y, self.task)


def _client_seed(seed: int, round_: int, client_id: int) -> int:
    """A distinct, reproducible shuffling seed per (run seed, round, client)."""
    return int(np.random.SeedSequence([seed, round_, client_id]).generate_state(1)[0])
