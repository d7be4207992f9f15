"""Membership-inference metrics (ROC, AUC, TPR at low FPR, balanced accuracy, advantage) and the most an
attack may reach against an (epsilon, delta)-DP mechanism, so that tables show "achieved" beside "allowed".

Conventions (every function here follows them):

* A higher score means "member". A threshold ``t`` predicts "member" for every score ``>= t``.
* ``roc_curve`` returns one point per distinct score (plus the all-"non-member" point (0, 0)), so the
  empirical ROC is the step function through exactly the (FPR, TPR) pairs some threshold achieves.
* ``roc_auc`` is the Mann-Whitney statistic: P[member score > non-member score] + 1/2 P[equal]; ties
  count one half. It equals the trapezoidal area under ``roc_curve``.
* ``tpr_at_fpr(..., fpr)`` is the largest TPR of a threshold whose empirical FPR is <= ``fpr``; no
  interpolation between points (interpolating would credit thresholds nobody can choose). With 1,000
  non-members, FPR 0.1% allows exactly one false positive; with fewer than 1/fpr non-members the only
  admissible threshold lets no non-member through.
* ``balanced_accuracy`` and ``advantage`` are maxima over thresholds on the same data, i.e. optimistic
  (in-sample) summaries, not confidence bounds: use ``audits.bounds`` for claims about epsilon.

DP bounds (Kairouz, Oh, Viswanath 2015; Nasr et al. 2023): for an (eps, delta)-DP mechanism and any
test, FNR >= max(0, 1 - delta - e^eps FPR, e^-eps (1 - delta - FPR)), i.e.
TPR <= min(1, e^eps FPR + delta, 1 - e^-eps (1 - delta - FPR)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from audits.errors import AuditError

__all__ = [
    "ROC",
    "advantage",
    "attack_summary",
    "balanced_accuracy",
    "dp_max_advantage",
    "dp_max_auc",
    "dp_max_tpr",
    "roc_auc",
    "roc_curve",
    "tpr_at_fpr",
]


def _scores(name: str, values: object) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise AuditError(f"{name} is empty: an ROC needs at least one member and one non-member score")
    if not np.all(np.isfinite(arr)):
        raise AuditError(f"{name} holds {int(np.sum(~np.isfinite(arr)))} NaN/Inf score(s)")
    return arr


@dataclass(frozen=True)
class ROC:
    """Points of the empirical ROC, from the strictest threshold to the loosest.

    ``thresholds[i]`` gives (``fpr[i]``, ``tpr[i]``) by the rule score >= threshold; ``thresholds[0]`` is
    +inf (nobody called a member)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    n_in: int
    n_out: int

    @property
    def false_positives(self) -> np.ndarray:
        return np.rint(self.fpr * self.n_out).astype(np.int64)

    @property
    def false_negatives(self) -> np.ndarray:
        return np.rint((1.0 - self.tpr) * self.n_in).astype(np.int64)


def roc_curve(
    member_scores: Sequence[float] | np.ndarray, nonmember_scores: Sequence[float] | np.ndarray
) -> ROC:
    """The empirical ROC: one point per distinct score value, thresholds descending (see module doc)."""
    mem = _scores("member_scores", member_scores)
    non = _scores("nonmember_scores", nonmember_scores)
    thr = np.unique(np.concatenate([mem, non]))[::-1]
    mem_sorted, non_sorted = np.sort(mem), np.sort(non)
    # count of scores >= t  =  n - (number of scores < t)
    tp = mem.size - np.searchsorted(mem_sorted, thr, side="left")
    fp = non.size - np.searchsorted(non_sorted, thr, side="left")
    fpr = np.concatenate([[0.0], fp / non.size])
    tpr = np.concatenate([[0.0], tp / mem.size])
    return ROC(fpr, tpr, np.concatenate([[np.inf], thr]), int(mem.size), int(non.size))


def roc_auc(
    member_scores: Sequence[float] | np.ndarray, nonmember_scores: Sequence[float] | np.ndarray
) -> float:
    """P[member > non-member] + 1/2 P[tie] (Mann-Whitney U / (n_in n_out)); 0.5 means no signal."""
    mem = _scores("member_scores", member_scores)
    non = _scores("nonmember_scores", nonmember_scores)
    ranks = rankdata(np.concatenate([mem, non]))  # average ranks: a tie counts one half
    u = float(ranks[: mem.size].sum()) - mem.size * (mem.size + 1) / 2.0
    return u / (mem.size * non.size)


def tpr_at_fpr(
    member_scores: Sequence[float] | np.ndarray,
    nonmember_scores: Sequence[float] | np.ndarray,
    fpr: float = 0.01,
) -> float:
    """Largest TPR over thresholds whose empirical FPR is <= ``fpr`` (no interpolation; module doc)."""
    if not 0.0 <= fpr <= 1.0:
        raise AuditError(f"fpr must lie in [0, 1], got {fpr!r}")
    roc = roc_curve(member_scores, nonmember_scores)
    ok = roc.fpr <= fpr + 1e-12
    return float(roc.tpr[ok].max())


