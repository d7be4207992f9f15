"""Choose the neighbourhood size k and threshold t for n clients (Bell et al., CCS 2020, Sec. 3-4).

Model: an adversary corrupts c = floor(gamma n) clients (statically, before the round) and up to a delta
fraction drop out independently; every client draws its k share holders uniformly among the other n - 1
cohort members from its own fresh keys (`graph.out_neighbours`), and masks with its holders and with the
clients that drew it. We compute, with exact tails:
  security     n * P[Hypergeom(n-1, c, k) >= t']        <= 2^-sigma  (t' = t, or 2t - k semi-malicious)
  correctness  n * P[Binom(k, 1 - delta) < t]           <= 2^-eta
  connectivity P[the honest survivors' graph is disconnected] <= 2^-sigma, bounded by a union over the
               sets A of a <= h/2 of the h = n - B honest survivors (B = c + ceil(delta n)) of
               [C(a - 1 + B, k) / C(n - 1, k)]^a [C(n - 1 - a, k) / C(n - 1, k)]^(h - a)
               (A's members draw only inside A or the bad clients, the others never draw into A)
and return the smallest k (or the complete graph, k = n - 1) with the largest t meeting all three.
Security is a hypergeometric tail because an honest client's holders are a uniform k-subset drawn
independently of the (static) corrupt set, whatever the server does (issue 13 finding 3b).

Small cohorts cannot meet those tails at all (n = 10 at 10 % dropout); there the complete graph is
returned with a deterministic rule instead (`tail_bounds=False`): t is the largest threshold that still
tolerates floor-rounded delta (n - 1) dropouts among a client's n - 1 neighbours, and it must exceed
every corrupt client the config tolerates (t > c; t' = 2t - k > c semi-malicious), so the colluders can
never meet it (Bonawitz et al. 2017, Sec. 4: security needs t > corrupt count). No such t: the config is
refused with a one-line reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from secagg.errors import SecAggConfigError

__all__ = ["Parameters", "choose_parameters", "binomial_tail_ge", "hypergeom_tail_ge", "log2_disconnect"]

SIGMA = 40
ETA = 20


@dataclass(frozen=True)
class Parameters:
    """A (k, t) choice with the log2 failure probabilities it guarantees."""

    neighbours: int
    threshold: int
    complete: bool
    log2_security_failure: float
    log2_correctness_failure: float
    log2_disconnect: float
    tail_bounds: bool = True  # False: the small-cohort complete graph, chosen by the deterministic rule


def _log2(p: float) -> float:
    return math.log2(p) if p > 0 else -math.inf


def binomial_tail_ge(k: int, p: float, t: int) -> float:
    """P[Binom(k, p) >= t], summed in log space (no overflow for large k)."""
    if t <= 0:
        return 1.0
    if t > k:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    lg = math.lgamma
    terms = [lg(k + 1) - lg(i + 1) - lg(k - i + 1) + i * lp + (k - i) * lq for i in range(t, k + 1)]
    m = max(terms)
    return min(1.0, math.exp(m) * sum(math.exp(x - m) for x in terms))


def hypergeom_tail_ge(population: int, marked: int, draws: int, t: int) -> float:
    """P[X >= t] for X ~ Hypergeom(population, marked, draws), exact with Python integers."""
    if t <= 0:
        return 1.0
    hi = min(marked, draws)
    if t > hi:
        return 0.0
    num = sum(math.comb(marked, x) * math.comb(population - marked, draws - x) for x in range(t, hi + 1))
    return num / math.comb(population, draws)


def log2_disconnect(n: int, k: int, bad: int) -> float:
    """log2 of the union bound above on the honest survivors' graph being disconnected when every client
    draws k holders uniformly and `bad` clients are corrupt or dropped (exact binomials in log space)."""
    h = n - bad
    if k >= n - 1 or h <= 1:
        return -math.inf
    a = np.arange(1, h // 2 + 1, dtype=np.float64)
    lf = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))))

    def log_comb(top: np.ndarray, r: int) -> np.ndarray:
        ti = top.astype(np.int64)
        out = np.full(ti.shape, -np.inf)
        ok = ti >= r
        out[ok] = lf[ti[ok]] - lf[r] - lf[ti[ok] - r]
        return out

    total = lf[n - 1] - lf[k] - lf[n - 1 - k]
    ai = a.astype(np.int64)
    log_choose_h = lf[h] - lf[ai] - lf[h - ai]
    inside = a * (log_comb(a - 1 + bad, k) - total)
    outside = (h - a) * (log_comb(n - 1 - a, k) - total)
    terms = log_choose_h + inside + outside
    top = terms.max()
    if top == -np.inf:
        return -math.inf
    return float((top + math.log(np.exp(terms - top).sum())) / math.log(2))


def _check_rates(n: int, dropout_rate: float, corrupt_fraction: float, semi_malicious: bool) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise SecAggConfigError(f"number of clients must be an int >= 2, got {n!r}")
    for name, v in (("dropout_rate", dropout_rate), ("corrupt_fraction", corrupt_fraction)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
            raise SecAggConfigError(f"{name} must be a float in [0, 1), got {v!r}")
    load = corrupt_fraction + (2 if semi_malicious else 1) * dropout_rate
    if load > 0.9:
        which = "gamma + 2 delta <= 0.9 (semi-malicious)" if semi_malicious else "gamma + delta <= 0.9"
        raise SecAggConfigError(
            f"infeasible: corrupt_fraction={corrupt_fraction} and dropout_rate={dropout_rate} give "
            f"{load:.3f}; secure aggregation with dropouts needs {which}"
        )


def choose_parameters(
    n: int,
    *,
    dropout_rate: float = 0.1,
    corrupt_fraction: float = 0.05,
    semi_malicious: bool = False,
    sigma: int = SIGMA,
    eta: int = ETA,
) -> Parameters:
    """Smallest k (or n - 1 for the complete graph) and the largest t meeting the bounds above;
    for cohorts too small for them, the complete graph by the deterministic rule of the module docstring.

    Public so that `SecAggConfig.create`, `secure_sum` and the federated core use the same parameters;
    pass `max_corrupt = floor(corrupt_fraction * n)` to the config built from them."""
    _check_rates(n, dropout_rate, corrupt_fraction, semi_malicious)
    if sigma < 1 or eta < 1:
        raise SecAggConfigError(f"sigma and eta must be >= 1, got sigma={sigma}, eta={eta}")
    corrupt = math.floor(corrupt_fraction * n)
    bad = min(n, corrupt + math.ceil(dropout_rate * n))
    log2_n = math.log2(n)
    for k in range(1, n):
        complete = k == n - 1
        # largest t with correctness, then check security at that t (security improves with t)
        best = None
        for t in range(k, 0, -1):
            corr = _log2(binomial_tail_ge(k, dropout_rate, k - t + 1)) + log2_n  # > k - t drops among k
            if corr <= -eta:
                best = (t, corr)
                break
        if best is None:
            continue
        t, corr = best
        t_sec = 2 * t - k if semi_malicious else t
        if semi_malicious and t_sec <= 0:
            continue
        sec = _log2(hypergeom_tail_ge(n - 1, corrupt, k, t_sec)) + log2_n
        if sec > -sigma:
            continue
        log2_disc = -math.inf if complete else log2_disconnect(n, k, bad)
        if log2_disc <= -sigma:
            return Parameters(k, t, complete, sec, corr, log2_disc)
    return _complete_graph_fallback(n, dropout_rate, corrupt, semi_malicious)


def _complete_graph_fallback(n: int, dropout_rate: float, corrupt: int, semi_malicious: bool) -> Parameters:
    """The complete graph for cohorts too small for the tail bounds: the largest t that tolerates
    floor-rounded delta (n - 1) dropped neighbours, refused unless the tolerated colluders cannot meet it."""
    k = n - 1
    t_max = max(1, math.floor((1.0 - dropout_rate) * k + 1e-9))
    # curious server: t > c; semi-malicious: 2t - k > c, i.e. t > (k + c) / 2 (Bell et al. 2020, Sec. 4)
    t_min = (k + corrupt) // 2 + 1 if semi_malicious else corrupt + 1
    if t_min > t_max:
        mode = "semi-malicious, t > (k + c)/2" if semi_malicious else "t > c"
        raise SecAggConfigError(
            f"no safe threshold for n={n}: {corrupt} tolerated corrupt clients need t >= {t_min} ({mode}) "
            f"but tolerating dropout_rate={dropout_rate} allows at most t = {t_max}; "
            "add clients or lower the rates"
        )
    corr = _log2(binomial_tail_ge(k, dropout_rate, k - t_max + 1)) + math.log2(n)
    return Parameters(k, t_max, True, -math.inf, corr, -math.inf, tail_bounds=False)
