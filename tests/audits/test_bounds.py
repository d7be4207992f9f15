"""Known answers and soundness of the epsilon lower bounds.

Known answers: the closed form of Clopper-Pearson at zero errors; Steinke, Nasr, Jagielski (NeurIPS 2023,
arXiv:2305.08846v1) Appendix D's worked example (m=1000, r=100, v=75, delta=1e-4, 95%: eps 0.673) and
Section 7's Figure 11 point (m=1e5, r=1510, v=1439, delta=1e-5: eps 2.675, printed truncated); the
GDP curve against dp_accounting's exact PLD of the Gaussian mechanism (sigma = 1/mu).
"""

import math

import numpy as np
import pytest
from dp_accounting.pld import privacy_loss_distribution as pld
from scipy import optimize

from audits.bounds import (
    clopper_pearson_epsilon,
    clopper_pearson_upper,
    gdp_delta,
    gdp_epsilon,
    gdp_mu_lower_bound,
    one_run_epsilon,
    one_run_p_value,
    threshold_search_epsilon,
)
from audits.errors import AuditError


def test_clopper_pearson_zero_errors_closed_form():
    # k = 0: the one-sided upper limit at level 1 - a is 1 - a^(1/n); alpha split: a = 0.025
    hi = 1 - 0.025 ** (1 / 1000)
    assert clopper_pearson_upper(0, 1000, 0.025) == pytest.approx(hi, rel=1e-10)
    assert clopper_pearson_epsilon(0, 1000, 0, 1000) == pytest.approx(math.log((1 - hi) / hi), rel=1e-10)
    # with delta both numerators lose delta
    assert clopper_pearson_epsilon(0, 1000, 0, 1000, delta=0.01) == pytest.approx(
        math.log((1 - 0.01 - hi) / hi), rel=1e-10
    )


def test_clopper_pearson_uses_both_inequalities_and_never_goes_below_zero():
    # few false negatives, many false positives: only the mirror inequality gives a positive bound
    e1 = clopper_pearson_epsilon(300, 1000, 0, 1000)
    e2 = clopper_pearson_epsilon(0, 1000, 300, 1000)
    assert e1 == pytest.approx(e2) and e1 > 0.5
    assert clopper_pearson_epsilon(500, 1000, 500, 1000) == 0.0
    assert clopper_pearson_epsilon(1000, 1000, 1000, 1000) == 0.0


def test_clopper_pearson_upper_matches_binomial_tail():
    # the limit p_hi solves P[Bin(n, p_hi) <= k] = a
    from scipy.stats import binom

    hi = clopper_pearson_upper(7, 200, 0.025)
    assert binom.cdf(7, 200, hi) == pytest.approx(0.025, rel=1e-6)


def test_one_run_reproduces_the_papers_numbers():
    assert one_run_epsilon(1000, 100, 75, delta=1e-4, p=0.05) == pytest.approx(0.673, abs=5e-4)
    assert math.floor(one_run_epsilon(100_000, 1510, 1439, delta=1e-5, p=0.05) * 1000) / 1000 == 2.675


def test_one_run_p_value_definition():
    # delta = 0: exactly the binomial tail with q = e^eps / (1 + e^eps)
    from scipy.stats import binom

    q = math.e / (1 + math.e)
    assert one_run_p_value(50, 20, 15, 1.0) == pytest.approx(binom.sf(14, 20, q))
    # the delta term only adds
    assert one_run_p_value(50, 20, 15, 1.0, 1e-3) > one_run_p_value(50, 20, 15, 1.0)
    assert one_run_epsilon(100, 10, 5) == 0.0  # half right is no evidence


def test_gdp_matches_dp_accounting_gaussian():
    for mu in (0.3, 1.0, 2.0):
        ref = pld.from_gaussian_mechanism(1.0 / mu, value_discretization_interval=1e-4)
        assert gdp_epsilon(mu, 1e-5) == pytest.approx(ref.get_epsilon_for_delta(1e-5), abs=2e-3)
        assert gdp_delta(mu, gdp_epsilon(mu, 1e-5)) == pytest.approx(1e-5, rel=1e-6)
    assert gdp_epsilon(0.0, 1e-5) == 0.0


