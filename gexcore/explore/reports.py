"""Finished evaluation reports of a cohort, read back from their run folders for the pages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from gexcore.errors import InputError

if TYPE_CHECKING:
    from gexcore.workspace import RunInfo, Workspace

__all__ = ["REPORT_FILES", "EvaluationReport", "load_report", "report_runs"]

REPORT_FILES = {"results.json": "application/json", "predictions.csv": "text/csv",
                "report.md": "text/markdown"}


@dataclass
class EvaluationReport:
    """One `gex evaluate` report: the task, mean +- sd curves per metric and per-model extras."""

    folder: Path
    task: str
    summary: dict[str, list[dict]]        # metric -> rows (model, regime, fraction, mean, sd)
    extras: dict                          # model -> confusion matrix, or KM / hazard ratios

    @property
    def metrics(self) -> list[str]:
        return list(self.summary)

    def curves(self, metric: str) -> pd.DataFrame:
        """The metric's table with a `method` column: 'model (regime)' where regimes exist."""
        curves = pd.DataFrame(self.summary[metric])
        curves["method"] = (curves["model"] + " (" + curves["regime"] + ")"
                            if "regime" in curves else curves["model"])
        return curves

    def headline(self, metric: str | None = None) -> pd.DataFrame:
        """At the fewest and at all labels: the best encoder (any method and regime) beside
        the strongest baseline, mean and sd over seeds. Baselines are the rows the evaluation
        marks `baseline` (PCA + linear, raw-feature linear, MLP from scratch, random-init)."""
        metric = metric or self.metrics[0]
        table = pd.DataFrame(self.summary[metric])
        regime = table["regime"] if "regime" in table else pd.Series("", index=table.index)
        table["method"] = table["model"] + (" (" + regime + ")").where(regime != "baseline", "")
        is_baseline = regime.eq("baseline")
        rows = []
        for fraction in sorted({table["fraction"].min(), table["fraction"].max()}):
            here = table["fraction"] == fraction
            best = table[here & ~is_baseline].nlargest(1, "mean")
            base = table[here & is_baseline].nlargest(1, "mean")
            if best.empty or base.empty:
                continue
            rows.append({"labels": fraction, "metric": metric,
                         "best encoder": best["method"].iat[0], "mean": best["mean"].iat[0],
                         "sd": best["sd"].iat[0], "strongest baseline": base["method"].iat[0],
                         "baseline mean": base["mean"].iat[0], "baseline sd": base["sd"].iat[0]})
        return pd.DataFrame(rows)

    def survival_table(self) -> pd.DataFrame:
        """Per model: log-rank p and the hazard ratio of the highest vs lowest risk group."""
        return pd.DataFrame([{"model": name, "log-rank p": e.get("logrank_p"),
                              "HR high vs low": (e.get("hazard_ratios") or [{}])[-1].get("hr")}
                             for name, e in self.extras.items()])

    def markdown(self) -> str:
        path = self.folder / "report.md"
        return path.read_text() if path.exists() else ""

    def files(self) -> dict[str, Path]:
        """The report's downloadable files that exist, by name."""
        return {name: self.folder / name for name in REPORT_FILES
                if (self.folder / name).exists()}


def report_runs(ws: Workspace, cohort_id: str) -> list[RunInfo]:
    """Finished evaluation runs of `cohort_id`, newest first."""
    return [r for r in ws.runs(kind="evaluate", status="done")
            if r.params.get("cohort") == cohort_id]


def load_report(ws: Workspace, run: RunInfo) -> EvaluationReport:
    """The report of a finished evaluation run; `InputError` when its folder is gone or broken."""
    from gexcore.workspace.evaluate_job import REPORT_DIR

    folder = ws.run_dir(run.id) / REPORT_DIR
    try:
        results = json.loads((folder / "results.json").read_text())
        return EvaluationReport(folder, str(results["task"]), results.get("summary", {}),
                                results.get("extras", {}))
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"{run.name} has no readable report ({type(err).__name__}); run the "
                         "evaluation again.") from err
