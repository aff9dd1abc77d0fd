"""The "evaluate" job kind: train heads and baselines on a stored cohort, write the report.

The run folder holds `report/` (results.json, report.md, curves.html, predictions.csv), which
the Predictions and Survival pages read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gexcore import keys
from gexcore.errors import InputError
from gexcore.evaluate.config import EvalConfig
from gexcore.workspace.jobs import JobCancelled, JobContext, register_job_kind
from gexcore.workspace.store import Workspace

__all__ = ["REPORT_DIR", "EvaluateJob", "run_evaluate"]

REPORT_DIR = "report"


@dataclass(frozen=True)
class EvaluateJob:
    """Evaluate SSL encoders against baselines on one task of a stored cohort, as `config` says
    (methods, label fractions, seeds, epochs)."""

    cohort: str
    task: Literal["classification", "survival", "imputation"] = "classification"
    label: str | None = None                 # obs column, for classification
    groups: str = "median"
    missing: Literal["cells", "genes"] = "cells"     # imputation: random cells or whole genes
    config: EvalConfig = field(default_factory=EvalConfig)
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.config, dict):             # as stored in the run's params
            object.__setattr__(self, "config", EvalConfig.from_dict(self.config))

    def check(self, ws: Workspace) -> None:
        """Refuse a bad task or column before queueing (reads the cohort's obs only)."""
        import anndata

        ws.cohort(self.cohort)
        if self.task not in ("classification", "survival", "imputation"):
            raise InputError(f"task must be classification, survival or imputation, "
                             f"not {self.task!r}.")
        if self.missing not in ("cells", "genes"):
            raise InputError(f"missing must be 'cells' or 'genes', not {self.missing!r}.")
        obs = anndata.read_h5ad(ws.cohort_path(self.cohort), backed="r").obs
        needed = {"classification": [self.label], "survival": [keys.OBS_TIME, keys.OBS_EVENT],
                  "imputation": []}[self.task]
        for column in needed:
            if column is None or column not in obs:
                raise InputError(f"the cohort has no column {column!r} for {self.task}; columns "
                                 f"are: {', '.join(map(str, obs.columns))}.")

    def describe(self, ws: Workspace) -> str:
        what = (f"{self.task} of {self.label}" if self.label else
                "imputation of whole genes" if self.task == "imputation" and
                self.missing == "genes" else self.task)
        return f"evaluate {what} on {ws.cohort(self.cohort).name}"


def run_evaluate(job: EvaluateJob, ctx: JobContext) -> dict[str, Any]:
    """Run the protocol and write the report folder; metrics = primary metric at 100% labels."""
    from gexcore.evaluate import run_evaluation
    from gexcore.evaluate.report import PRIMARY_METRIC, summarize, write_report

    adata = ctx.workspace.load_cohort(job.cohort)
    result = run_evaluation(adata, job.task, job.config, label=job.label, groups=job.groups,
                            missing=job.missing, progress=ctx.progress,
                            should_stop=ctx.should_stop)
    if ctx.should_stop():
        raise JobCancelled("cancelled")
    write_report(ctx.out_dir / REPORT_DIR, result.task, result.scores, info=result.info,
                 config=result.config, predictions=result.predictions, extras=result.extras)
    metric = PRIMARY_METRIC[result.task]
    table = summarize(result.scores, metric)
    top = table[table["fraction"] == table["fraction"].max()]
    return {"task": result.task, "metric": metric, "seconds": result.info.get("seconds"),
            **{f"{r.model} ({r.regime})" if "regime" in top else r.model: round(r.mean, 4)
               for r in top.itertuples()}}


register_job_kind("evaluate", EvaluateJob, run_evaluate)