def test_gdp_mu_lower_bound():
    # perfect separation of 1000/1000 -> mu_LB = 2 Phi^-1(1 - hi), hi = 1 - 0.025^(1/1000)
    from scipy.stats import norm

    hi = 1 - 0.025 ** (1 / 1000)
    assert gdp_mu_lower_bound(0, 1000, 0, 1000) == pytest.approx(2 * norm.ppf(1 - hi))
    assert gdp_mu_lower_bound(500, 1000, 500, 1000) == 0.0


# ---------------------------------------------------------------- soundness


def _mu_for_epsilon_one() -> float:
    """The Gaussian mechanism (sensitivity 1) calibrated to (1, 1e-5)-DP: sigma = 1/mu."""
    return optimize.brentq(lambda m: gdp_epsilon(m, 1e-5) - 1.0, 0.01, 5.0)


def test_randomized_response_at_eps_one_single_threshold_sound_and_tight():
    # eps-DP randomized response is the worst case for one threshold: both error rates are 1/(1+e).
    # A bound without confidence limits exceeds 1 about half the time; ours at most alpha = 5%.
    keep = math.e / (1 + math.e)
    exceed, values = 0, []
    for seed in range(400):
        rng = np.random.default_rng(seed)
        fp = int(np.sum(rng.random(5000) > keep))
        fn = int(np.sum(rng.random(5000) > keep))
        eps = clopper_pearson_epsilon(fp, 5000, fn, 5000, alpha=0.05)
        exceed += eps > 1.0
        values.append(eps)
    assert exceed <= 0.05 * 400
    assert np.mean(values) > 0.85  # and it is not vacuous


def test_one_run_randomized_response_sound_and_tight():
    keep = math.e / (1 + math.e)
    exceed, values = 0, []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        v = int(np.sum(rng.random(2000) < keep))
        eps = one_run_epsilon(2000, 2000, v, p=0.05)
        exceed += eps > 1.0
        values.append(eps)
    assert exceed <= 0.05 * 300
    assert np.mean(values) > 0.85


def test_gaussian_mechanism_at_eps_one_corrected_search():
    mu = _mu_for_epsilon_one()
    exceed = 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        b = threshold_search_epsilon(rng.normal(mu, 1, 1000), rng.normal(0, 1, 1000), delta=1e-5)
        exceed += b.epsilon > 1.0
    assert exceed <= 0.05 * 150
    # ten times too little noise (mu x 10) is flagged: the bound exceeds the claimed eps = 1
    rng = np.random.default_rng(0)
    for correction in ("bonferroni", "holdout"):
        low = threshold_search_epsilon(
            rng.normal(10 * mu, 1, 1000), rng.normal(0, 1, 1000), delta=1e-5, correction=correction
        )
        assert low.epsilon > 1.5 and low.correction == correction
    # no noise at all: perfect separation, a large bound
    none = threshold_search_epsilon(np.ones(1000), np.zeros(1000), delta=1e-5)
    assert none.epsilon > 5.0


def test_uncorrected_search_overclaims_where_the_corrected_one_does_not():
    # identical distributions leak nothing: the corrected search never claims eps > 0 here, while taking
    # the best of every threshold at the uncorrected level does in several percent of runs
    from audits.bounds import _eps_from_rates, _errors

    corrected = uncorrected = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        a, b = rng.normal(size=500), rng.normal(size=500)
        corrected += threshold_search_epsilon(a, b).epsilon > 0
        corrected += threshold_search_epsilon(a, b, correction="holdout", seed=seed).epsilon > 0
        thr = np.unique(np.concatenate([a, b]))
        fp, fn = _errors(a, b, thr)
        e = _eps_from_rates(clopper_pearson_upper(fp, 500, 0.025), clopper_pearson_upper(fn, 500, 0.025), 0.0)
        uncorrected += e.max() > 0
    assert corrected <= 0.05 * 600
    assert uncorrected > corrected + 10


def test_bad_arguments_are_audit_errors():
    with pytest.raises(AuditError, match="fp"):
        clopper_pearson_epsilon(11, 10, 0, 10)
    with pytest.raises(AuditError, match="alpha"):
        clopper_pearson_epsilon(1, 10, 1, 10, alpha=1.5)
    with pytest.raises(AuditError, match="v <= r <= m"):
        one_run_epsilon(10, 20, 5)
    with pytest.raises(AuditError, match="delta"):
        gdp_epsilon(1.0, 0.0)
    with pytest.raises(AuditError, match="correction"):
        threshold_search_epsilon(np.ones(3), np.zeros(3), correction="none")  # type: ignore[arg-type]
