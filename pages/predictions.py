"""Predictions page: a linear probe on an encoder's embedding (or on expression) scored on
held-out patients — probabilities, confusion matrix, accuracy — and the evaluation reports of
finished "evaluate" jobs (label-fraction curves against baselines), with a form to start one."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from gexcore import viz
from gexcore.errors import GexError
from gexcore.evaluate.holdout import EXPRESSION, ProbeResult, holdout_probe, label_columns
from gexcore.workspace import RunInfo, Workspace
from gexcore.workspace.evaluate_job import REPORT_DIR
from ui.evaluate_form import evaluate_form
from ui.common import (
    feature_sources,
    load_cohort,
    open_cohort_page,
    source_name,
    source_note,
)


@st.cache_data(show_spinner="Fitting a linear probe on the training samples...", max_entries=32)
def probe(root: str, cohort_id: str, source: str, label: str, seed: int) -> ProbeResult:
    """Cached per (workspace, cohort, features, label, seed): a rerun never refits."""
    ws = Workspace(root)
    features = EXPRESSION if source == EXPRESSION else ws.embedding(cohort_id, source)
    return holdout_probe(load_cohort(ws, cohort_id), features, label, seed=seed)


def show_probe(result: ProbeResult) -> None:
    m = result.metrics
    cells = st.columns(4)
    cells[0].metric("Accuracy", f"{m['accuracy']:.1%}")
    cells[1].metric("Macro-F1", f"{m['macro_f1']:.3f}")
    cells[2].metric("Balanced accuracy", f"{m['balanced_accuracy']:.1%}")
    cells[3].metric("Chance (majority class)", f"{result.chance:.1%}")
    st.caption(f"Linear probe (standardise + logistic regression) fitted on "
               f"{result.n_train:,} training samples, scored on {len(result.true):,} held-out "
               f"samples; split by {result.grouped_by}, stratified by `{result.label}`.")
    table = result.table()
    left, right = st.columns([3, 2])
    with left:
        fig = viz.confusion_heatmap(m["confusion"], m["classes"],
                                    title="Confusion matrix (held-out samples)")
        fig.update_layout(height=max(420, 34 * len(m["classes"]) + 160))
        st.plotly_chart(fig, key="pred_confusion", theme=None)
    with right:
        sample = st.selectbox("Sample", list(table.index), key="pred_sample",
                              format_func=lambda s: f"{s} · true {table.at[s, 'true']}")
        row = table.loc[sample]
        verdict = "correct" if row["true"] == row["predicted"] else f"true: {row['true']}"
        st.plotly_chart(viz.probability_bars(result.probabilities.loc[sample], result.classes,
                                             title=f"{sample} ({verdict})"),
                        key="pred_bars", theme=None)
    st.subheader("Held-out class probabilities")
    st.dataframe(table, height=320, key="pred_table",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3f")
                                for c in ["confidence", *result.classes]})
    st.download_button("Probabilities (CSV)", table.to_csv().encode(), on_click="ignore",
                       file_name=f"predictions_{result.label}.csv", mime="text/csv",
                       icon=":material/download:")


def report_runs(ws: Workspace, cohort_id: str) -> list[RunInfo]:
    return [r for r in ws.runs(kind="evaluate", status="done")
            if r.params.get("cohort") == cohort_id]


def evaluation_report(ws: Workspace, run: RunInfo) -> None:
    """Curves against baselines, report tables, stored confusion matrices, downloads."""
    folder = ws.run_dir(run.id) / REPORT_DIR
    if not (folder / "results.json").exists():
        st.warning(f"{run.name} has no report folder; run the evaluation again.")
        return
    results = json.loads((folder / "results.json").read_text())
    task, summary = results["task"], results.get("summary", {})
    if summary:
        metric = st.radio("Metric", list(summary), horizontal=True, key=f"report_metric_{run.id}")
        curves = pd.DataFrame(summary[metric])
        curves["method"] = (curves["model"] + " (" + curves["regime"] + ")"
                            if "regime" in curves else curves["model"])
        fig = viz.label_fraction_curves(curves, metric=metric, title=f"{metric} on held-out "
                                        "samples (mean ± sd over seeds)")
        if task == "imputation":
            fig.update_xaxes(title="missing rate")
        st.plotly_chart(fig, key=f"report_curves_{run.id}", theme=None)
    with st.expander("Report tables", expanded=False):
        st.markdown((folder / "report.md").read_text())
    extras = results.get("extras", {})
    if task == "classification" and extras:
        model = st.selectbox("Confusion matrix of", list(extras), key=f"report_cm_{run.id}")
        st.plotly_chart(viz.confusion_heatmap(extras[model]["confusion"],
                                              extras[model]["classes"],
                                              title=f"{model} (seed 0, all labels)"),
                        key=f"report_confusion_{run.id}", theme=None)
    elif task == "survival" and extras:
        st.dataframe(pd.DataFrame([{"model": name, "log-rank p": e.get("logrank_p"),
                                    "HR high vs low": (e.get("hazard_ratios") or [{}])[-1]
                                    .get("hr")} for name, e in extras.items()]),
                     hide_index=True, key=f"report_km_{run.id}")
    cells = st.columns(3)
    for cell, name, mime in ((cells[0], "results.json", "application/json"),
                             (cells[1], "predictions.csv", "text/csv"),
                             (cells[2], "report.md", "text/markdown")):
        if (folder / name).exists():
            cell.download_button(name, (folder / name).read_bytes(), file_name=name, mime=mime,
                                 on_click="ignore", key=f"dl_{name}_{run.id}",
                                 icon=":material/download:")


ws, cohort_id, adata = open_cohort_page("Predictions")
runs = feature_sources(ws, cohort_id)
labels = label_columns(adata.obs)
if not labels:
    st.info("This cohort has no column with 2-50 classes to predict; choose a label column on "
            "the Data page.")
else:
    cells = st.columns([3, 2, 1])
    source = cells[0].selectbox("Features", list(runs), key=f"pred_source_{cohort_id}",
                                format_func=lambda s: source_name(runs, s),
                                help="An encoder's embedding of this cohort, or the "
                                     "normalised expression itself (the raw-feature baseline).")
    label = cells[1].selectbox("Label column", labels, key=f"pred_label_{cohort_id}")
    seed = cells[2].number_input("Split seed", 0, 10_000, 0, key="pred_seed")
    st.caption(source_note(runs[source], cohort_id))
    try:
        result = probe(str(ws.root), cohort_id, source, label, int(seed))
    except GexError as err:
        st.error(str(err))
    else:
        show_probe(result)

st.header("Evaluation reports")
finished = report_runs(ws, cohort_id)
if finished:
    by_id = {r.id: r for r in finished}
    picked = st.selectbox("Report", list(by_id), key=f"report_{finished[0].id}",
                          format_func=lambda i: f"{by_id[i].name} ({i})")
    evaluation_report(ws, by_id[picked])
else:
    st.info("No finished evaluation of this cohort yet. An evaluation repeats patient-disjoint "
            "splits over seeds and compares SSL encoders with baselines at each labelled "
            "fraction; start one below.")
with st.expander("Start an evaluation", expanded=not finished, icon=":material/science:"):
    evaluate_form(ws, cohort_id)
