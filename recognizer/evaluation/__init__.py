"""Evaluation: the metrics, paired comparisons of arms, and reports of finished runs.

:mod:`.metrics` computes ACC, UF1 and UAR; :mod:`.compare` compares arms over seeds with paired
bootstrap intervals and chance levels; :mod:`.report` turns result folders into tables and
figures; :mod:`.grid` collects an experiment grid (model x remedy x protocol x seed) into one
report.
"""

from recognizer.evaluation.compare import (
    Arm,
    CompareError,
    Comparison,
    arms_from_mapping,
    arms_from_runs,
    chance_levels,
    compare_arms,
    write_comparison,
)
from recognizer.evaluation.grid import Collected, collect
from recognizer.evaluation.metrics import (
    METRICS,
    accuracy,
    confusion_matrix,
    per_class,
    scores,
    summarize,
    uar,
    uf1,
)
from recognizer.evaluation.report import markdown_table, results_table, write_report

__all__ = [
    "METRICS",
    "Arm",
    "Collected",
    "CompareError",
    "Comparison",
    "accuracy",
    "arms_from_mapping",
    "arms_from_runs",
    "chance_levels",
    "collect",
    "compare_arms",
    "confusion_matrix",
    "markdown_table",
    "per_class",
    "results_table",
    "scores",
    "summarize",
    "uar",
    "uf1",
    "write_comparison",
    "write_report",
]
