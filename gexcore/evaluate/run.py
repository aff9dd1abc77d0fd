"""`run_evaluation`: one task on one cohort, optionally written as a report folder."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from anndata import AnnData

from gexcore import keys
from gexcore.atomic import check_output_dir
from gexcore.evaluate.protocol import EvalConfig, EvalResult, evaluate_cohort
from gexcore.evaluate.report import REPORT_OUTPUT, write_report
from gexcore.evaluate.tasks import ClassificationTask, SurvivalTask
from gexcore.progress import ProgressCallback, StopCallback

__all__ = ["run_evaluation"]


def run_evaluation(adata: AnnData, task: Literal["classification", "survival", "imputation"],
                   config: EvalConfig | None = None, *, out: str | Path | None = None,
                   label: str | None = None, groups: str = "median",
                   missing: Literal["cells", "genes"] = "cells",
                   progress: ProgressCallback | None = None,
                   should_stop: StopCallback | None = None) -> Path | EvalResult:
    """Evaluate one task; with `out`, write the report folder and return its path.

    Survival reads the standard `obs['time']`/`obs['event']` the readers fill in; imputation
    hides random cells or, with `missing="genes"`, whole genes. An `out` that is a non-empty
    folder but not a report is refused (InputError) before any work starts.
    """
    if out is not None:
        check_output_dir(out, REPORT_OUTPUT)
    if task == "classification":
        result = evaluate_cohort(adata, ClassificationTask(label), config, progress=progress,
                                 should_stop=should_stop)
    elif task == "survival":
        unit = str(adata.uns.get(keys.UNS_SURVIVAL, {}).get("time_unit", ""))
        result = evaluate_cohort(adata, SurvivalTask(keys.OBS_TIME, keys.OBS_EVENT,
                                                     groups=groups, time_unit=unit),
                                 config, progress=progress, should_stop=should_stop)
    elif task == "imputation":
        from gexcore.evaluate.imputation import evaluate_imputation
        result = evaluate_imputation(adata, config, missing=missing, progress=progress,
                                     should_stop=should_stop)
    else:
        raise ValueError(f"task must be classification, survival or imputation, not {task!r}.")
    if out is None:
        return result
    return write_report(out, result.task, result.scores, info=result.info, config=result.config,
                        predictions=result.predictions, extras=result.extras)
