"""Canary clients, the estimator side (Andrew et al., "One-shot Empirical Privacy Estimation for Federated
Learning", ICLR 2024), and the rigorous one-run bound from the same canaries (Steinke, Nasr, Jagielski 2023).

A run with `audit.canary_clients = m` draws m random unit directions u_i in R^d; each canary is inserted
with probability 1/2 and, when sampled, sends `norm * u_i` as its update (fl_core builds those clients and
keeps `canaries.npz`). After the run the auditor knows the directions and the final model delta
D = final - initial, and computes cos_i = <u_i, D> / ||D||.

* One-shot estimate (Andrew et al., Sec. 3): fit a Gaussian to the inserted canaries' cosines and
  report the epsilon at which it and the null N(0, 1/d) are (eps, delta)-indistinguishable (a random
  unit vector's cosine with any vector independent of it has mean 0 and variance 1/d; the canaries
  left out are reported as a check). An *estimate*: it assumes Gaussian cosines. The equal-width
  variant (both widths 1/sqrt(d)) is reported beside it: with few canaries the fitted width is noisy.
* One-run bound (Steinke et al., Thm 5.2): guess "inserted" for the k highest cosines and "not" for the
  k lowest; v correct out of r = 2k guesses gives a lower bound on epsilon that holds with probability
  1 - p. Several k are tried and the level is split over them (Bonferroni), so the best is still valid.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize
from scipy.stats import norm

from audits.bounds import gdp_epsilon, one_run_epsilon
from audits.errors import AuditError

__all__ = [
    "canary_audit",
    "canary_cosines",
    "gaussian_pair_delta",
    "gaussian_pair_epsilon",
    "one_run_from_scores",
    "one_shot_epsilon",
]


def canary_cosines(directions: np.ndarray, model_delta: np.ndarray) -> np.ndarray:
    """cos(u_i, D) for every canary direction (rows of an m x d array) against the model delta D."""
    u = np.asarray(directions, dtype=np.float64)
    d = np.asarray(model_delta, dtype=np.float64).reshape(-1)
    if u.ndim != 2 or u.shape[1] != d.size:
        raise AuditError(f"canary directions have shape {u.shape}, the model delta has {d.size} weights")
    dn = float(np.linalg.norm(d))
    un = np.linalg.norm(u, axis=1)
    if dn == 0.0 or np.any(un == 0.0):
        raise AuditError("a cosine needs a non-zero model delta and non-zero canary directions")
    return (u @ d) / (un * dn)


def gaussian_pair_delta(eps: float, mu1: float, s1: float, mu0: float, s0: float) -> float:
    """The smallest delta making N(mu1, s1^2) and N(mu0, s0^2) (eps, delta)-indistinguishable, both ways:
    max over the two orders of the integral of max(0, p - e^eps q), on a fine grid."""
    lo = min(mu1 - 14 * s1, mu0 - 14 * s0)
    hi = max(mu1 + 14 * s1, mu0 + 14 * s0)
    x = np.linspace(lo, hi, 400_001)
    lp, lq = norm.logpdf(x, mu1, s1), norm.logpdf(x, mu0, s0)
    dx = x[1] - x[0]
    one = np.sum(np.maximum(0.0, np.exp(lp) - np.exp(np.minimum(eps + lq, 700.0)))) * dx
    two = np.sum(np.maximum(0.0, np.exp(lq) - np.exp(np.minimum(eps + lp, 700.0)))) * dx
    return float(max(one, two))


def gaussian_pair_epsilon(mu1: float, s1: float, mu0: float, s0: float, delta: float) -> float:
    """The epsilon at which the two Gaussians are (eps, delta)-indistinguishable (0 if delta covers eps 0)."""
    if not (s1 > 0 and s0 > 0):
        raise AuditError(f"Gaussian widths must be > 0, got {s1} and {s0}")
    if not 0.0 < delta < 1.0:
        raise AuditError(f"delta must lie strictly between 0 and 1, got {delta!r}")
    if gaussian_pair_delta(0.0, mu1, s1, mu0, s0) <= delta:
        return 0.0
    hi = 1.0
    while gaussian_pair_delta(hi, mu1, s1, mu0, s0) > delta:
        hi *= 2.0
        if hi > 1e3:
            return math.inf
    return float(
        optimize.brentq(lambda e: gaussian_pair_delta(e, mu1, s1, mu0, s0) - delta, 0.0, hi, xtol=1e-6)
    )


def one_shot_epsilon(
    inserted_cosines: np.ndarray, null_cosines: np.ndarray | None, dim: int, delta: float
) -> dict[str, Any]:
    """Andrew et al. 2024's estimate: a Gaussian fitted to the inserted canaries' cosines against the null
    N(0, 1/d), which is exact for directions drawn independently of the run (a canary that was not
    inserted is one). ``null_cosines`` (the canaries left out) are reported as a check of that null.

    ``epsilon`` is the paper's estimate (the fitted width kept); ``epsilon_equal_width`` sets both widths
    to 1/sqrt(d) (mu-GDP with mu = mean * sqrt(d)). With few inserted canaries the fitted width is noisy
    and a width ratio away from 1 alone inflates ``epsilon`` at small delta; read both."""
    ins = np.asarray(inserted_cosines, dtype=np.float64)
    if ins.size < 2:
        raise AuditError(f"the one-shot estimate needs at least 2 inserted canaries, got {ins.size}")
    if dim < 1:
        raise AuditError(f"dim must be >= 1, got {dim}")
    mu1, s1 = float(ins.mean()), max(float(ins.std(ddof=1)), 1e-12)
    s0 = 1.0 / math.sqrt(dim)
    out: dict[str, Any] = {
        "epsilon": gaussian_pair_epsilon(mu1, s1, 0.0, s0, delta),
        "epsilon_equal_width": gdp_epsilon(abs(mu1) / s0, delta),
        "mean_inserted": mu1,
        "std_inserted": s1,
        "mean_null": 0.0,
        "std_null": s0,
        "null": "N(0, 1/d)",
        "delta": delta,
        "inserted": int(ins.size),
    }
    null = None if null_cosines is None else np.asarray(null_cosines, dtype=np.float64)
    if null is not None and null.size >= 2:
        out["left_out_mean"], out["left_out_std"] = float(null.mean()), float(null.std(ddof=1))
    return out


def one_run_from_scores(
    scores: np.ndarray, inserted: np.ndarray, *, delta: float = 0.0, p: float = 0.05
) -> dict[str, Any]:
    """Steinke et al.'s bound with guesses on the k highest (inserted) and k lowest (not) scores.

    k runs over m/2, m/4, ... (at least 1), each tested at level p / (number of k): the largest bound is
    valid at level p. Returns the bound and the (k, r, v) it came from."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    truth = np.asarray(inserted, dtype=bool).reshape(-1)
    m = s.size
    if truth.size != m or m < 2:
        raise AuditError(
            f"need one inserted flag per score and at least 2 canaries, got {m} and {truth.size}"
        )
    order = np.argsort(s, kind="stable")
    ks = []
    k = m // 2
    while k >= 1:
        ks.append(k)
        k //= 2
    level = p / len(ks)
    tries = []
    for k in ks:
        low, high = order[:k], order[m - k :]
        v = int(np.sum(truth[high]) + np.sum(~truth[low]))
        tries.append(
            {"epsilon": one_run_epsilon(m, 2 * k, v, delta=delta, p=level), "k": k, "r": 2 * k, "v": v}
        )
    best: dict[str, Any] = max(tries, key=lambda t: t["epsilon"])  # ties: the first (largest k)
    best.update({"m": m, "p": p, "delta": delta, "tries": len(ks), "correction": "bonferroni over k"})
    return best


def canary_audit(
    directions: np.ndarray,
    inserted: np.ndarray,
    initial: np.ndarray,
    final: np.ndarray,
    *,
    delta: float,
    p: float = 0.05,
) -> dict[str, Any]:
    """Cosines, the one-shot estimate and the one-run bound for a run's canaries."""
    dirs = np.asarray(directions)
    ins = np.asarray(inserted, dtype=bool)
    if dirs.ndim != 2 or ins.shape != (dirs.shape[0],):
        raise AuditError(f"canaries: directions {dirs.shape} and inserted {ins.shape} do not match")
    cos = canary_cosines(dirs, np.asarray(final, np.float64) - np.asarray(initial, np.float64))
    out: dict[str, Any] = {
        "m": int(dirs.shape[0]),
        "inserted": int(ins.sum()),
        "dim": int(dirs.shape[1]),
        "cosines": cos.tolist(),
        "inserted_mask": ins.tolist(),
    }
    if ins.sum() >= 2:
        out["one_shot"] = one_shot_epsilon(cos[ins], cos[~ins], dirs.shape[1], delta)
    else:
        out["one_shot"] = None
    out["one_run"] = one_run_from_scores(cos, ins, delta=delta, p=p)
    return out
