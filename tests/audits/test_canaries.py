"""The canary estimator on a simulated single release D = sum of inserted canaries + Gaussian noise.

Each canary enters D with L2 norm c, so D is the Gaussian mechanism with sensitivity c and noise sigma
per canary: mu = c / sigma Gaussian DP (Dong, Roth, Su), eps = gdp_epsilon(mu, delta)."""

import numpy as np
import pytest
from scipy import optimize

from audits.bounds import gdp_epsilon
from audits.canaries import (
    canary_audit,
    canary_cosines,
    gaussian_pair_epsilon,
    one_run_from_scores,
    one_shot_epsilon,
)
from audits.errors import AuditError


def _release(m, d, c, sigma, seed):
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((m, d))
    u = (g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)
    inserted = rng.random(m) < 0.5
    initial = rng.normal(0, 1, d)
    final = initial + c * u[inserted].sum(axis=0) + rng.normal(0, sigma, d)
    return u, inserted, initial, final


def test_cosines_by_hand():
    u = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    np.testing.assert_allclose(canary_cosines(u, np.array([3.0, 4.0])), [0.6, 0.8, 1.0])
    with pytest.raises(AuditError, match="shape"):
        canary_cosines(u, np.ones(3))


def test_gaussian_pair_equal_widths_is_gdp():
    assert gaussian_pair_epsilon(2.0, 0.5, 1.0, 0.5, 1e-5) == pytest.approx(gdp_epsilon(2.0, 1e-5), rel=1e-4)


def test_one_shot_estimate_tracks_the_true_epsilon():
    mu = optimize.brentq(lambda x: gdp_epsilon(x, 1e-5) - 2.0, 0.01, 5.0)  # a Gaussian release at eps 2
    c, sigma = 1.0, 1.0 / mu
    u, ins, w0, w1 = _release(1000, 4000, c, sigma, 0)
    out = canary_audit(u, ins, w0, w1, delta=1e-5)
    assert out["one_shot"]["epsilon"] == pytest.approx(2.0, rel=0.35)
    assert out["one_shot"]["epsilon_equal_width"] == pytest.approx(2.0, rel=0.35)
    assert out["one_shot"]["null"] == "N(0, 1/d)" and abs(out["one_shot"]["left_out_mean"]) < 0.01
    assert out["one_run"]["epsilon"] < 2.0


def test_no_noise_gives_a_large_one_run_bound_and_estimate():
    u, ins, w0, _ = _release(400, 4000, 1.0, 0.0, 1)
    w1 = w0 + u[ins].sum(axis=0)
    out = canary_audit(u, ins, w0, w1, delta=1e-5)
    assert out["one_run"]["epsilon"] > 3.0 and out["one_run"]["v"] == out["one_run"]["r"]
    assert out["one_shot"]["epsilon"] > 10.0


def test_one_run_bound_is_sound_for_a_release_at_eps_one():
    mu = optimize.brentq(lambda x: gdp_epsilon(x, 1e-5) - 1.0, 0.01, 5.0)
    exceed = 0
    for seed in range(40):
        u, ins, w0, w1 = _release(500, 600, 1.0, 1.0 / mu, 100 + seed)
        cos = canary_cosines(u, w1 - w0)
        exceed += one_run_from_scores(cos, ins, delta=1e-5)["epsilon"] > 1.0
    assert exceed <= 2  # level 5%: 2 of 40 is the 0.6 quantile of Bin(40, .05)


def test_one_run_guesses_top_and_bottom_k():
    scores = np.array([0.9, 0.8, 0.1, 0.2, 0.5, 0.4])
    inserted = np.array([True, True, False, False, True, False])
    res = one_run_from_scores(scores, inserted, p=0.05)
    assert res["tries"] == 2 and res["correction"] == "bonferroni over k"
    assert res["v"] == res["r"]  # every guess right for k = 3 and k = 1


def test_one_shot_needs_two_inserted():
    with pytest.raises(AuditError, match="at least 2"):
        one_shot_epsilon(np.array([0.1]), None, 10, 1e-5)
