"""The app's own ML code: digits, a small CNN, local SGD. privagg's pieces do the work the user already has
(data split, model, training loop); nothing here knows about secure aggregation or DP."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from dp_accounting import DpEvent
from flwr.app import Array, ArrayRecord

from fl_core.config import RunConfig
from fl_core.experiment import client_partition, resolve_dataset, resolve_model
from fl_core.flower import privagg_config
from fl_core.models import get_flat
from fl_core.torch_client import LocalDP, TorchClient
from fl_core.types import RoundConfig


def app_config(run_config: Mapping[str, Any]) -> RunConfig:
    """The run's settings (data.*, model.*, train.*, run.seed, dp.*, secagg.*) from [tool.flwr.app.config]."""
    return privagg_config(run_config)


def initial_arrays(cfg: RunConfig) -> ArrayRecord:
    """The seeded initial model as an ArrayRecord of its parameters, in model.parameters() order."""
    model = _model(cfg)
    return ArrayRecord(array_dict={k: Array(p.detach().numpy().copy()) for k, p in model.named_parameters()})


def _model(cfg: RunConfig) -> torch.nn.Module:
    torch.set_num_threads(cfg.run.threads)
    torch.manual_seed(cfg.run.seed)
    return resolve_model(cfg, _dataset(cfg))


@lru_cache(maxsize=4)
def _cached(key: str) -> Any:
    cfg = RunConfig.model_validate_json(key)
    ds = resolve_dataset(cfg)
    return ds, client_partition(cfg, ds)


def _dataset(cfg: RunConfig) -> Any:
    return _cached(cfg.model_dump_json())[0]


def client(cfg: RunConfig, partition_id: int) -> TorchClient:
    """This node's client: its slice of the seeded split (the same split `privagg run` makes); under
    dp.mode = "local" its training is privagg's DP-SGD (Opacus, Poisson batches)."""
    ds, parts = _cached(cfg.model_dump_json())
    if not 0 <= partition_id < len(parts):
        raise ValueError(f"partition-id {partition_id} outside 0..{len(parts) - 1} (data.num_clients)")
    idx = parts[partition_id]
    d = cfg.dp
    local = LocalDP(d.noise_multiplier or 1.0, d.clip_norm, d.delta, d.seed) if d.mode == "local" else None
    return TorchClient(partition_id, ds.x_train[idx], ds.y_train[idx], ds.task, _model(cfg), dp_sgd=local)


def train(
    cfg: RunConfig, partition_id: int, global_vec: np.ndarray, server_round: int
) -> tuple[np.ndarray, int, float, DpEvent | None]:
    """Local training from the global weights: (trained weights, example count, mean training loss, the
    DP-SGD event it cost or None)."""
    t = cfg.train
    rc = RoundConfig(
        round=server_round, local_epochs=t.local_epochs, batch_size=t.batch_size, lr=t.lr,
        momentum=t.momentum, seed=cfg.run.seed,
    )  # fmt: skip
    c = client(cfg, partition_id)
    update = c.fit(global_vec, rc)
    event = c.dp_sgd.event(c.num_examples, rc) if c.dp_sgd is not None else None
    return global_vec + update.delta, update.num_examples, float(update.metrics["train_loss"]), event


def evaluate(cfg: RunConfig, weights: np.ndarray) -> dict[str, float]:
    """Accuracy and loss of the global model on the held-out test split."""
    from fl_core.models import set_flat
    from fl_core.training import as_tensors
    from fl_core.training import evaluate as run_eval

    ds = _dataset(cfg)
    model = _model(cfg)
    set_flat(model, weights.astype(np.float32))
    xs, ys = as_tensors(ds.x_test, ds.y_test, ds.task)
    return run_eval(model, xs, ys, ds.task)


__all__ = ["app_config", "client", "evaluate", "get_flat", "initial_arrays", "train"]
