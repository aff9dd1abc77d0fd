"""Predictions page: a linear probe on an encoder's embedding (or on expression) scored on
held-out patients — probabilities, confusion matrix, accuracy — and the evaluation reports of
finished "evaluate" jobs (label-fraction curves against baselines), with a form to start one."""

from __future__ import annotations

import streamlit as st

from gexcore import viz
from gexcore.data.rules import label_columns
from gexcore.errors import GexError
from gexcore.explore.features import feature_sources, resolve_features
from gexcore.explore.holdout import ProbeResult, holdout_probe
from gexcore.explore.reports import REPORT_FILES, load_report, report_runs
from gexcore.workspace import RunInfo, Workspace
from ui.common import esc, load_cohort, open_cohort_page, source_name, source_note
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
        fig = viz.label_fraction_curves(report.curves(metric), metric=metric,
                                        title=f"{metric} on held-out samples (mean ± sd over "
                                              "seeds)")
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
        st.error(esc(err))
    else:
        show_probe(result)

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
