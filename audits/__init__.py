"""privagg.audits: attack a run and set the empirical leakage beside the proven epsilon.

    from audits import audit_run
    report = audit_run("runs/default-...", shadows=8)   # writes audit.json, audit.md, PNGs

Building blocks: `audits.metrics` (ROC, AUC, TPR at low FPR, DP limits), `audits.bounds` (epsilon lower
bounds), `audits.membership` (loss, LiRA, RMIA), `audits.canaries`, `audits.inversion`,
`audits.secagg_view`, `audits.budget`. Bad input raises `AuditError` with a one-line message.
Sweeps and the privacy-utility report: `run_sweep(SPEC, out)`, `build_report(paths)` (docs/reports.md).
"""

from audits.bounds import clopper_pearson_epsilon, gdp_epsilon, one_run_epsilon, threshold_search_epsilon
from audits.errors import AuditError
from audits.metrics import roc_auc, roc_curve, tpr_at_fpr
from audits.report import build_report
from audits.run_audit import AUDITS, audit_run
from audits.sweep import SweepFolderError, SweepSpecError, load_spec, run_sweep
from audits.tradeoff import TradeoffError

__all__ = [
    "AUDITS",
    "AuditError",
    "SweepFolderError",
    "SweepSpecError",
    "TradeoffError",
    "audit_run",
    "build_report",
    "load_spec",
    "run_sweep",
    "clopper_pearson_epsilon",
    "gdp_epsilon",
    "one_run_epsilon",
    "roc_auc",
    "roc_curve",
    "threshold_search_epsilon",
    "tpr_at_fpr",
]
