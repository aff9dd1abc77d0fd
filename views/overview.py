"""Overview, the landing page for a demo: the current cohort at a glance without a click (a
map coloured by type, Kaplan-Meier curves of predicted risk groups, the marker genes of each
type, the evaluation headline beside its strongest baseline), each panel a link to the page
that explores it. Everything here is cheap or stored: no encoder forward pass on first view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from gexcore import viz
from gexcore.data.rules import label_columns, survival_columns, time_unit
from gexcore.errors import GexError
from gexcore.explore.de import MIN_GROUP_SIZE, differential_expression, log2_expression
from gexcore.explore.features import EXPRESSION, encoder_runs, resolve_features
from gexcore.explore.holdout import RiskResult, holdout_risk
from gexcore.explore.maps import cohort_map
from gexcore.explore.reports import load_report, report_runs
from gexcore.explore.survival import compare_groups, risk_groups
from gexcore.workspace import RunInfo, Workspace
from ui.common import esc, is_simulated, load_cohort, open_cohort_page, scoped

MARKERS = 3                     # genes per class: they fit the table's width


@st.cache_data(show_spinner="Fitting a Cox model on the training samples...", max_entries=16)
def overview_risk(root: str, cohort_id: str, source: str, time: str, event: str) -> RiskResult:
    ws = Workspace(root)
    return holdout_risk(load_cohort(ws, cohort_id), resolve_features(ws, cohort_id, source),
                        time=time, event=event, seed=0)


@st.cache_data(show_spinner="Marker genes of each class...", max_entries=16)
def markers(root: str, cohort_id: str, label: str) -> pd.DataFrame:
    """Per class (largest first, up to 12): its top genes against all other samples."""
    adata = load_cohort(Workspace(root), cohort_id)
    expr = log2_expression(adata)
    values = adata.obs[label]
    rows = []
    for name, n in values.value_counts().head(12).items():
        selected = np.flatnonzero((values == name).to_numpy())
        if n < MIN_GROUP_SIZE or adata.n_obs - n < MIN_GROUP_SIZE:
            continue
        table = differential_expression(expr, selected)
        up = table[(table["t"] > 0) & (table["q"] < 0.05)].head(MARKERS)
        rows.append({label: str(name), "samples": int(n),
                     "top genes": ", ".join(up["symbol"].fillna(pd.Series(up.index, up.index))
                                            .astype(str))})
    return pd.DataFrame(rows)


def link(page: str, label: str) -> None:
    st.page_link(page, label=label, icon=":material/arrow_forward:")


def map_panel(ws: Workspace, cohort_id: str, adata, runs: list[RunInfo], label: str | None):
    st.markdown("**Map**")
    with_map = [r for r in runs if ws.embedding(cohort_id, r.id) is not None]
    source = with_map[0].id if with_map else EXPRESSION
    with st.spinner("Drawing the map (stored, so this happens once)..."):
        coords = cohort_map(ws, cohort_id, source)
    what = esc(with_map[0].name) if with_map else "normalised expression (50 PCs)"
    colour = adata.obs[label].astype(str).where(adata.obs[label].notna()) if label else None
    fig = viz.embedding_scatter(coords, color=colour, color_name=label or "",
                                hover_ids=adata.obs_names, simulated=is_simulated(adata))
    fig.update_layout(height=380, margin={"t": 30, "b": 10})
    st.plotly_chart(fig, key="overview_map", theme=None)
    st.caption(f"UMAP of {what}, coloured by {esc(label) if label else 'nothing'}.")
    link("views/embeddings.py", "Explore the map: select, compare, annotate")


def survival_panel(ws: Workspace, cohort_id: str, adata, runs: list[RunInfo]) -> None:
    st.markdown("**Survival by predicted risk**")
    times, events = survival_columns(adata.obs)
    if not times or not events:
        st.info("This cohort has no survival columns (a time and a 0/1 event).")
        return
    source = runs[0].id if runs else EXPRESSION
    try:
        result = overview_risk(*scoped(ws, cohort_id, source), times[0], events[0])
        comparison = compare_groups(risk_groups(result),
                                    time_unit=time_unit(adata.uns, times[0])[0])
    except GexError as err:
        st.info(esc(err))
        return
    fig = viz.km_figure(comparison.km)
    fig.update_layout(height=380, margin={"t": 30, "b": 10})
    st.plotly_chart(fig, key="overview_km", theme=None)
    high = comparison.table.iloc[-1]
    features = esc(runs[0].name) if runs else "expression PCs"
    st.caption(f"Held-out patients, ridge Cox on {features}, cut at the median of the "
               f"training risks; {viz.format_p(comparison.km.logrank_p)} (log-rank); hazard "
               f"ratio {esc(high.name)} vs {esc(comparison.reference)} {high['hr']:.2f} "
               f"(95% CI {high['hr_lower']:.2f}-{high['hr_upper']:.2f}).")
    link("views/survival.py", "Split survival by risk, a clinical column or a gene")


def genes_panel(ws: Workspace, cohort_id: str, adata, label: str | None) -> None:
    st.markdown(f"**Marker genes of each {esc(label)}**" if label else "**Marker genes**")
    if not label:
        st.info("Marker genes are found per class; this cohort has no label column.")
        return
    table = markers(*scoped(ws, cohort_id), label)
    if table.empty:
        st.info(f"No {esc(label)} class has two or more samples on each side to compare.")
        return
    st.dataframe(table, hide_index=True, height=35 * (len(table) + 1) + 3,
                 key="overview_markers",
                 column_config={"top genes": st.column_config.TextColumn(width="large")})
    st.caption(f"Each class against the other samples: the {MARKERS} genes most higher "
               "in it (Welch t, Benjamini-Hochberg q < 0.05) on the log2 scale.")
    link("views/importance.py", "What the encoders look at: attention and integrated gradients")


def evaluation_panel(ws: Workspace, cohort_id: str) -> None:
    st.markdown("**Evaluation**")
    reports = report_runs(ws, cohort_id)
    if not reports:
        st.info("No evaluation of this cohort yet: run one on the **Train** page (encoders "
                "against baselines at 1-100% labels).")
        link("views/train.py", "Train and evaluate")
        return
    try:
        report = load_report(ws, reports[0])
    except GexError as err:
        st.info(esc(err))
        return
    cells = st.columns(2)
    for cell, row in zip(cells, report.headline().to_dict("records")):
        cell.metric(f"{row['labels']:.0%} of labels: {row['best encoder']}",
                    f"{row['mean']:.3f} ± {row['sd']:.3f}",
                    delta=f"{row['mean'] - row['baseline mean']:+.3f} vs baseline")
        cell.caption(f"{esc(row['metric'])}; strongest baseline {esc(row['strongest baseline'])} "
                     f"{row['baseline mean']:.3f} ± {row['baseline sd']:.3f} (mean ± sd over "
                     "seeds).")
    st.caption(f"From {esc(reports[0].name)}: the best encoder at the fewest and at all "
               "labels, beside the strongest baseline at the same labels.")
    link("views/predictions.py", "All curves, confusion matrices and predictions")


ws, cohort_id, adata = open_cohort_page("Overview")
info = ws.cohort(cohort_id)
st.caption(f"**{esc(info.name)}** · {info.n_obs:,} samples x {info.n_vars:,} genes · switch "
           "cohorts in the sidebar.")
runs = encoder_runs(ws, cohort_id)
labels = label_columns(adata.obs)
label = labels[0] if labels else None
top = st.columns(2, gap="large")
with top[0]:
    map_panel(ws, cohort_id, adata, runs, label)
with top[1]:
    survival_panel(ws, cohort_id, adata, runs)
bottom = st.columns(2, gap="large")
with bottom[0]:
    genes_panel(ws, cohort_id, adata, label)
with bottom[1]:
    evaluation_panel(ws, cohort_id)
