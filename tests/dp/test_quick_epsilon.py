"""quick_epsilon: a certified upper bound within 0.5% of a fine-grid PLD, never below it; bounded queries.

The reference is dp_accounting's PLD on a grid at least 1.5x finer than any quick_epsilon uses (150,000
points of the privacy-loss range, 1e-4 at most); both discretize pessimistically, so both are upper
bounds and the finer one is the tighter.
"""

from __future__ import annotations

import pytest
from dp_accounting.pld import privacy_loss_distribution as pld_lib

from dp.accountant import (
    PLD_MAX_ROUNDS,
    epsilon_for,
    privacy_loss_span,
    quick_epsilon,
)
from dp.calibration import calibrate_noise
from dp.errors import CalibrationError, InvalidPrivacyParameterError


def _fine(z: float, q: float, rounds: int, delta: float) -> float:
    grid = min(1e-4, max(privacy_loss_span(z, q) / 150_000, 2e-6))
    pld = pld_lib.from_gaussian_mechanism(z, value_discretization_interval=grid, sampling_prob=q)
    return float(pld.self_compose(rounds).get_epsilon_for_delta(delta))


GRID = [
    (0.01, 1.0, 1000),  # the common query (epsilon ~1.83)
    (0.001, 2.0, 10_000),  # small epsilon (~0.17): the 1e-4 grid is 0.3% high here
    (0.05, 0.8, 200),  # epsilon ~7.7
    (0.1, 1.0, 10),
    (0.01, 1.0, 1),  # one round
    (0.01, 0.6, 5000),  # epsilon ~15.6
    (0.2, 0.5, 50),  # epsilon ~39
    (0.05, 3.0, 1000),
    (0.001, 5.0, 100_000),  # epsilon ~0.21, a loss range of 0.007
]


@pytest.mark.parametrize(("q", "z", "rounds"), GRID)
def test_within_half_a_percent_above_the_fine_pld_never_below(q: float, z: float, rounds: int) -> None:
    fine = _fine(z, q, rounds, 1e-5)
    quick = quick_epsilon(z, q, rounds, 1e-5)
    assert fine <= quick <= 1.005 * fine


def test_a_tighter_tolerance_is_honoured() -> None:
    fine = _fine(1.0, 0.01, 1000, 1e-5)
    assert fine <= quick_epsilon(1.0, 0.01, 1000, 1e-5, tolerance=5e-4) <= 1.0005 * fine


def test_unsampled_rounds_are_the_exact_closed_form() -> None:
    assert quick_epsilon(2.0, 1.0, 30, 1e-6) == epsilon_for(2.0, 1.0, 30, 1e-6)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: quick_epsilon(1.0, 0.01, PLD_MAX_ROUNDS + 1, 1e-5), "method='rdp'"),
        (lambda: quick_epsilon(0.0, 0.01, 10, 1e-5), "noise_multiplier"),
        (lambda: quick_epsilon(1.0, 0.01, 10, 1e-5, tolerance=0.0), "tolerance"),
        (lambda: quick_epsilon(1.0, 0.01, float("nan"), 1e-5), "rounds"),  # type: ignore[arg-type]
    ],
)
def test_bad_or_unbounded_queries_are_typed_errors(call, match: str) -> None:
    with pytest.raises(InvalidPrivacyParameterError, match=match):
        call()


def test_pld_refuses_compositions_it_cannot_bound_and_names_rdp() -> None:
    # z = 0.3 at q = 0.1: 100,000 rounds spread the loss over ~4e6 nats (epsilon in the millions)
    with pytest.raises(InvalidPrivacyParameterError, match="method='rdp'"):
        epsilon_for(0.3, 0.1, 100_000, 1e-5)
    with pytest.raises(InvalidPrivacyParameterError, match="at most 1,000,000 rounds"):
        epsilon_for(1.0, 0.01, 10**9, 1e-5)
    assert epsilon_for(1.0, 0.01, 10**9, 1e-5, method="rdp") > 0  # the named alternative answers


def test_large_loss_ranges_are_answered_on_a_coarser_pessimistic_grid() -> None:
    # z = 0.3, q = 0.1, T = 100 took 3.9 s at the 1e-4 grid; the grid now coarsens to 60,000 points of
    # the loss range, which can only raise epsilon, and here moves it by under 1e-5 relative
    eps = epsilon_for(0.3, 0.1, 100, 1e-5)
    ref = pld_lib.from_gaussian_mechanism(0.3, value_discretization_interval=2e-4, sampling_prob=0.1)
    fine = ref.self_compose(100).get_epsilon_for_delta(1e-5)
    assert fine <= eps <= fine * (1 + 1e-5)


def test_calibration_to_a_vacuous_target_is_refused() -> None:
    with pytest.raises(CalibrationError, match="vacuous"):
        calibrate_noise(1000.0, 1e-5, 0.01, 10)
    assert calibrate_noise(1000.0, 1e-5, 0.01, 100) > 0.05  # feasible: answered (42 s before, loaded)
