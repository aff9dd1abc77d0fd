"""Survival page, as cBioPortal and Xena show it: Kaplan-Meier curves of patients grouped by
predicted risk (a ridge Cox model fitted on the training patients, held-out patients cut at
quantiles of the TRAINING risks), by any clinical column or by one gene's expression; numbers
at risk, k-group log-rank p, hazard ratios with 95% CI against a chosen reference, median
survival with 95% CI, an optional landmark time, and exports of the figure and the tables."""

from __future__ import annotations

import zlib

import numpy as np
import streamlit as st

from gexcore import viz
from gexcore.data.rules import survival_columns, time_unit
from gexcore.errors import GexError
from gexcore.explore.features import feature_sources, resolve_features
from gexcore.explore.holdout import RiskResult, holdout_risk, mixed_types
from gexcore.explore.maps import gene_options
from gexcore.explore.survival import (
    MIN_GROUP_SIZE,
    GroupComparison,
    SurvivalGroups,
    clinical_groups,
    compare_groups,
    gene_groups,
    grouping_columns,
    is_measurement,
    parse_cuts,
    risk_groups,
)
from gexcore.workspace import Workspace
from ui.common import esc, load_cohort, open_cohort_page, scoped, source_name

GROUP_BY = {"risk": "Predicted risk", "clinical": "Clinical column", "gene": "Gene expression"}
RISK_SCHEMES = {"median": "Median (2 groups)", "tertiles": "Tertiles (3)",
                "quartiles": "Quartiles (4)", "custom": "Custom cut"}
VALUE_SCHEMES = {**RISK_SCHEMES, "custom": "Custom cut (values)"}
CUT_CHOICES = tuple(round(q, 2) for q in np.arange(0.05, 0.96, 0.05))
ALL_TYPES = "All types"
NO_SURVIVAL = (
    "This cohort has no survival columns (a numeric time and a 0/1 event). A saved cohort's "
    "columns cannot be remapped yet: on the **Data** page choose *Add a cohort*, upload the "
    "expression and clinical files again, and set *Survival time* and *Survival event* before "
    "saving.")


@st.cache_data(show_spinner="Fitting a Cox model on the training samples...", max_entries=32)
def risk(root: str, cohort_id: str, source: str, time: str, event: str, seed: int,
         subset: tuple[str, str] | None = None) -> RiskResult:
    """Cached per setting; `subset` = (column, value) refits on those samples only."""
    ws = Workspace(root)
    return holdout_risk(load_cohort(ws, cohort_id), resolve_features(ws, cohort_id, source),
                        time=time, event=event, seed=seed, within=subset)


def survival_controls(adata, cohort_id: str) -> tuple[str, str, str]:
    """(group by, time column, event column); stops the page when there is no survival."""
    times, events = survival_columns(adata.obs)
    if not times or not events:
        st.info(NO_SURVIVAL, icon=":material/info:")
        st.stop()
    cells = st.columns([3, 1.4, 1.4])
    by = cells[0].radio("Group by", list(GROUP_BY), format_func=GROUP_BY.get,
                        horizontal=True, key="surv_by")
    time = cells[1].selectbox("Time column", times, key=f"surv_time_{cohort_id}")
    event = cells[2].selectbox("Event column (1 = event)", events, key=f"surv_event_{cohort_id}")
    return by, time, event


# -------------------------------------------------------------------- group by predicted risk

def risk_scheme() -> tuple[str, tuple[float, ...] | None]:
    cells = st.columns([3, 2])
    scheme = cells[0].radio("Risk groups", list(RISK_SCHEMES), format_func=RISK_SCHEMES.get,
                            horizontal=True, key="surv_scheme")
    cuts = None
    if scheme == "custom":
        picked = cells[1].multiselect("Cut at quantiles of the training risks", CUT_CHOICES,
                                      default=[0.25, 0.75], key="surv_cuts",
                                      format_func=lambda q: f"{q:.0%}")
        cuts = tuple(sorted(picked))
        if not cuts:
            st.warning("Pick at least one quantile to cut at; showing the median split.")
            scheme, cuts = "median", None
    return scheme, cuts


def type_filter(adata, result: RiskResult, cohort_id: str) -> tuple[str, str] | None:
    """Warn when held-out groups mix cancer types; offer to refit on one type."""
    if (mixed := mixed_types(adata, result)) is None:
        return None
    column, counts = mixed                          # held-out samples per type
    options = [ALL_TYPES, *counts.index]
    st.warning(f"The held-out samples span {len(counts)} values of {esc(column)}. Baseline "
               "survival differs by type, so a risk score that only recognises the type can "
               "separate these curves; restrict to one type to see risk within a type.",
               icon=":material/warning:")
    picked = st.selectbox(f"Restrict to one {esc(column)} (refits the Cox model on its samples)",
                          options, key=f"surv_type_{cohort_id}",
                          format_func=lambda t: t if t == ALL_TYPES
                          else f"{t} ({counts[t]:,} held-out samples)")
    return None if picked == ALL_TYPES else (column, picked)


