"""A torch `Client` over in-memory arrays, sharing one model workspace across simulated clients."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from dp_accounting import DpEvent
from torch import nn

from dp import events as dp_events
from dp.calibration import dp_sgd_steps
from dp.local import DPSGDConfig, train_dp_sgd
from fl_core.errors import DataError
from fl_core.models import get_flat, set_flat
from fl_core.training import Task, as_tensors, evaluate, train_epochs
from fl_core.types import ClientUpdate, ModelVector, RoundConfig


@dataclass(frozen=True)
class LocalDP:
    """Sample-level DP-SGD settings for every client: noise multiplier z, per-sample clip C, delta."""

    noise_multiplier: float
    max_grad_norm: float
    delta: float
    seed: int | None = None

    def config_for(self, num_examples: int, config: RoundConfig) -> DPSGDConfig:
        """This client's DP-SGD config: the round's lr/epochs, batch at most its dataset size."""
        return DPSGDConfig(
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            batch_size=min(config.batch_size, num_examples),
            epochs=config.local_epochs,
            lr=config.lr,
            momentum=config.momentum,
            delta=self.delta,
        )

    def event(self, num_examples: int, config: RoundConfig) -> DpEvent:
        """The DpEvent one round of this client's local training costs (Poisson rate B/N, its steps)."""
        cfg = self.config_for(num_examples, config)
        steps = dp_sgd_steps(num_examples, cfg.batch_size, cfg.epochs)
        return dp_events.dp_sgd(cfg.noise_multiplier, cfg.batch_size / num_examples, steps)


class TorchClient:
    """A client holding (x, y) arrays; trains a shared model workspace in place (one process, many clients).

    The workspace module is overwritten with the global weights at every call, so sharing it between
    simulated clients is safe and saves building one model per client.
    """

    def __init__(
        self,
        client_id: int,
        x: np.ndarray,
        y: np.ndarray,
        task: Task,
        workspace: nn.Module,
        *,
        dp_sgd: LocalDP | None = None,
    ) -> None:
        if len(x) == 0:
            raise DataError(f"client {client_id} has no data")
        if len(x) != len(y):
            raise DataError(f"client {client_id}: {len(x)} inputs but {len(y)} labels")
        self.client_id = client_id
        self.num_examples = len(x)
        self.task: Task = task
        self._x, self._y = as_tensors(x, y, task)
        self._x_np, self._y_np = x, y
        self._model = workspace
        self.dp_sgd = dp_sgd
        self.grad_sample_mode: str | None = None

    def fit(self, global_weights: ModelVector, config: RoundConfig) -> ClientUpdate:
        """Local SGD from the global weights; returns local - global, example count and mean train loss."""
        start = time.perf_counter()
        set_flat(self._model, global_weights)
        if self.dp_sgd is not None:
            return self._fit_dp_sgd(global_weights, config, start)
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
            compute_s=time.perf_counter() - start,
        )

    def _fit_dp_sgd(self, global_weights: ModelVector, config: RoundConfig, start: float) -> ClientUpdate:
        """Sample-level DP: local training is DP-SGD (dp.local; Opacus as the reference), noise from the OS
        unless the run asked for a noise seed."""
        local = self.dp_sgd
        if local is None:  # narrowed by the caller
            raise DataError("no DP-SGD settings")
        cfg = local.config_for(self.num_examples, config)
        seed = None if local.seed is None else _client_seed(local.seed, config.round, self.client_id)
        res = train_dp_sgd(
            self._model,
            self._x_np,
            self._y_np,
            "cross_entropy" if self.task == "classification" else "mse",
            cfg,
            seed=seed,
            account=False,  # the run's per-client ledger composes the event across rounds
        )
        self.grad_sample_mode = res.grad_sample_mode  # the clipping path dp.local chose, for the report
        delta = get_flat(self._model) - global_weights
        return ClientUpdate(
            client_id=self.client_id,
            delta=delta.astype(np.float32, copy=False),
            num_examples=self.num_examples,
            metrics={"train_loss": res.mean_loss},
            compute_s=time.perf_counter() - start,
        )

    def evaluate(self, global_weights: ModelVector, config: RoundConfig) -> dict[str, float]:
        """Metrics of the global model on this client's local data."""
        set_flat(self._model, global_weights)
        return evaluate(self._model, self._x, self._y, self.task)


def _client_seed(seed: int, round_: int, client_id: int) -> int:
    """A distinct, reproducible shuffling seed per (run seed, round, client)."""
    return int(np.random.SeedSequence([seed, round_, client_id]).generate_state(1)[0])
