"""End-to-end federated training: FedAvg == centralized step on identical clients, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fl_core.config import build_config
from fl_core.errors import DataError
from fl_core.experiment import run_experiment
from fl_core.models import build_model, get_flat, set_flat
from fl_core.sampling import ClientSampler
from fl_core.server import FederatedServer
from fl_core.strategies import FedAvg
from fl_core.torch_client import TorchClient
from fl_core.training import as_tensors, train_epochs
from fl_core.types import RoundConfig

TINY = [
    "data.dataset=breast_cancer",
    "model.name=logreg",
    "data.num_clients=4",
    "run.rounds=3",
    "train.local_epochs=1",
]


def test_fedavg_over_identical_clients_equals_one_centralized_step() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3)
    w0 = get_flat(model)
    clients = [TorchClient(i, x, y, "classification", model) for i in range(5)]
    cfg = RoundConfig(round=0, local_epochs=1, batch_size=len(x), lr=0.3)
    server = FederatedServer(clients, FedAvg(), w0, base_config=cfg, sampler=ClientSampler(5, "fixed", 5))
    server.run_round(1)

    central = build_model("mlp", (6,), 3)
    set_flat(central, w0)
    pooled_x, pooled_y = as_tensors(np.concatenate([x] * 5), np.concatenate([y] * 5), "classification")
    train_epochs(
        central,
        pooled_x,
        pooled_y,
        "classification",
        epochs=1,
        batch_size=len(pooled_x),
        lr=0.3,
        generator=torch.Generator().manual_seed(0),
    )
    expected = get_flat(central)
    assert not np.allclose(expected, w0)  # the step moved the model
    np.testing.assert_allclose(server.weights, expected, rtol=1e-5, atol=1e-6)


def test_same_seed_same_history() -> None:
    def rows(seed: int):
        res = run_experiment(
            build_config(
                overrides=[
                    *TINY,
                    f"run.seed={seed}",
                    "centralized.enabled=false",
                    "sampling.clients_per_round=2",
                ]
            )
        )
        return [
            {k: v for k, v in r.as_row().items() if k != "wall_s" and k != "sim_round_s"} for r in res.history
        ]

    a, b, c = rows(3), rows(3), rows(4)
    assert a == b
    assert a != c


def test_experiment_learns_and_reports_centralized() -> None:
    res = run_experiment(build_config(overrides=[*TINY, "data.partition=iid", "run.rounds=5"]))
    s = res.summary()
    assert s["fl"]["accuracy"] > 0.85 and s["centralized"]["accuracy"] > 0.85
    assert s["bytes_up_total"] > 0 and s["bytes_down_total"] > s["bytes_up_total"] * 0.5
    assert s["centralized_epochs"] == 5  # 5 rounds x 1 local epoch x full participation


def test_regression_reports_r2() -> None:
    res = run_experiment(
        build_config(
            overrides=[
                "data.dataset=diabetes",
                "model.name=linear",
                "data.num_clients=3",
                "data.partition=iid",
                "run.rounds=3",
                "centralized.enabled=false",
            ]
        )
    )
    assert {"loss", "mse", "r2"} <= set(res.final)
    assert res.summary()["primary_metric"] == "r2"


def test_client_with_no_data_is_an_error() -> None:
    model = build_model("logreg", (3,), 2)
    with pytest.raises(DataError, match="no data"):
        TorchClient(0, np.zeros((0, 3), np.float32), np.zeros(0, np.int64), "classification", model)


def test_hundred_clients_in_one_process() -> None:
    over = [
        "data.dataset=breast_cancer",
        "model.name=logreg",
        "data.num_clients=100",
        "data.partition=iid",
        "run.rounds=2",
        "train.local_epochs=1",
        "centralized.enabled=false",
    ]
    res = run_experiment(build_config(overrides=over))
    assert [r.completed for r in res.history] == [100, 100]
    assert sum(res.info["client_sizes"]) == 455  # every training example belongs to exactly one client


def test_divergence_is_a_typed_error_not_a_nan_result() -> None:
    from fl_core.centralized import train_centralized
    from fl_core.errors import TrainingDivergedError

    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 4)).astype(np.float32)
    y = (rng.standard_normal(50) * 100).astype(np.float32)
    model = build_model("mlp", (4,), 1)
    with pytest.raises(TrainingDivergedError, match="lower train.lr"):
        train_centralized(model, get_flat(model), x, y, x, y, "regression", epochs=5, batch_size=50, lr=1e6)