def by_risk(ws: Workspace, cohort_id: str, adata, time: str, event: str):
    """(groups, title, risk result) of held-out patients in predicted-risk groups."""
    runs = feature_sources(ws, cohort_id)
    cells = st.columns([3, 1])
    source = cells[0].selectbox("Features", list(runs), key=f"surv_source_{cohort_id}",
                                format_func=lambda s: source_name(runs, s))
    seed = int(cells[1].number_input("Split seed", 0, 10_000, 0, key="surv_seed"))
    scheme, cuts = risk_scheme()
    result = risk(*scoped(ws, cohort_id, source), time, event, seed)
    subset = type_filter(adata, result, cohort_id)
    if subset is not None:
        result = risk(*scoped(ws, cohort_id, source), time, event, seed, subset)
    what = f"{subset[1]} only" if subset else "all samples"
    return (risk_groups(result, scheme, cuts), f"Held-out samples by predicted risk ({what})",
            result)


# ------------------------------------------------------------- group by a column or a gene

def value_scheme(key: str, where) -> tuple[str, tuple[float, ...] | None] | None:
    """Median / tertiles / quartiles, or custom cut values typed by the user (None until
    some are typed)."""
    scheme = where.radio("Cut", list(VALUE_SCHEMES), format_func=VALUE_SCHEMES.get,
                         horizontal=True, key="surv_value_scheme")
    if scheme != "custom":
        return scheme, None
    text = where.text_input("Cut at (values, comma-separated)", key=f"surv_value_cuts_{key}",
                            placeholder="e.g. 6.5 or 5, 7")
    if not text.strip():
        st.info("Type one or more values to cut at.", icon=":material/info:")
        return None
    return scheme, parse_cuts(text)


def by_clinical(adata, cohort_id: str, time: str,
                event: str) -> tuple[SurvivalGroups, str] | None:
    columns = grouping_columns(adata.obs, exclude=(time, event))
    if not columns:
        st.info("This cohort has no clinical column to group by (a column with 2-50 values, "
                "or a numeric measurement such as age).", icon=":material/info:")
        return None
    cells = st.columns([2, 3])
    column = cells[0].selectbox("Clinical column", columns, key=f"surv_column_{cohort_id}")
    cut = ("median", None)
    if is_measurement(adata.obs[column]):
        cut = value_scheme(f"{cohort_id}_{column}", cells[1])
    if cut is None:
        return None
    groups = clinical_groups(adata.obs, column, time=time, event=event, scheme=cut[0],
                             cuts=cut[1])
    return groups, f"All samples by {column}"


def by_gene(adata, cohort_id: str, time: str, event: str) -> tuple[SurvivalGroups, str] | None:
    cells = st.columns([2, 3])
    shown = gene_options(adata)
    gene = cells[0].selectbox("Gene", list(shown), index=None, format_func=shown.get,
                              key=f"surv_gene_{cohort_id}",
                              placeholder=f"Type a gene symbol ({adata.n_vars:,} genes)",
                              help="Type a symbol (or an id). Cut on the expression values as "
                                   "stored (see the Data page for their scale).")
    cut = value_scheme(f"{cohort_id}_{gene}", cells[1])
    if gene is None:
        st.info("Pick a gene to split the patients by its expression.", icon=":material/info:")
        return None
    if cut is None:
        return None
    groups = gene_groups(adata, gene, time=time, event=event, scheme=cut[0], cuts=cut[1])
    return groups, f"All samples by {groups.title}"


# --------------------------------------------------------------------------------- results

def comparison_controls(groups: SurvivalGroups, unit: str, key: str) -> tuple[str, float]:
    cells = st.columns([2, 2])
    names = zlib.crc32("|".join(groups.names).encode())      # new groups: a fresh choice
    reference = cells[0].selectbox("Reference group (hazard ratio = 1)", groups.names,
                                   key=f"surv_ref_{key}_{names:08x}")
    t0 = cells[1].number_input(f"Landmark time{f' ({unit})' if unit else ''}, 0 = none",
                               min_value=0.0, value=0.0, key="surv_landmark",
                               help="Only patients still at risk at this time enter; their "
                                    "time counts from it. Groups are kept from baseline.")
    return reference, float(t0)


