"""Evaluation reports: `results.json`, `report.md` (tables) and `curves.html` (plotly).

The folder is a `REPORT_OUTPUT`: writing over a folder that is not a report is refused, and
the user's own files in an old report folder move into the new one.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from gexcore.atomic import OutputKind, atomic_write_dir

__all__ = ["METRICS", "PRIMARY_METRIC", "REPORT_OUTPUT", "markdown_report", "summarize",
           "write_report"]

METRICS = {"classification": ("macro_f1", "accuracy", "balanced_accuracy"),
           "survival": ("c_harrell", "c_uno"),
           "imputation": ("rmse", "pearson_r")}
PRIMARY_METRIC = {task: metrics[0] for task, metrics in METRICS.items()}
_FILES = ("results.json", "report.md", "curves.html", "predictions.csv")


def _is_report_folder(folder: Path) -> bool:
    """An unmarked report folder an older GexScope wrote."""
    try:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(results, dict) and results.get("task") in METRICS and
            (folder / "report.md").is_file())


REPORT_OUTPUT = OutputKind("report", "an evaluation report", files=_FILES,
                           recognise=_is_report_folder)


def summarize(scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, sd and count of `metric` per model, regime and fraction (over seeds)."""
    keys = [k for k in ("model", "regime", "fraction", "missing_rate") if k in scores]
    out = (scores.groupby(keys, sort=False)[metric]
           .agg(mean="mean", sd=lambda v: v.std(ddof=1) if len(v) > 1 else 0.0, n="count")
           .reset_index())
    return out.rename(columns={"missing_rate": "fraction"}) if "missing_rate" in keys else out


def markdown_report(task: str, scores: pd.DataFrame, info: dict, config: dict) -> str:
    """One table per metric: rows = model (regime), columns = label fraction, mean ± sd."""
    axis = ("labelled fraction of training samples" if task != "imputation" else
            "share of whole genes hidden in every test sample" if info.get("missing") == "genes"
            else "share of observed test cells hidden at random (MCAR)")
    lines = [f"# {task.capitalize()} evaluation", "",
             _describe(task, info, config), "",
             (f"Columns: {axis}. Cells: mean ± sd over {config.get('seeds', '?')} seed(s), "
              "scored on held-out test samples.")]
    for metric in METRICS[task]:
        if metric not in scores:
            continue
        table = summarize(scores, metric)
        table["cell"] = [_cell(m, s) for m, s in zip(table["mean"], table["sd"])]
        if "regime" in table:
            table["row"] = table["model"] + " (" + table["regime"] + ")"
        else:
            table["row"] = table["model"]
        wide = table.pivot(index="row", columns="fraction", values="cell")
        wide = wide.reindex(table["row"].drop_duplicates())
        wide.columns = [f"{f:.0%}" for f in wide.columns]
        lines += ["", f"## {metric}", "", _to_markdown(wide)]
    return "\n".join(lines) + "\n"


def write_report(out: str | Path, task: str, scores: pd.DataFrame, *, info: dict,
                 config: object, predictions: pd.DataFrame | None = None,
                 extras: dict | None = None) -> Path:
    """Write the report folder atomically: JSON, markdown, HTML curves, predictions CSV.

    InputError if `out` is a non-empty folder that is not a report; nothing is changed.
    """
    from gexcore import viz

    config_dict = asdict(config) if hasattr(config, "__dataclass_fields__") else dict(config)
    metric = PRIMARY_METRIC[task]
    payload = {"task": task, "info": info, "config": config_dict,
               "summary": {m: summarize(scores, m).to_dict("records")
                           for m in METRICS[task] if m in scores},
               "scores": scores.to_dict("records"), "extras": extras or {}}
    if task == "imputation":
        fig = viz.imputation_curves(_imputation_summary(scores))
    else:
        curves = summarize(scores, metric)
        curves["method"] = curves["model"] + " (" + curves["regime"] + ")"
        fig = viz.label_fraction_curves(curves, metric=metric)

    def write(tmp: Path) -> None:
        (tmp / "results.json").write_text(json.dumps(_json_safe(payload), indent=1))
        (tmp / "report.md").write_text(markdown_report(task, scores, info, config_dict))
        fig.write_html(tmp / "curves.html", include_plotlyjs="cdn")
        if predictions is not None and len(predictions):
            predictions.to_csv(tmp / "predictions.csv", index=False)

    atomic_write_dir(out, write, kind=REPORT_OUTPUT)
    return Path(out)


def _imputation_summary(scores: pd.DataFrame) -> pd.DataFrame:
    rmse, r = summarize(scores, "rmse"), summarize(scores, "pearson_r")
    return pd.DataFrame({"method": rmse["model"], "missing_rate": rmse["fraction"],
                         "rmse_mean": rmse["mean"], "rmse_sd": rmse["sd"],
                         "r_mean": r["mean"], "r_sd": r["sd"]})


def _describe(task: str, info: dict, config: dict) -> str:
    parts = [f"{info.get('n_samples', '?')} samples x {info.get('n_genes', '?')} genes"]
    if task == "classification":
        parts.append(f"label {_code(info.get('label'))} ({len(info.get('classes', {}))} "
                     "classes)")
    elif task == "survival":
        parts.append(f"time {_code(info.get('time'))}, event {_code(info.get('event'))} "
                     f"({info.get('events')} events)")
    parts.append(f"split by {info.get('grouped_by', 'sample')}, test size "
                 f"{config.get('test_size', '?')}")
    parts.append("pretraining saw the test samples (transductive)" if info.get(
        "pretraining_saw_test") else "pretraining saw training samples only")
    if "seconds" in info:
        parts.append(f"{info['seconds']:.0f} s")
    return "; ".join(parts) + "."


def _code(name: object) -> str:
    """A column name from the data as a markdown code span it cannot break out of."""
    return "`" + " ".join(str(name).replace("`", "'").splitlines()) + "`"


def _cell(mean: float, sd: float) -> str:
    return "n/a" if not np.isfinite(mean) else f"{mean:.3f} ± {sd:.3f}"


def _to_markdown(wide: pd.DataFrame) -> str:
    head = "| model | " + " | ".join(map(str, wide.columns)) + " |"
    rule = "|---|" + "---|" * len(wide.columns)
    body = ["| " + str(i) + " | " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |"
            for i, row in zip(wide.index, wide.to_numpy())]
    return "\n".join([head, rule, *body])


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return value
