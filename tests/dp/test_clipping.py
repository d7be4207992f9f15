"""Clipping is exact and pure; adaptive clipping converges to the target quantile (Andrew et al. 2021)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dp import events as E
from dp.clipping import AdaptiveClipper, clip_l2, split_noise_multiplier
from dp.errors import InvalidPrivacyParameterError


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    x=arrays(np.float64, st.integers(1, 50), elements=st.floats(-1e3, 1e3)),
    c=st.floats(1e-3, 1e3),
)
def test_clip_l2_properties(x: np.ndarray, c: float) -> None:
    before = x.copy()
    res = clip_l2(x, c)
    assert np.array_equal(x, before)  # pure
    assert res.norm == pytest.approx(float(np.linalg.norm(x)))
    assert np.linalg.norm(res.clipped) <= c * (1 + 1e-9)
    assert res.was_clipped == (res.norm > c)
    if not res.was_clipped:
        assert np.array_equal(res.clipped, x)
    else:  # same direction
        assert np.allclose(res.clipped * res.norm / c, x, rtol=1e-9, atol=1e-9)


def test_clip_keeps_float32() -> None:
    assert clip_l2(np.ones(4, dtype=np.float32) * 10, 1.0).clipped.dtype == np.float32


def test_split_noise_multiplier_composes_back_to_z() -> None:
    # Andrew et al. 2021 Thm. 1: z_delta^-2 + (2 sigma_b)^-2 = z^-2.
    z, sb = 1.0, 5.0
    zd = split_noise_multiplier(z, sb)
    assert zd**-2 + (2 * sb) ** -2 == pytest.approx(z**-2)
    with pytest.raises(InvalidPrivacyParameterError, match="0.4"):
        split_noise_multiplier(1.0, 0.4)


@pytest.mark.parametrize("gamma", [0.5, 0.8])
def test_adaptive_clip_converges_to_quantile(gamma: float) -> None:
    # Update norms ~ LogNormal(0, 0.5): the gamma-quantile is exp(0.5 * Phi^-1(gamma)).
    from scipy.stats import norm as normal

    target = math.exp(0.5 * normal.ppf(gamma))
    rng = np.random.default_rng(7)
    m = 100
    clipper = AdaptiveClipper(
        0.01, noise_multiplier=1.0, expected_cohort=m, target_quantile=gamma, learning_rate=0.2, seed=3
    )
    history = [clipper.observe_norms(rng.lognormal(0.0, 0.5, size=m)) for _ in range(300)]
    tail = np.array(history[-100:])
    assert abs(np.median(tail) / target - 1) < 0.1
    assert clipper.seeded
    # Starting far above converges too (the wrong-sign rule would collapse it toward zero).
    high = AdaptiveClipper(50.0, noise_multiplier=1.0, expected_cohort=m, target_quantile=gamma, seed=4)
    for _ in range(300):
        c = high.observe_norms(rng.lognormal(0.0, 0.5, size=m))
    assert abs(c / target - 1) < 0.2


def test_adaptive_event_is_one_gaussian_of_z_and_state_round_trips() -> None:
    clipper = AdaptiveClipper(1.0, noise_multiplier=1.3, expected_cohort=40)
    assert clipper.dp_event(0.1) == E.poisson_round(1.3, 0.1)
    assert clipper.sum_noise_multiplier > 1.3
    assert not clipper.seeded
    back = AdaptiveClipper.from_state(clipper.state())
    assert back.state() == clipper.state()


@pytest.mark.parametrize(
    "kwargs,value",
    [
        ({"initial_clip_norm": -1.0}, "-1.0"),
        ({"target_quantile": 1.0}, "1.0"),
        ({"learning_rate": 0.0}, "0.0"),
        ({"expected_cohort": 0}, "0"),
    ],
)
def test_adaptive_bad_parameters(kwargs: dict, value: str) -> None:
    args = {"initial_clip_norm": 1.0, "noise_multiplier": 1.0, "expected_cohort": 50} | kwargs
    c0 = args.pop("initial_clip_norm")
    with pytest.raises(InvalidPrivacyParameterError, match=value.replace(".", r"\.")):
        AdaptiveClipper(c0, **args)


def test_clip_bad_norm() -> None:
    with pytest.raises(InvalidPrivacyParameterError, match="-2"):
        clip_l2(np.ones(3), -2)
    with pytest.raises(InvalidPrivacyParameterError, match="inf"):
        clip_l2(np.array([np.inf, 1.0]), 1.0)


def test_distributed_count_shares_carry_sigma_b() -> None:
    m_min = 20
    clipper = AdaptiveClipper(1.0, noise_multiplier=1.0, expected_cohort=m_min, count_stddev=2.0, seed=1)
    totals = np.array([sum(clipper.count_noise_share(m_min) for _ in range(m_min)) for _ in range(10_000)])
    assert abs(float(np.var(totals)) / 4.0 - 1.0) < 0.05  # sd of the estimate 1.4%
    assert clipper.unclipped_fraction_from_noised_sum(5.0) == pytest.approx(5.0 / m_min + 0.5)
    with pytest.raises(InvalidPrivacyParameterError, match="0"):
        clipper.count_noise_share(0)


def test_the_default_count_noise_works_for_small_cohorts() -> None:
    # review: an expected cohort of 10 with z = 2 was refused (count_stddev m/20 = 0.5 left no budget)
    small = AdaptiveClipper(1.0, noise_multiplier=2.0, expected_cohort=10)
    assert small.count_stddev == 2.0
    assert 2.0 < small.sum_noise_multiplier <= 2.0 / (0.75**0.5) + 1e-12
    large = AdaptiveClipper(1.0, noise_multiplier=1.0, expected_cohort=1000)
    assert large.count_stddev == 50.0  # Andrew et al.'s m/20 where it leaves the sum its budget
