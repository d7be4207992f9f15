"""Empirical lower bounds on epsilon: what an attack's errors prove a mechanism is NOT (eps, delta)-DP for.

* ``clopper_pearson_epsilon``: one decision threshold's false positives / negatives (Jagielski et al.
  2020; Nasr et al. 2021/2023). Exact binomial (Clopper-Pearson) upper limits on FPR and FNR, the
  failure probability ``alpha`` split evenly between them, both inequalities of (eps, delta)-DP.
* ``threshold_search_epsilon``: the best threshold, with the search corrected: Bonferroni over the
  thresholds tried (each tested at alpha / k) or a held-out split (choose on one half, bound on the
  other). An uncorrected search reports eps > 0 on a mechanism that leaks nothing several times in a
  hundred runs; the result says which correction was applied.
* ``one_run_epsilon``: Steinke, Nasr, Jagielski, "Privacy Auditing with One (1) Training Run",
  NeurIPS 2023, Theorem 5.2 / Appendix D (``p_value_DP_audit`` and ``get_eps_audit``, ported exactly:
  same p-value with its delta term, same bracket-and-30-bisections search).
* ``gdp_epsilon`` / ``gdp_delta``: the (eps, delta) curve of mu-Gaussian DP (Dong, Roth, Su 2022,
  Corollary 2.13): delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2).
* ``gdp_mu_lower_bound``: Nasr et al. 2023's mu from Clopper-Pearson limits on (FPR, FNR):
  mu = Phi^-1(1 - FPR_hi) - Phi^-1(FNR_hi). It bounds epsilon only under the assumption that the
  mechanism's trade-off curve is Gaussian (true of the Gaussian mechanism, an approximation for
  subsampled and composed ones), so reports label it an estimate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import optimize
from scipy.stats import beta as beta_dist
from scipy.stats import binom, norm

from audits.errors import AuditError

__all__ = [
    "ThresholdBound",
    "clopper_pearson_epsilon",
    "clopper_pearson_upper",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu_lower_bound",
    "one_run_epsilon",
    "one_run_p_value",
    "threshold_search_epsilon",
]

Correction = Literal["bonferroni", "holdout"]


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise AuditError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _level(name: str, value: float) -> float:
    if not (isinstance(value, (int, float, np.floating)) and 0.0 < value < 1.0):
        raise AuditError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return float(value)


def _delta(value: float) -> float:
    if not (isinstance(value, (int, float, np.floating)) and 0.0 <= value < 1.0):
        raise AuditError(f"delta must lie in [0, 1), got {value!r}")
    return float(value)


def clopper_pearson_upper(k: int | np.ndarray, n: int, alpha: float) -> np.ndarray | float:
    """One-sided upper confidence limit, at level 1 - alpha, on a binomial rate from k successes in n:
    the Beta(k + 1, n - k) quantile 1 - alpha (1 when k = n; 1 - alpha^(1/n) when k = 0)."""
    k_arr = np.asarray(k, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        hi = np.where(k_arr >= n, 1.0, beta_dist.ppf(1.0 - alpha, k_arr + 1.0, np.maximum(n - k_arr, 1.0)))
    return float(hi) if hi.ndim == 0 else hi


def _eps_from_rates(fpr_hi: np.ndarray, fnr_hi: np.ndarray, delta: float) -> np.ndarray:
    """max(ln((1 - delta - FNR)/FPR), ln((1 - delta - FPR)/FNR), 0); a term with numerator <= 0 is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(1.0 - delta - fnr_hi > 0, np.log((1.0 - delta - fnr_hi) / fpr_hi), 0.0)
        b = np.where(1.0 - delta - fpr_hi > 0, np.log((1.0 - delta - fpr_hi) / fnr_hi), 0.0)
    return np.maximum(np.maximum(np.nan_to_num(a, nan=0.0), np.nan_to_num(b, nan=0.0)), 0.0)


def clopper_pearson_epsilon(
    fp: int, n_out: int, fn: int, n_in: int, alpha: float = 0.05, delta: float = 0.0
) -> float:
    """Lower bound on epsilon, holding with probability >= 1 - alpha, from one fixed threshold's errors.

    FPR_hi and FNR_hi are one-sided Clopper-Pearson upper limits at level 1 - alpha/2 each (a union
    bound makes both hold with probability >= 1 - alpha); then
    eps_LB = max(ln((1 - delta - FNR_hi)/FPR_hi), ln((1 - delta - FPR_hi)/FNR_hi), 0).
    The threshold must be chosen without looking at these counts (see ``threshold_search_epsilon``)."""
    fp, n_out, fn, n_in = _count("fp", fp), _count("n_out", n_out), _count("fn", fn), _count("n_in", n_in)
    if n_out == 0 or n_in == 0:
        raise AuditError(f"need n_out >= 1 and n_in >= 1, got n_out={n_out}, n_in={n_in}")
    if fp > n_out or fn > n_in:
        raise AuditError(f"need fp <= n_out and fn <= n_in, got fp={fp}/{n_out}, fn={fn}/{n_in}")
    alpha, delta = _level("alpha", alpha), _delta(delta)
    fpr_hi = np.asarray(clopper_pearson_upper(fp, n_out, alpha / 2.0))
    fnr_hi = np.asarray(clopper_pearson_upper(fn, n_in, alpha / 2.0))
    return float(_eps_from_rates(fpr_hi, fnr_hi, delta))


