"""Predictions page: a linear probe on an encoder's embedding (or on expression) scored on
held-out patients — probabilities, confusion matrix, accuracy —; saved models that score new
patients (a stored or newly uploaded cohort) with out-of-distribution flags; and the
evaluation reports of finished "evaluate" jobs (label-fraction curves against baselines), with
a form to start one."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st
from anndata import AnnData

from gexcore import viz
from gexcore.data.rules import has_survival, label_columns
from gexcore.errors import GexError
from gexcore.explore.features import feature_sources, resolve_features
from gexcore.explore.holdout import ProbeResult, holdout_probe
from gexcore.explore.reports import REPORT_FILES, load_report, report_runs
from gexcore.explore.scoring import ScoreResult, left_out_note, save_from_source, score
from gexcore.tasks.predictor import MAX_OUT_OF_RANGE, left_out_classes
from gexcore.workspace import RunInfo, Workspace
from gexcore.workspace.predictors import predictor_runs
from ui.common import (
    current_workspace,
    esc,
    load_cohort,
    open_cohort_page,
    scoped,
    source_name,
    source_note,
)
from ui.evaluate_form import evaluate_form
from ui.sharing import share_panel


@st.cache_data(show_spinner="Fitting a linear probe on the training samples...", max_entries=32)
def probe(root: str, cohort_id: str, source: str, label: str, seed: int) -> ProbeResult:
    """Cached per (workspace, cohort, features, label, seed): a rerun never refits."""
    ws = Workspace(root)
    return holdout_probe(load_cohort(ws, cohort_id), resolve_features(ws, cohort_id, source),
                         label, seed=seed)


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


def evaluation_report(ws: Workspace, run: RunInfo) -> None:
    """Curves against baselines, report tables, stored confusion matrices, downloads."""
    try:
        report = load_report(ws, run)
    except GexError as err:
        st.warning(esc(err))
        return
    if report.metrics:
        metric = st.radio("Metric", report.metrics, horizontal=True,
                          key=f"report_metric_{run.id}")
        fig = distinct_curves(viz.label_fraction_curves(
            report.curves(metric), metric=metric,
            title=f"{metric} on held-out samples (mean ± sd over seeds)"))
        if report.task == "imputation":
            fig.update_xaxes(title="missing rate")
        st.plotly_chart(fig, key=f"report_curves_{run.id}", theme=None)
    with st.expander("Report tables", expanded=False):
        st.markdown(report.markdown())
    if report.task == "classification" and report.extras:
        model = st.selectbox("Confusion matrix of", list(report.extras),
                             key=f"report_cm_{run.id}")
        st.plotly_chart(viz.confusion_heatmap(report.extras[model]["confusion"],
                                              report.extras[model]["classes"],
                                              title=f"{model} (seed 0, all labels)"),
                        key=f"report_confusion_{run.id}", theme=None)
    elif report.task == "survival" and report.extras:
        st.dataframe(report.survival_table(), hide_index=True, key=f"report_km_{run.id}")
    files = report.files()
    for cell, name in zip(st.columns(len(REPORT_FILES)), REPORT_FILES):
        if name in files:
            cell.download_button(name, files[name].read_bytes(), file_name=name,
                                 mime=REPORT_FILES[name], on_click="ignore",
                                 key=f"dl_{name}_{run.id}", icon=":material/download:")


# Curves: one hue per SSL method (fine-tuned solid, frozen dotted), baselines dashed in hues of
# their own: the eight Okabe-Ito colours plus grey and brown, no two alike.
_METHOD_HUES = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#332288", "#882255")
_BASELINE_HUES = ("#000000", "#E69F00", "#999999", "#56B4E9", "#8C510A", "#F0E442")


def distinct_curves(fig: go.Figure) -> go.Figure:
    """Distinct colours and dashes per curve, the legend below the plot with every entry."""
    names = list(dict.fromkeys(t.legendgroup for t in fig.data if t.legendgroup))
    baselines = [n for n in names if n.endswith("(baseline)")]
    families = list(dict.fromkeys(n.split(" (")[0] for n in names if n not in baselines))
    for trace in fig.data:
        name = trace.legendgroup
        if not name:
            continue
        if name in baselines:
            color, dash = _BASELINE_HUES[baselines.index(name) % len(_BASELINE_HUES)], "dash"
        else:
            family = families.index(name.split(" (")[0])
            color = _METHOD_HUES[family % len(_METHOD_HUES)]
            dash = "dot" if name.endswith("(frozen)") else "solid"
        if trace.fill == "toself":                                  # the ± sd band
            trace.fillcolor = _rgba(color, 0.10)
        else:
            trace.line.color, trace.line.dash = color, dash
            trace.marker.color = color
    rows = -(-len(names) // 2)                                      # two entries a row
    fig.update_layout(height=460 + 24 * rows, margin={"b": 80 + 24 * rows},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.2,
                              "xanchor": "left", "x": 0, "entrywidth": 0.5,
                              "entrywidthmode": "fraction", "title": None})
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# -- score new patients ----------------------------------------------------------------------
SURVIVAL = "__survival__"             # the save form's target for a Cox risk model


@st.cache_data(show_spinner="Scoring the cohort with the saved model...", max_entries=16)
def scored(root: str, model_id: str, cohort_id: str) -> ScoreResult:
    """Cached per (workspace, model, cohort): a model and a cohort never change once saved."""
    ws = Workspace(root)
    return score(ws, model_id, load_cohort(ws, cohort_id))


def save_model_form(ws: Workspace, cohort_id: str, adata: AnnData,
                    runs: dict[str, RunInfo | None], labels: list[str]) -> None:
    """Fit a model on every usable sample of this cohort and store it in the workspace."""
    targets = labels + ([SURVIVAL] if has_survival(adata.obs) else [])
    if not targets:
        st.info("This cohort has neither a label column nor survival columns to fit a model on.")
        return
    with st.form(f"save_model_{cohort_id}", border=False):
        cells = st.columns([2, 3, 3])
        target = cells[0].selectbox("Predicts", targets, key="save_target",
                                    format_func=lambda t: "survival risk (Cox)"
                                    if t == SURVIVAL else t)
        source = cells[1].selectbox("Features", list(runs), key="save_source",
                                    format_func=lambda s: source_name(runs, s))
        name = cells[2].text_input("Model name", key="save_name", max_chars=80,
                                   placeholder="blank: target and features")
        st.caption("Fitted on every labelled sample of this cohort (or every sample with "
                   "survival); risk groups are cut at the median of the training risks.")
        submitted = st.form_submit_button("Save model", type="primary", icon=":material/save:")
    if not submitted:
        return
    what = "survival risk" if target == SURVIVAL else target
    name = name.strip() or f"{what} · {source_name(runs, source)}"
    try:
        with st.spinner("Fitting the model on this cohort..."):
            run_id = save_from_source(ws, cohort_id, adata, source,
                                      "survival" if target == SURVIVAL else "classification",
                                      name, label=None if target == SURVIVAL else target)
    except GexError as err:
        st.error(esc(err))
        return
    st.session_state["score_model"] = run_id
    st.success(f"Saved model **{esc(name)}**; it scores cohorts below.")


def _add_upload() -> None:
    """Button callback: read the uploaded files, store them as a cohort, score that one."""
    from gexcore.data.upload import read_uploaded

    state = st.session_state
    expression, clinical = state.get("score_upload_expression"), state.get("score_upload_clinical")
    if expression is None:
        return
    name = state.get("score_upload_name", "").strip() or Path(expression.name).name.split(".")[0]
    try:
        adata = read_uploaded((expression.name, expression.getvalue()),
                              (clinical.name, clinical.getvalue()) if clinical else None)
        state["score_cohort"] = current_workspace().add_cohort(adata, name)
    except GexError as err:
        state["score_upload_error"] = str(err)


def upload_panel() -> None:
    with st.expander("Upload a new cohort to score", icon=":material/upload_file:"):
        expression = st.file_uploader("Expression matrix (CSV/TSV/TXT, gzip, Parquet, h5ad, GCT, "
                                      "GDC STAR counts, GEO series matrix)",
                                      key="score_upload_expression")
        st.file_uploader("Clinical table (optional)", key="score_upload_clinical")
        st.text_input("Cohort name", key="score_upload_name", max_chars=80,
                      placeholder="blank: the file name")
        st.caption("The files are stored as a cohort of this workspace and scored at once.")
        st.button("Add and score", on_click=_add_upload, disabled=expression is None,
                  icon=":material/upload:", key="score_upload_add")
    if error := st.session_state.pop("score_upload_error", None):
        st.error(esc(error))


def show_scores(result: ScoreResult, model_name: str, cohort_name: str) -> None:
    table, n = result.table, len(result.table)
    cells = st.columns(4)
    cells[0].metric("Samples scored", f"{n:,}")
    cells[1].metric("Flagged", f"{result.n_flagged:,}")
    cells[2].metric("Model genes in the cohort", f"{result.shared_genes:.0%}")
    if result.task == "classification":
        top = table["predicted"].value_counts()
        cells[3].metric("Most predicted",
                        f"{top.index[0]} ({top.iloc[0]:,})" if len(top) else "—")
    else:
        high = result.groups[-1]
        cells[3].metric(f"In the {high} group", f"{(table['risk_group'] == high).sum():,}")
    st.caption(f"The model {esc(result.description)}. Missing genes: {esc(result.missing_genes)}. "
               f"A sample is flagged when under half of the model's genes are measured, or when "
               f"over {MAX_OUT_OF_RANGE:.0%} of its values lie outside the 1st-99th percentile "
               "of the training values of their gene.")
    if result.n_flagged:
        st.warning(f"{result.n_flagged:,} of {n:,} samples lie outside what the model saw (the "
                   "`flag` column says why); read their predictions with care.",
                   icon=":material/warning:")
    percent = {c: st.column_config.NumberColumn(c, format="percent")
               for c in ("genes_measured", "out_of_range", "confidence")}
    probs = {c: st.column_config.NumberColumn(c, format="%.3f")
             for c in table.columns if c.startswith("p_") or c == "risk"}
    st.dataframe(table, height=360, key="score_table", column_config=percent | probs)
    st.download_button("Predictions (CSV)", table.to_csv(index_label="sample").encode(),
                       file_name=f"predictions_{model_name}_{cohort_name}.csv".replace(" ", "_"),
                       mime="text/csv", on_click="ignore", icon=":material/download:",
                       key="score_download")


def score_patients(ws: Workspace, cohort_id: str, adata: AnnData,
                   runs: dict[str, RunInfo | None], labels: list[str]) -> None:
    st.header("Score new patients")
    models = {r.id: r for r in predictor_runs(ws)}
    with st.expander("Save a model fitted on this cohort", expanded=not models,
                     icon=":material/save:"):
        save_model_form(ws, cohort_id, adata, runs, labels)
    models = {r.id: r for r in predictor_runs(ws)}
    if not models:
        st.info("No saved model yet: save one above, then score a stored or uploaded cohort "
                "with it (class probabilities, or risk and risk group cut at the training "
                "risks), with flags for samples outside what the model saw.")
        return
    upload_panel()
    cohorts = {c.id: c for c in ws.cohorts()}
    if st.session_state.get("score_cohort") not in cohorts:
        st.session_state.pop("score_cohort", None)
    if st.session_state.get("score_model") not in models:
        st.session_state.pop("score_model", None)
    cells = st.columns(2)
    model_id = cells[0].selectbox("Saved model", list(models), key="score_model",
                                  format_func=lambda i: f"{models[i].name} ({i})")
    target = cells[1].selectbox("Cohort to score", list(cohorts), key="score_cohort",
                                format_func=lambda i: cohorts[i].label)
    try:
        result = scored(str(ws.root), model_id, target)
    except GexError as err:
        st.error(esc(err))
        return
    show_scores(result, models[model_id].name, cohorts[target].name)
    share_panel(ws, "run", model_id, models[model_id].name)


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
    if note := left_out_note(left_out_classes(adata.obs, label)):
        st.info(esc(note), icon=":material/info:")
    try:
        result = probe(*scoped(ws, cohort_id, source), label, int(seed))
    except GexError as err:
        st.error(esc(err))
    else:
        show_probe(result)

score_patients(ws, cohort_id, adata, runs, labels)

st.header("Evaluation reports")
finished = report_runs(ws, cohort_id)
if finished:
    by_id = {r.id: r for r in finished}
    picked = st.selectbox("Report", list(by_id), key=f"report_{finished[0].id}",
                          format_func=lambda i: f"{by_id[i].name} ({i})")
    evaluation_report(ws, by_id[picked])
    share_panel(ws, "run", picked, by_id[picked].name)
else:
    st.info("No finished evaluation of this cohort yet. An evaluation repeats patient-disjoint "
            "splits over seeds and compares SSL encoders with baselines at each labelled "
            "fraction; start one below.")
with st.expander("Start an evaluation", expanded=not finished, icon=":material/science:"):
    evaluate_form(ws, cohort_id)
