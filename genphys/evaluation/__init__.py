"""Evaluation of trained models on held-out solver data: metrics, the harness, plots."""

from genphys.evaluation.harness import Evaluation, evaluate, run_evaluation
from genphys.evaluation.metrics import (
    BANDS,
    conservation_drift,
    crps_ensemble,
    frmse,
    nrmse,
    nrmse_per_time,
    power_spectrum,
    rel_l2,
    rel_l2_per_time,
    shell_errors,
    spread_skill,
)

__all__ = [
    "Evaluation", "evaluate", "run_evaluation", "BANDS", "conservation_drift", "crps_ensemble",
    "frmse", "nrmse", "nrmse_per_time", "power_spectrum", "rel_l2", "rel_l2_per_time",
    "shell_errors", "spread_skill",
]
