"""Leakage-safe evaluation: splits, label-fraction protocol, baselines and reports.

The names below load their submodule on first use, so light helpers (`gexcore.evaluate.splits`)
import without torch.
"""

from __future__ import annotations

import importlib

__all__ = [
    "ClassificationTask",
    "EvalConfig",
    "EvalResult",
    "SurvivalTask",
    "evaluate_cohort",
    "run_evaluation",
    "write_report",
]

_HOMES = {"ClassificationTask": "tasks", "EvalConfig": "config", "EvalResult": "protocol",
          "SurvivalTask": "tasks", "evaluate_cohort": "protocol", "run_evaluation": "run",
          "write_report": "report"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
