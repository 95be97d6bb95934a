"""Joint model evaluation on the guest: AUC, KS, lift/gain, stability, plots and an HTML report.

The guest holds the labels and receives the joint model's scores from the federated
predict path; hosts take part in scoring only, so evaluation itself is local to the guest.
"""

from vfl.evaluation.binary import (
    RocCurve,
    binary_metrics,
    brier_score,
    fast_auc_ks,
    ks_binned,
    ks_exact,
    ks_fate,
    log_loss,
    roc_auc,
    roc_curve,
    threshold_metrics,
)
from vfl.evaluation.evaluate import evaluate_scores, main_evaluate
from vfl.evaluation.multiclass import multiclass_metrics
from vfl.evaluation.report import write_report
from vfl.evaluation.tables import calibration_table, lift_table, psi, psi_table

__all__ = [
    "RocCurve",
    "binary_metrics",
    "brier_score",
    "calibration_table",
    "evaluate_scores",
    "fast_auc_ks",
    "ks_binned",
    "ks_exact",
    "ks_fate",
    "lift_table",
    "log_loss",
    "main_evaluate",
    "multiclass_metrics",
    "psi",
    "psi_table",
    "roc_auc",
    "roc_curve",
    "threshold_metrics",
    "write_report",
]