def balanced_accuracy(
    member_scores: Sequence[float] | np.ndarray, nonmember_scores: Sequence[float] | np.ndarray
) -> float:
    """max over thresholds of (TPR + TNR) / 2 (in-sample, optimistic)."""
    roc = roc_curve(member_scores, nonmember_scores)
    return float(np.max((roc.tpr + 1.0 - roc.fpr) / 2.0))


def advantage(
    member_scores: Sequence[float] | np.ndarray, nonmember_scores: Sequence[float] | np.ndarray
) -> float:
    """max over thresholds of |TPR - FPR| (Yeom et al. 2018's membership advantage; in-sample)."""
    roc = roc_curve(member_scores, nonmember_scores)
    return float(np.max(np.abs(roc.tpr - roc.fpr)))


# ---------------------------------------------------------------- what (eps, delta)-DP allows


def _check_eps_delta(eps: float, delta: float) -> None:
    if not (isinstance(eps, (int, float, np.floating)) and eps >= 0 and not math.isnan(eps)):
        raise AuditError(f"epsilon must be >= 0, got {eps!r}")
    if not 0.0 <= delta <= 1.0:
        raise AuditError(f"delta must lie in [0, 1], got {delta!r}")


def dp_max_tpr(fpr: float | np.ndarray, eps: float, delta: float = 0.0) -> np.ndarray | float:
    """The largest TPR any test can reach at ``fpr`` against an (eps, delta)-DP mechanism:
    min(1, e^eps FPR + delta, 1 - e^-eps (1 - delta - FPR)). Infinite eps allows TPR 1."""
    _check_eps_delta(eps, delta)
    a = np.clip(np.asarray(fpr, dtype=np.float64), 0.0, 1.0)
    if math.isinf(eps):
        out = np.ones_like(a)
    else:
        e = math.exp(min(eps, 700.0))
        out = np.minimum.reduce([np.ones_like(a), e * a + delta, 1.0 - (1.0 - delta - a) / e])
    return float(out) if out.ndim == 0 else out


def dp_max_advantage(eps: float, delta: float = 0.0) -> float:
    """max over tests of TPR - FPR under (eps, delta)-DP: (e^eps - 1)(1 - delta)/(e^eps + 1) + delta
    (tanh(eps/2) at delta = 0), reached at FPR = (1 - delta)/(e^eps + 1)."""
    _check_eps_delta(eps, delta)
    if math.isinf(eps) or eps > 700:
        return 1.0
    e = math.exp(eps)
    return min(1.0, (e - 1.0) * (1.0 - delta) / (e + 1.0) + delta)


def dp_max_auc(eps: float, delta: float = 0.0) -> float:
    """Area under the ``dp_max_tpr`` curve: the largest AUC an (eps, delta)-DP mechanism allows.

    The curve is piecewise linear with corners at FPR = (1 - delta)/(e^eps + 1) and 1 - delta, so the
    trapezoid rule over those corners is exact."""
    _check_eps_delta(eps, delta)
    if math.isinf(eps) or eps > 700:
        return 1.0
    corners = np.array([0.0, (1.0 - delta) / (math.exp(eps) + 1.0), 1.0 - delta, 1.0])
    tpr = np.asarray(dp_max_tpr(corners, eps, delta))
    return float(np.sum((corners[1:] - corners[:-1]) * (tpr[1:] + tpr[:-1]) / 2.0))


def attack_summary(
    member_scores: Sequence[float] | np.ndarray,
    nonmember_scores: Sequence[float] | np.ndarray,
    *,
    epsilon: float | None = None,
    delta: float = 0.0,
) -> dict[str, float | None]:
    """One table row: AUC, TPR at 0.1% and 1% FPR, balanced accuracy, advantage, and, given the proven
    (epsilon, delta), the most each may be (``*_allowed``)."""
    row: dict[str, float | None] = {
        "n_members": float(np.size(member_scores)),
        "n_nonmembers": float(np.size(nonmember_scores)),
        "auc": roc_auc(member_scores, nonmember_scores),
        "tpr_at_0.1%_fpr": tpr_at_fpr(member_scores, nonmember_scores, 0.001),
        "tpr_at_1%_fpr": tpr_at_fpr(member_scores, nonmember_scores, 0.01),
        "balanced_accuracy": balanced_accuracy(member_scores, nonmember_scores),
        "advantage": advantage(member_scores, nonmember_scores),
    }
    if epsilon is not None and math.isfinite(epsilon):
        row["auc_allowed"] = dp_max_auc(epsilon, delta)
        row["tpr_at_0.1%_fpr_allowed"] = float(dp_max_tpr(0.001, epsilon, delta))
        row["tpr_at_1%_fpr_allowed"] = float(dp_max_tpr(0.01, epsilon, delta))
        row["advantage_allowed"] = dp_max_advantage(epsilon, delta)
        row["balanced_accuracy_allowed"] = (1.0 + dp_max_advantage(epsilon, delta)) / 2.0
    return row
