"""Survival page: a ridge Cox model on an encoder's embedding (or on expression), fitted on the
training patients; Kaplan-Meier curves of held-out patients in risk groups cut at quantiles of
the TRAINING risks, with numbers at risk, log-rank p, hazard ratios and C-indices."""

from __future__ import annotations

import numpy as np
import streamlit as st

from gexcore import viz
from gexcore.data.rules import survival_columns, time_unit
from gexcore.errors import GexError
from gexcore.explore.features import feature_sources, resolve_features
from gexcore.explore.holdout import RiskResult, holdout_risk, mixed_types
from gexcore.workspace import Workspace
from ui.common import esc, load_cohort, open_cohort_page, source_name

SCHEMES = {"median": "Median (2 groups)", "tertiles": "Tertiles (3)",
           "quartiles": "Quartiles (4)", "custom": "Custom cut"}
CUT_CHOICES = tuple(round(q, 2) for q in np.arange(0.05, 0.96, 0.05))
ALL_TYPES = "All types"


@st.cache_data(show_spinner="Fitting a Cox model on the training samples...", max_entries=32)
def risk(root: str, cohort_id: str, source: str, time: str, event: str, seed: int,
         subset: tuple[str, str] | None = None) -> RiskResult:
    """Cached per setting; `subset` = (column, value) refits on those samples only."""
    ws = Workspace(root)
    return holdout_risk(load_cohort(ws, cohort_id), resolve_features(ws, cohort_id, source),
                        time=time, event=event, seed=seed, within=subset)


def controls(adata, runs: dict, cohort_id: str):
    times, events = survival_columns(adata.obs)
    if not times or not events:
        st.info("This cohort has no survival columns (a numeric time and a 0/1 event); map them "
                "on the Data page.")
        st.stop()
    cells = st.columns([3, 1.4, 1.4, 1])
    source = cells[0].selectbox(
        "Features", list(runs), key=f"surv_source_{cohort_id}",
        format_func=lambda s: source_name(runs, s))
    time = cells[1].selectbox("Time column", times, key=f"surv_time_{cohort_id}")
    event = cells[2].selectbox("Event column (1 = event)", events, key=f"surv_event_{cohort_id}")
    seed = cells[3].number_input("Split seed", 0, 10_000, 0, key="surv_seed")
    return source, time, event, int(seed)


def scheme_controls() -> tuple[str, tuple[float, ...] | None]:
    cells = st.columns([3, 2])
    scheme = cells[0].radio("Risk groups", list(SCHEMES), format_func=SCHEMES.get,
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


def show_result(result: RiskResult, scheme: str, cuts, unit: str, title: str) -> None:
    km = result.km(scheme, cuts, time_unit=unit)
    groups, assigned = result.groups(scheme, cuts)
    hr = km.hazard_ratios[-1] if km.hazard_ratios else None
    cells = st.columns(4)
    cells[0].metric("C-index (Harrell)", f"{result.c_harrell:.3f}")
    cells[1].metric("C-index (Uno)", f"{result.c_uno:.3f}")
    cells[2].metric("Log-rank p", viz.format_p(km.logrank_p, prefix=""))
    cells[3].metric(f"HR {hr.group} vs {hr.reference}" if hr else "Hazard ratio",
                    f"{hr.hr:.2f}" if hr else "n/a",
                    delta=f"95% CI {hr.lower:.2f}-{hr.upper:.2f}" if hr else None,
                    delta_color="off", delta_arrow="off",
                    help="Hazard ratio of the highest- vs the lowest-risk group of the "
                         "held-out samples, with its 95% confidence interval.")
    st.plotly_chart(viz.km_figure(km, title=title), key="surv_km", theme=None)
    cut_text = ", ".join(f"{q:.0%} -> {t:.3g}" for q, t in zip(groups.quantiles_,
                                                                groups.thresholds_))
    st.caption(f"Ridge Cox model (penalty {result.penalizer:g}) fitted on {result.n_train:,} "
               f"training samples; curves show the {len(result.test):,} held-out samples. "
               f"Cuts at quantiles of the training risks ({cut_text}), split by "
               f"{result.grouped_by}. C-index 0.5 = random ranking.")
    table = result.group_table(scheme, cuts)
    st.download_button("Held-out risks and groups (CSV)", table.to_csv().encode(),
                       file_name="risk_groups.csv", mime="text/csv", on_click="ignore",
                       icon=":material/download:")


ws, cohort_id, adata = open_cohort_page("Survival")
runs = feature_sources(ws, cohort_id)
source, time_column, event_column, seed = controls(adata, runs, cohort_id)
unit, endpoint = time_unit(adata.uns, time_column)
if unit:
    st.caption(f"Time unit: **{esc(unit)}**"
               + (f" · endpoint: {esc(endpoint)}" if endpoint else ""))
scheme, cuts = scheme_controls()
try:
    result = risk(str(ws.root), cohort_id, source, time_column, event_column, seed)
    subset = type_filter(adata, result, cohort_id)
    if subset is not None:
        result = risk(str(ws.root), cohort_id, source, time_column, event_column, seed, subset)
    what = f"{subset[1]} only" if subset else "all samples"
    show_result(result, scheme, cuts, unit, f"Held-out samples by predicted risk ({what})")
except GexError as err:
    st.error(esc(err))