def headline(comparison: GroupComparison, result: RiskResult | None) -> None:
    km = comparison.km
    cells = iter(st.columns(4))                     # left-aligned, however many are shown
    if result is not None:
        next(cells).metric("C-index (Harrell)", f"{result.c_harrell:.3f}")
        next(cells).metric("C-index (Uno)", f"{result.c_uno:.3f}")
    next(cells).metric("Log-rank p", viz.format_p(km.logrank_p, prefix=""),
                       help=f"Log-rank test across the {len(km.groups)} groups.")
    if km.hazard_ratios and (result is not None or len(km.hazard_ratios) == 1):
        hr = km.hazard_ratios[-1]                   # highest-risk / last group vs reference
        next(cells).metric(f"HR {esc(hr.group)} vs {esc(hr.reference)}",
                           f"{hr.hr:.2f}" if np.isfinite(hr.hr) else "n/a",
                           delta=f"95% CI {hr.lower:.2f}-{hr.upper:.2f}"
                           if np.isfinite(hr.hr) else None, delta_color="off",
                           delta_arrow="off",
                           help="Hazard ratio (Cox model on group indicators) with its 95% "
                                "confidence interval; all groups are in the table below.")


def cautions(comparison: GroupComparison, unit: str) -> None:
    for note in comparison.warnings:
        st.warning(esc(note), icon=":material/warning:")
    if small := comparison.small_groups:
        st.warning(f"Fewer than {MIN_GROUP_SIZE} patients in {', '.join(map(esc, small))}: "
                   "their curves, medians and hazard ratios are unreliable.",
                   icon=":material/warning:")
    if comparison.landmark:
        st.caption(f"Landmark at {comparison.landmark:g} {esc(unit)}: "
                   f"{comparison.n_excluded:,} patients with an event or censored by then are "
                   "left out; time counts from the landmark.")


def figure(comparison: GroupComparison, title: str, unit: str):
    fig = viz.km_figure(comparison.km, title=title)
    if comparison.landmark:
        since = f"{unit} since the landmark" if unit else "time since the landmark"
        fig.update_xaxes(title=since, row=2, col=1)
    st.plotly_chart(fig, key="surv_km", theme=None,
                    config={"toImageButtonOptions": {"format": "svg", "filename": "survival"}})
    return fig


def show(groups: SurvivalGroups, title: str, unit: str, result: RiskResult | None,
         key: str) -> None:
    reference, t0 = comparison_controls(groups, unit, key)
    comparison = compare_groups(groups, reference=reference, landmark_time=t0, time_unit=unit)
    headline(comparison, result)
    cautions(comparison, unit)
    fig = figure(comparison, title, unit)
    with st.expander("Numbers at risk (table)"):
        st.dataframe(comparison.at_risk_table())
    st.markdown(f"**Groups** · log-rank test across {len(comparison.km.groups)} groups: "
                f"{viz.format_p(comparison.logrank_p)}")
    st.dataframe(comparison.display_table(), key="surv_groups")
    how = f": {esc(groups.note)}" if groups.note else ""
    st.caption(f"Grouped by {esc(groups.title)}{how}. Hazard ratios from a Cox "
               f"model on group indicators, against {esc(comparison.reference)}; medians with "
               "95% CI from the Kaplan-Meier confidence band (NR = not reached)."
               + (f" Ridge Cox model (penalty {result.penalizer:g}) fitted on "
                  f"{result.n_train:,} training samples; curves show the {len(result.test):,} "
                  f"held-out samples, split by {esc(result.grouped_by)}. C-index 0.5 = random "
                  "ranking." if result is not None else ""))
    exports(groups, comparison, fig, result)


def exports(groups: SurvivalGroups, comparison: GroupComparison, fig,
            result: RiskResult | None) -> None:
    patients = groups.frame()
    if result is not None:
        patients["risk"] = result.test["risk"]
    cells = st.columns(3)
    cells[0].download_button("Figure (HTML)", lambda: fig.to_html(include_plotlyjs=True),
                             file_name="survival.html", mime="text/html", on_click="ignore",
                             icon=":material/download:",
                             help="Interactive; its camera icon saves a PNG. The camera icon "
                                  "on the figure above saves an SVG.")
    cells[1].download_button("Groups table (CSV)", comparison.table.to_csv().encode(),
                             file_name="survival_groups.csv", mime="text/csv",
                             on_click="ignore", icon=":material/download:")
    cells[2].download_button("Patients and groups (CSV)", patients.to_csv().encode(),
                             file_name="survival_patients.csv", mime="text/csv",
                             on_click="ignore", icon=":material/download:")


ws, cohort_id, adata = open_cohort_page("Survival")
by, time_column, event_column = survival_controls(adata, cohort_id)
unit, endpoint = time_unit(adata.uns, time_column)
if unit:
    st.caption(f"Time unit: **{esc(unit)}**"
               + (f" · endpoint: {esc(endpoint)}" if endpoint else ""))
try:
    risk_result = None
    if by == "risk":
        grouping, title, risk_result = by_risk(ws, cohort_id, adata, time_column, event_column)
    elif by == "clinical":
        grouping, title = by_clinical(adata, cohort_id, time_column, event_column)
    else:
        grouping, title = by_gene(adata, cohort_id, time_column, event_column) or (None, "")
    if grouping is not None:
        show(grouping, title, unit, risk_result, f"{cohort_id}_{by}_{grouping.title}")
except GexError as err:
    st.error(esc(err))
