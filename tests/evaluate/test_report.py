"""Reports: JSON, markdown tables and HTML curves from the long score table."""

from __future__ import annotations

import json

import pandas as pd

from gexcore.evaluate.report import markdown_report, summarize, write_report


def _scores():
    rows = []
    for seed, bump in ((0, 0.0), (1, 0.1)):
        for frac in (0.1, 1.0):
            rows.append({"seed": seed, "fraction": frac, "model": "scarf", "regime": "frozen",
                         "macro_f1": 0.5 + bump + frac / 10, "accuracy": 0.6})
            rows.append({"seed": seed, "fraction": frac, "model": "PCA + linear",
                         "regime": "baseline", "macro_f1": 0.4, "accuracy": 0.5})
    return pd.DataFrame(rows)


def test_summarize_mean_and_sd_over_seeds():
    s = summarize(_scores(), "macro_f1")
    row = s[(s["model"] == "scarf") & (s["fraction"] == 1.0)].iloc[0]
    assert abs(row["mean"] - 0.65) < 1e-9 and abs(row["sd"] - 0.0707107) < 1e-6 and row["n"] == 2


def test_markdown_has_one_row_per_model_and_fraction_columns():
    md = markdown_report("classification", _scores(), {"n_samples": 10, "n_genes": 5,
                                                       "label": "y", "classes": {"a": 5}},
                         {"seeds": 2, "test_size": 0.2})
    assert "| model | 10% | 100% |" in md
    assert "| scarf (frozen) | 0.560 ± 0.071 | 0.650 ± 0.071 |" in md
    assert "pretraining saw training samples only" in md


def test_write_report_files(tmp_path):
    out = write_report(tmp_path / "rep", "classification", _scores(), info={"n_samples": 10},
                       config={"seeds": 2})
    data = json.loads((out / "results.json").read_text())
    assert data["task"] == "classification" and len(data["scores"]) == 8
    assert "plotly" in (out / "curves.html").read_text()
    assert not list(tmp_path.glob(".*tmp")), "temp folder left behind"