@dataclass(frozen=True)
class ThresholdBound:
    """A corrected best-threshold bound: epsilon, where it was found and how the search was corrected."""

    epsilon: float
    threshold: float
    fp: int
    n_out: int
    fn: int
    n_in: int
    correction: str
    thresholds_tried: int
    alpha: float
    delta: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _candidate_thresholds(mem: np.ndarray, non: np.ndarray, k: int) -> np.ndarray:
    """At most k thresholds: quantiles of the pooled scores (fixed before any error is counted)."""
    pooled = np.unique(np.concatenate([mem, non]))
    if pooled.size <= k:
        return pooled
    return np.unique(np.quantile(pooled, np.linspace(0.0, 1.0, k), method="nearest"))


def _errors(mem: np.ndarray, non: np.ndarray, thr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positives, false negatives) of the rule score >= t, for every t in thr."""
    fp = non.size - np.searchsorted(np.sort(non), thr, side="left")
    fn = np.searchsorted(np.sort(mem), thr, side="left")
    return fp, fn


def threshold_search_epsilon(
    member_scores: np.ndarray,
    nonmember_scores: np.ndarray,
    *,
    alpha: float = 0.05,
    delta: float = 0.0,
    correction: Correction = "bonferroni",
    max_thresholds: int = 100,
    seed: int = 0,
) -> ThresholdBound:
    """The best Clopper-Pearson bound over thresholds, valid with probability >= 1 - alpha.

    ``bonferroni``: k <= ``max_thresholds`` thresholds (quantiles of the pooled scores), each bound at
    level alpha / k, the largest reported. ``holdout``: the scores are split at random in halves (by
    ``seed``); the best of every threshold on the first half is bound on the second at level alpha."""
    mem = np.asarray(member_scores, dtype=np.float64).reshape(-1)
    non = np.asarray(nonmember_scores, dtype=np.float64).reshape(-1)
    if mem.size == 0 or non.size == 0:
        raise AuditError("threshold search needs member and non-member scores")
    if not (np.all(np.isfinite(mem)) and np.all(np.isfinite(non))):
        raise AuditError("threshold search: scores must be finite")
    alpha, delta = _level("alpha", alpha), _delta(delta)
    if isinstance(max_thresholds, bool) or not isinstance(max_thresholds, int) or max_thresholds < 1:
        raise AuditError(f"max_thresholds must be a positive integer, got {max_thresholds!r}")
    if correction == "bonferroni":
        thr = _candidate_thresholds(mem, non, max_thresholds)
        fp, fn = _errors(mem, non, thr)
        level = alpha / (2.0 * thr.size)
        eps = _eps_from_rates(
            np.asarray(clopper_pearson_upper(fp, non.size, level)),
            np.asarray(clopper_pearson_upper(fn, mem.size, level)),
            delta,
        )
        i = int(np.argmax(eps))
        return ThresholdBound(
            float(eps[i]), float(thr[i]), int(fp[i]), int(non.size), int(fn[i]), int(mem.size),
            "bonferroni", int(thr.size), alpha, delta,
        )  # fmt: skip
    if correction == "holdout":
        if mem.size < 2 or non.size < 2:
            raise AuditError("a held-out split needs at least 2 member and 2 non-member scores")
        rng = np.random.default_rng(seed)
        pm, pn = rng.permutation(mem.size), rng.permutation(non.size)
        m_sel, m_ev = mem[pm[: mem.size // 2]], mem[pm[mem.size // 2 :]]
        n_sel, n_ev = non[pn[: non.size // 2]], non[pn[non.size // 2 :]]
        thr = np.unique(np.concatenate([m_sel, n_sel]))
        fp, fn = _errors(m_sel, n_sel, thr)
        # choose by the same statistic on the selection half (its bound at level alpha)
        sel = _eps_from_rates(
            np.asarray(clopper_pearson_upper(fp, n_sel.size, alpha / 2.0)),
            np.asarray(clopper_pearson_upper(fn, m_sel.size, alpha / 2.0)),
            delta,
        )
        t = float(thr[int(np.argmax(sel))])
        fp_e, fn_e = _errors(m_ev, n_ev, np.array([t]))
        eps = clopper_pearson_epsilon(
            int(fp_e[0]), int(n_ev.size), int(fn_e[0]), int(m_ev.size), alpha, delta
        )
        return ThresholdBound(
            eps, t, int(fp_e[0]), int(n_ev.size), int(fn_e[0]), int(m_ev.size), "holdout", 1, alpha, delta
        )
    raise AuditError(f"correction must be 'bonferroni' or 'holdout', got {correction!r}")


# ---------------------------------------------------------------- one run (Steinke, Nasr, Jagielski 2023)


def one_run_p_value(m: int, r: int, v: int, eps: float, delta: float = 0.0) -> float:
    """P-value of >= v correct guesses out of r (m canaries) under (eps, delta)-DP: Appendix D's
    ``p_value_DP_audit``: P[Bin(r, q) >= v] + 2 m delta max_i P[v > Bin(r, q) >= v - i] / i,
    q = e^eps / (1 + e^eps)."""
    q = 1.0 / (1.0 + math.exp(-eps))
    p = float(binom.sf(v - 1, r, q))
    if delta > 0.0 and v > 0:
        tail = np.cumsum(binom.pmf(np.arange(v - 1, -1, -1), r, q))  # sum_{j=1..i} P[Bin = v - j]
        alpha_term = float(np.max(tail / np.arange(1, v + 1)))
        p += alpha_term * delta * 2.0 * m
    return min(p, 1.0)


def one_run_epsilon(m: int, r: int, v: int, delta: float = 0.0, p: float = 0.05) -> float:
    """The largest eps rejected at level p from one training run: ``m`` canaries each included with
    probability 1/2, ``r`` guesses (abstentions excluded), ``v`` of them correct (Steinke et al. 2023,
    Theorem 5.2 with the delta term; Appendix D's ``get_eps_audit``: eps_max stepped up by 1 until its
    p-value reaches p, then 30 bisections, returning the low end)."""
    m, r, v = _count("m", m), _count("r", r), _count("v", v)
    if not v <= r <= m:
        raise AuditError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    delta, p = _delta(delta), _level("p", p)
    lo, hi = 0.0, 1.0
    while one_run_p_value(m, r, v, hi, delta) < p:
        lo, hi = hi, hi + 1.0
        if hi > 1e4:  # unreachable for r >= 1: kept so a bad input can never loop forever
            return lo
    for _ in range(30):
        mid = (lo + hi) / 2.0
        if one_run_p_value(m, r, v, mid, delta) < p:
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------- Gaussian DP


def gdp_delta(mu: float, eps: float) -> float:
    """delta(eps) of mu-GDP: Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2) (Dong, Roth, Su, Cor. 2.13)."""
    if mu <= 0:
        return 0.0
    # log-space for the second term: e^eps Phi(x) = exp(eps + logPhi(x))
    a = norm.cdf(-eps / mu + mu / 2.0)
    b = math.exp(eps + norm.logcdf(-eps / mu - mu / 2.0))
    return max(0.0, float(a - b))


def gdp_epsilon(mu: float, delta: float) -> float:
    """The smallest eps with mu-GDP => (eps, delta)-DP (0 when delta already covers eps = 0)."""
    if not (isinstance(mu, (int, float, np.floating)) and mu >= 0 and math.isfinite(mu)):
        raise AuditError(f"mu must be a finite number >= 0, got {mu!r}")
    if not 0.0 < delta < 1.0:
        raise AuditError(f"delta must lie strictly between 0 and 1, got {delta!r}")
    if mu == 0 or gdp_delta(mu, 0.0) <= delta:
        return 0.0
    hi = max(1.0, mu * mu)
    while gdp_delta(mu, hi) > delta:
        hi *= 2.0
    return float(optimize.brentq(lambda e: gdp_delta(mu, e) - delta, 0.0, hi, xtol=1e-12, rtol=1e-12))


def gdp_mu_lower_bound(fp: int, n_out: int, fn: int, n_in: int, alpha: float = 0.05) -> float:
    """Nasr et al. 2023: mu >= Phi^-1(1 - FPR_hi) - Phi^-1(FNR_hi) with Clopper-Pearson limits at
    alpha/2 each (assumes a Gaussian trade-off curve; 0 when the attack shows nothing)."""
    fp, n_out, fn, n_in = _count("fp", fp), _count("n_out", n_out), _count("fn", fn), _count("n_in", n_in)
    if n_out == 0 or n_in == 0 or fp > n_out or fn > n_in:
        raise AuditError(f"bad counts fp={fp}/{n_out}, fn={fn}/{n_in}")
    alpha = _level("alpha", alpha)
    fpr_hi = float(clopper_pearson_upper(fp, n_out, alpha / 2.0))
    fnr_hi = float(clopper_pearson_upper(fn, n_in, alpha / 2.0))
    mu = float(norm.ppf(1.0 - fpr_hi) - norm.ppf(fnr_hi)) if fpr_hi < 1 and fnr_hi < 1 else 0.0
    return max(0.0, mu)
