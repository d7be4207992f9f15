"""Server loop with numpy clients: sampling, dropouts, deadlines, rejection of bad updates, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from fl_core.devices import DeviceProfile
from fl_core.errors import ConfigError
from fl_core.sampling import ClientSampler
from fl_core.server import FaultModel, FederatedServer
from fl_core.strategies import FedAvg
from fl_core.types import ClientUpdate, RoundConfig


class TargetClient:
    """Moves the model halfway to its own target vector; can be told to misbehave."""

    def __init__(
        self, cid: int, target: np.ndarray, n: int, *, poison: float | None = None, cost: float = 0.0
    ):
        self.client_id, self.num_examples = cid, n
        self.target, self.poison, self.cost = target.astype(np.float32), poison, cost
        self.calls = 0

    def fit(self, w: np.ndarray, config: RoundConfig) -> ClientUpdate:
        self.calls += 1
        delta = 0.5 * (self.target - w)
        if self.poison is not None:
            delta = delta.copy()
            delta[0] = self.poison
        return ClientUpdate(
            self.client_id,
            delta.astype(np.float32),
            self.num_examples,
            {"train_loss": 1.0},
            compute_s=self.cost,
        )

    def evaluate(self, w: np.ndarray, config: RoundConfig) -> dict[str, float]:
        return {"loss": float(np.sum((w - self.target) ** 2))}


def _server(clients, sampler=None, faults=None, seed=0) -> FederatedServer:
    return FederatedServer(
        clients,
        FedAvg(),
        np.zeros(3, np.float32),
        base_config=RoundConfig(round=0),
        sampler=sampler or ClientSampler(len(clients), "fixed", len(clients)),
        faults=faults,
        seed=seed,
        evaluate_fn=lambda w: {"norm": float(np.linalg.norm(w))},
    )


def test_full_participation_converges_to_weighted_mean_of_targets() -> None:
    targets = [np.full(3, 1.0), np.full(3, 4.0)]
    clients = [TargetClient(0, targets[0], 3), TargetClient(1, targets[1], 1)]
    server = _server(clients)
    server.run(30)
    np.testing.assert_allclose(server.weights, np.full(3, (3 * 1 + 4) / 4), atol=1e-5)
    rec = server.history[-1]
    assert (rec.sampled, rec.completed, rec.dropped, rec.rejected) == (2, 2, 0, 0)
    assert rec.bytes_down > 0 and rec.bytes_up > 0


def test_nan_update_is_rejected_counted_and_not_averaged() -> None:
    clients = [TargetClient(0, np.ones(3), 1), TargetClient(1, np.ones(3), 1, poison=float("nan"))]
    server = _server(clients)
    rec = server.run_round(1)
    assert (rec.completed, rec.rejected) == (1, 1)
    assert np.all(np.isfinite(server.weights))
    np.testing.assert_allclose(server.weights, np.full(3, 0.5))


def test_dropouts_are_counted_and_the_rate_is_respected() -> None:
    clients = [TargetClient(i, np.ones(3), 1) for i in range(50)]
    server = _server(clients, faults=FaultModel(dropout_rate=0.3))
    server.run(10)
    dropped = sum(r.dropped for r in server.history)
    assert 100 <= dropped <= 200  # 500 draws at p = 0.3: mean 150, sd ~10
    assert all(r.completed + r.dropped == r.sampled for r in server.history)
    assert sum(c.calls for c in clients) == 500 - dropped  # a dropped client does not train


def test_stragglers_past_the_deadline_are_dropped() -> None:
    clients = [TargetClient(0, np.ones(3), 1, cost=1.0), TargetClient(1, np.full(3, 9.0), 1, cost=1.0)]
    fast = DeviceProfile("fast", 1.0, 1e6, 1e6, 0.0, 1.0, 0.0)
    slow = DeviceProfile("slow", 5.0, 1e6, 1e6, 0.0, 1.0, 0.0)
    faults = FaultModel(deadline_s=2.0, profiles=(fast, slow))
    server = _server(clients, faults=faults)
    rec = server.run_round(1)
    assert (rec.completed, rec.dropped) == (1, 1)
    np.testing.assert_allclose(server.weights, np.full(3, 0.5))  # only the fast client counted
    assert rec.sim_round_s == pytest.approx(2.0)


def test_poisson_sampling_rate_and_empty_rounds_leave_model_unchanged() -> None:
    clients = [TargetClient(i, np.ones(3), 1) for i in range(100)]
    server = _server(clients, sampler=ClientSampler(100, "poisson", rate=0.2))
    server.run(20)
    sizes = [r.sampled for r in server.history]
    assert 300 <= sum(sizes) <= 500  # 2000 draws at q = 0.2
    assert len(set(sizes)) > 1  # cohort size varies under Poisson sampling
    tiny = _server([TargetClient(0, np.ones(3), 1)], sampler=ClientSampler(1, "poisson", rate=1e-9))
    rec = tiny.run_round(1)
    assert rec.sampled == 0 and np.all(tiny.weights == 0)


def test_same_seed_same_history_different_seed_differs() -> None:
    def hist(seed: int):
        clients = [TargetClient(i, np.full(3, float(i)), i + 1) for i in range(20)]
        s = _server(clients, ClientSampler(20, "fixed", 5), FaultModel(dropout_rate=0.2), seed=seed)
        s.run(5)
        return [r.as_row() | {"wall_s": 0, "sim_round_s": 0} for r in s.history], s.weights  # measured times

    (h1, w1), (h2, w2), (_h3, w3) = hist(1), hist(1), hist(2)
    assert h1 == h2 and np.array_equal(w1, w2)
    assert not np.array_equal(w1, w3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_clients": 0},
        {"num_clients": 5, "clients_per_round": 6},
        {"num_clients": 5, "clients_per_round": 0},
        {"num_clients": 5, "mode": "poisson", "rate": 0.0},
        {"num_clients": 5, "mode": "poisson", "rate": 1.5},
        {"num_clients": 5, "mode": "stratified"},
    ],
)
def test_bad_sampler_raises(kwargs) -> None:
    with pytest.raises(ConfigError):
        ClientSampler(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dropout_rate": 1.0},
        {"dropout_rate": -0.1},
        {"deadline_s": 0.0},
    ],
)
def test_bad_fault_model_raises(kwargs) -> None:
    with pytest.raises(ConfigError):
        FaultModel(**kwargs)


def test_rounds_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        _server([TargetClient(0, np.ones(3), 1)]).run(0)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_an_overflowing_aggregate_is_a_typed_error() -> None:
    from fl_core.errors import TrainingDivergedError

    huge = [TargetClient(i, np.full(3, 3e38), 1) for i in range(2)]  # finite updates of 1.5e38
    server = FederatedServer(  # a server step of 3 takes the model past float32's 3.4e38
        huge,
        FedAvg(server_lr=3.0),
        np.zeros(3, np.float32),
        base_config=RoundConfig(round=0),
        sampler=ClientSampler(2, "fixed", 2),
    )
    with pytest.raises(TrainingDivergedError, match="not finite"):
        server.run_round(1)
