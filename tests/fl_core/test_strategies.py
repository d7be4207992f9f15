"""Strategies: FedAvg weighting (known answer), FedProx/FedOpt update rules, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest

from fl_core.errors import ConfigError, UpdateRejectedError
from fl_core.strategies import FedAdam, FedAvg, FedProx, FedYogi, build_strategy, weighted_mean_delta
from fl_core.types import ClientUpdate


def _u(cid: int, delta: list[float], n: int) -> ClientUpdate:
    return ClientUpdate(cid, np.asarray(delta, dtype=np.float32), n)


def test_fedavg_weights_by_example_count_known_answer() -> None:
    # (1*[3,0] + 3*[-1,4]) / 4 = [0, 3]
    updates = [_u(0, [3.0, 0.0], 1), _u(1, [-1.0, 4.0], 3)]
    new = FedAvg().aggregate(np.array([1.0, 1.0], np.float32), updates, 1)
    np.testing.assert_allclose(new, [1.0, 4.0], rtol=0, atol=1e-6)


def test_fedavg_server_lr_scales_step() -> None:
    new = FedAvg(server_lr=0.5).apply(np.zeros(2, np.float32), np.array([2.0, -4.0], np.float32), 1)
    np.testing.assert_allclose(new, [1.0, -2.0])


def test_weighted_mean_of_nothing_is_an_error() -> None:
    with pytest.raises(UpdateRejectedError):
        weighted_mean_delta([])


def test_fedprox_sends_mu_to_clients() -> None:
    assert FedProx(proximal_mu=0.3).client_config(1) == {"proximal_mu": 0.3}


def test_fedadam_first_step_known_answer() -> None:
    # m1 = (1-b1) g; v1 = b2 tau^2 + (1-b2) g^2; x1 = x0 + eta m1 / (sqrt(v1) + tau)
    eta, b1, b2, tau = 0.1, 0.9, 0.99, 1e-3
    g = np.array([0.5, -2.0], np.float32)
    s = FedAdam(server_lr=eta, beta1=b1, beta2=b2, tau=tau)
    s.initialize(np.zeros(2, np.float32))
    x1 = s.apply(np.zeros(2, np.float32), g, 1)
    g64 = g.astype(np.float64)
    m1 = (1 - b1) * g64
    v1 = b2 * tau**2 + (1 - b2) * g64**2
    np.testing.assert_allclose(x1, eta * m1 / (np.sqrt(v1) + tau), rtol=1e-6)


def test_fedyogi_second_moment_is_additive() -> None:
    s = FedYogi(server_lr=0.1, tau=1e-3)
    s.initialize(np.zeros(1, np.float32))
    s.apply(np.zeros(1, np.float32), np.array([1.0], np.float32), 1)
    # v1 = tau^2 - (1-b2) * 1 * sign(tau^2 - 1) = tau^2 + 0.01
    assert s.v is not None
    np.testing.assert_allclose(s.v, [1e-6 + 0.01])


def test_fedopt_state_round_trips() -> None:
    s = FedAdam()
    s.initialize(np.zeros(3, np.float32))
    s.apply(np.zeros(3, np.float32), np.ones(3, np.float32), 1)
    t = FedAdam()
    t.load_state_dict(s.state_dict())
    a = s.apply(np.zeros(3, np.float32), np.ones(3, np.float32), 2)
    b = t.apply(np.zeros(3, np.float32), np.ones(3, np.float32), 2)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("fedavg", {"server_lr": 0.0}),
        ("fedavg", {"server_lr": float("nan")}),
        ("fedprox", {"proximal_mu": -1.0}),
        ("fedadam", {"beta1": 1.0}),
        ("fedyogi", {"tau": 0.0}),
        ("fedsgd-typo", {}),
    ],
)
def test_bad_strategy_parameters_raise_config_error(name: str, params: dict) -> None:
    with pytest.raises(ConfigError):
        build_strategy(name, **params)
