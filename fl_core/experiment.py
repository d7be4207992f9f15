"""One experiment from a RunConfig: data -> partition -> clients -> rounds -> centralized baseline.

This is the library entry point behind `privagg run`; it does no file IO (see `fl_core.rundir`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fl_core.centralized import matched_epochs, train_centralized
from fl_core.config import RunConfig
from fl_core.data import Dataset, load_dataset, partition
from fl_core.models import build_model, get_flat, num_parameters, set_flat
from fl_core.sampling import ClientSampler
from fl_core.server import FaultModel, FederatedServer
from fl_core.strategies import Strategy, build_strategy
from fl_core.torch_client import TorchClient
from fl_core.training import as_tensors, evaluate
from fl_core.types import ModelVector, RoundConfig, RoundRecord


@dataclass
class ExperimentResult:
    """Everything a run produced: per-round history, final metrics, and the centralized curve."""

    config: RunConfig
    history: list[RoundRecord]
    final: dict[str, float]
    centralized: list[dict[str, float]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """FL vs centralized in one dict (summary.json)."""
        key = "accuracy" if "accuracy" in self.final else "r2"
        cen_final = self.centralized[-1] if self.centralized else {}
        out: dict[str, Any] = {
            "primary_metric": key,
            "rounds": len(self.history),
            "fl": self.final,
            "centralized": cen_final,
            "bytes_down_total": sum(r.bytes_down for r in self.history),
            "bytes_up_total": sum(r.bytes_up for r in self.history),
            "clients_dropped_total": sum(r.dropped for r in self.history),
            "updates_rejected_total": sum(r.rejected for r in self.history),
            **self.info,
        }
        if cen_final:
            out["gap_to_centralized"] = cen_final[key] - self.final.get(key, float("nan"))
            out["rounds_to_95pct_centralized"] = rounds_to_fraction(self.history, key, 0.95 * cen_final[key])
        return out


def rounds_to_fraction(history: list[RoundRecord], key: str, target: float) -> int | None:
    """First round whose test metric reaches `target` (None if never)."""
    for rec in history:
        if rec.test.get(key, float("-inf")) >= target:
            return rec.round
    return None


def build_strategy_from(config: RunConfig) -> Strategy:
    s = config.strategy
    if s.name in ("fedavg", "fedprox"):
        params: dict[str, Any] = {"server_lr": s.server_lr or 1.0}
        if s.name == "fedprox":
            params["proximal_mu"] = s.proximal_mu
    else:
        params = {"server_lr": s.server_lr or 0.01, "beta1": s.beta1, "beta2": s.beta2, "tau": s.tau}
    return build_strategy(s.name, **params)


def make_clients(config: RunConfig, ds: Dataset, workspace: torch.nn.Module) -> list[TorchClient]:
    d = config.data
    parts = partition(
        ds.y_train,
        d.num_clients,
        d.partition,
        seed=config.run.seed,
        alpha=d.alpha,
        shards_per_client=d.shards_per_client,
        quantity_sigma=d.quantity_sigma,
        groups=ds.groups_train,
        min_size=d.min_size,
    )
    return [
        TorchClient(i, ds.x_train[idx], ds.y_train[idx], ds.task, workspace) for i, idx in enumerate(parts)
    ]


def run_experiment(
    config: RunConfig,
    *,
    on_round: Callable[[RoundRecord], None] | None = None,
    on_centralized_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> ExperimentResult:
    """Run federated training (and the centralized baseline if enabled); deterministic under run.seed."""
    torch.set_num_threads(config.run.threads)
    seed = config.run.seed
    ds = load_dataset(config.data.dataset, test_fraction=config.data.test_fraction, seed=seed)
    torch.manual_seed(seed)
    workspace = build_model(config.model.name, ds.input_shape, ds.num_outputs)
    w0 = get_flat(workspace)
    clients = make_clients(config, ds, workspace)
    eval_model = build_model(config.model.name, ds.input_shape, ds.num_outputs)
    xs, ys = as_tensors(ds.x_test, ds.y_test, ds.task)

    def evaluate_global(weights: ModelVector) -> dict[str, float]:
        set_flat(eval_model, weights)
        return evaluate(eval_model, xs, ys, ds.task)

    s = config.sampling
    sampler = ClientSampler(
        num_clients=len(clients),
        mode=s.mode,
        clients_per_round=s.clients_per_round or len(clients),
        rate=s.rate,
    )
    slow = ()
    if s.straggler_sigma > 0:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
        slow = tuple(float(v) for v in rng.lognormal(0.0, s.straggler_sigma, size=len(clients)))
    t = config.train
    server = FederatedServer(
        clients,
        build_strategy_from(config),
        w0,
        base_config=RoundConfig(
            round=0,
            local_epochs=t.local_epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            momentum=t.momentum,
            seed=seed,
        ),
        sampler=sampler,
        evaluate_fn=evaluate_global,
        faults=FaultModel(dropout_rate=s.dropout_rate, deadline_s=s.deadline_s, slowdown=slow),
        seed=seed,
    )
    history = server.run(config.run.rounds, on_round=on_round)
    final = evaluate_global(server.weights)
    centralized: list[dict[str, float]] = []
    epochs = matched_epochs(config.run.rounds, t.local_epochs, sampler.expected_cohort, len(clients))
    if config.centralized.enabled:
        centralized = train_centralized(
            eval_model,
            w0,
            ds.x_train,
            ds.y_train,
            ds.x_test,
            ds.y_test,
            ds.task,
            epochs=epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            momentum=t.momentum,
            seed=seed,
            on_epoch=on_centralized_epoch,
        )
    info = {
        "dataset": ds.name,
        "task": ds.task,
        "model": config.model.name,
        "num_parameters": num_parameters(workspace),
        "num_clients": len(clients),
        "client_sizes": [c.num_examples for c in clients],
        "centralized_epochs": epochs if config.centralized.enabled else 0,
    }
    return ExperimentResult(config, history, final, centralized, info)
