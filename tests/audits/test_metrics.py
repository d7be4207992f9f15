"""Known answers for the ROC conventions (derived by hand in each test) and the DP limits."""

import math

import numpy as np
import pytest

from audits.errors import AuditError
from audits.metrics import (
    advantage,
    attack_summary,
    balanced_accuracy,
    dp_max_advantage,
    dp_max_auc,
    dp_max_tpr,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)


def test_auc_ties_count_one_half():
    # pairs (m, n): (1,0)=1 (1,2)=0 (2,0)=1 (2,2)=1/2 (3,0)=1 (3,2)=1 -> 4.5 / 6
    assert roc_auc([1, 2, 3], [0, 2]) == pytest.approx(0.75)
    assert roc_auc([5, 5], [5, 5, 5]) == pytest.approx(0.5)
    assert roc_auc([1, 2], [3, 4]) == 0.0
    assert roc_auc([3, 4], [1, 2]) == 1.0


def test_auc_equals_trapezoid_area_of_roc():
    rng = np.random.default_rng(1)
    mem = rng.integers(0, 20, 300).astype(float)  # many ties
    non = rng.integers(0, 17, 200).astype(float)
    roc = roc_curve(mem, non)
    area = float(np.sum(np.diff(roc.fpr) * (roc.tpr[1:] + roc.tpr[:-1]) / 2))
    assert roc_auc(mem, non) == pytest.approx(area, abs=1e-12)


def test_roc_points_by_hand():
    roc = roc_curve([3, 2, 1], [2, 0])
    # thresholds inf, 3, 2, 1, 0 -> (fp, tp) = (0,0) (0,1) (1,2) (1,3) (2,3)
    assert roc.thresholds[0] == math.inf
    np.testing.assert_allclose(roc.thresholds[1:], [3, 2, 1, 0])
    np.testing.assert_allclose(roc.fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(roc.tpr, [0, 1 / 3, 2 / 3, 1, 1])


def test_tpr_at_fpr_is_largest_tpr_with_fpr_at_most_target_no_interpolation():
    non = np.arange(1000, dtype=float)  # scores 0..999
    mem = np.array([1000.0, 999.0, 998.5, 997.5, 10.0])
    # FPR <= 0.1% allows one false positive (the non-member 999): the loosest such threshold is 998.5
    # (just above non-member 998) -> members 1000, 999, 998.5 -> TPR 3/5
    assert tpr_at_fpr(mem, non, 0.001) == pytest.approx(0.6)
    # FPR <= 1%: ten false positives, threshold 990 -> 4/5
    assert tpr_at_fpr(mem, non, 0.01) == pytest.approx(0.8)
    # FPR 0: only the threshold above every non-member -> 1/5
    assert tpr_at_fpr(mem, non, 0.0) == pytest.approx(0.2)
    # fewer than 1/fpr non-members: no false positive allowed
    assert tpr_at_fpr([5, 1], [2, 3], 0.001) == pytest.approx(0.5)


def test_balanced_accuracy_and_advantage():
    mem, non = [3, 2, 1], [2, 0]
    # ROC points: (0,1/3) (.5,2/3) (.5,1) (1,1): best TPR-FPR = 1 - .5 = .5 ; BA = (1 + .5)/2
    assert advantage(mem, non) == pytest.approx(0.5)
    assert balanced_accuracy(mem, non) == pytest.approx(0.75)
    # advantage counts a flipped attack too: members lower than non-members
    assert advantage([0, 0], [1, 1]) == pytest.approx(1.0)


def test_dp_max_tpr_region():
    eps, delta = 1.0, 0.01
    e = math.e
    assert dp_max_tpr(0.001, eps, delta) == pytest.approx(e * 0.001 + delta)
    # above the corner (1 - delta)/(e + 1) the mirror inequality binds
    a = 0.6
    assert dp_max_tpr(a, eps, delta) == pytest.approx(1 - (1 - delta - a) / e)
    assert dp_max_tpr(0.995, eps, delta) == 1.0
    assert dp_max_tpr(0.3, 0.0, 0.0) == pytest.approx(0.3)  # eps = 0: no test beats chance


def test_dp_max_advantage_and_auc_closed_forms():
    for eps in (0.1, 1.0, 3.0):
        assert dp_max_advantage(eps) == pytest.approx(math.tanh(eps / 2))
        grid = np.linspace(0, 1, 200_001)
        curve = dp_max_tpr(grid, eps, 1e-3)
        assert dp_max_advantage(eps, 1e-3) == pytest.approx(float(np.max(curve - grid)), abs=1e-5)
        assert dp_max_auc(eps, 1e-3) == pytest.approx(float(np.trapezoid(curve, grid)), abs=1e-8)
    # delta = 0, eps = 1 by hand: corner a = 1/(e+1), TPR there e/(e+1); AUC = a*tpr/2 + (1-a)(tpr+1)/2
    a, t = 1 / (math.e + 1), math.e / (math.e + 1)
    assert dp_max_auc(1.0) == pytest.approx(a * t / 2 + (1 - a) * (t + 1) / 2)
    assert dp_max_auc(0.0) == pytest.approx(0.5)


def test_summary_sets_achieved_beside_allowed():
    rng = np.random.default_rng(0)
    row = attack_summary(rng.normal(1, 1, 500), rng.normal(0, 1, 500), epsilon=2.0, delta=1e-5)
    assert 0.6 < row["auc"] < row["auc_allowed"]
    assert row["advantage"] <= row["advantage_allowed"]


def test_bad_input_is_an_audit_error():
    with pytest.raises(AuditError, match="empty"):
        roc_auc([], [1.0])
    with pytest.raises(AuditError, match="NaN"):
        roc_auc([float("nan")], [1.0])
    with pytest.raises(AuditError, match="fpr"):
        tpr_at_fpr([1.0], [0.0], 1.5)
    with pytest.raises(AuditError, match="epsilon"):
        dp_max_tpr(0.1, -1.0)
