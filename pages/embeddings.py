"""Embeddings page: a 2-D map (UMAP or PCA) of the current cohort from an encoder's embedding or
from its expression; colour by a clinical column, a gene or an out-of-fold prediction, select
samples, download."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from gexcore import keys, viz
from gexcore.data.rules import has_survival, label_columns
from gexcore.errors import GexError
from gexcore.explore.crossfit import out_of_fold_classes, out_of_fold_risk
from gexcore.explore.features import EXPRESSION, encoder_runs, resolve_features
from gexcore.explore.maps import (
    cohort_map,
    colour_values,
    gene_colour,
    gene_symbols,
    map_table,
)
from gexcore.tasks.projection import ProjectionParams
from gexcore.workspace import EmbedJob, Workspace, submit
from ui.common import (
    current_cohort_id,
    current_workspace,
    esc,
    is_simulated,
    job_panel,
    load_cohort,
    selected_rows,
    simulated_banner,
)

NEIGHBOURS = (5, 10, 15, 30, 50, 100)
MIN_DISTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8)
COLOUR_MODES = ("Clinical column", "Gene", "Prediction", "Nothing")
RISK = "survival risk"


@st.cache_data(show_spinner="Out-of-fold predictions (5 patient-aware folds)...", max_entries=16)
def predictions(root: str, cohort_id: str, source: str, target: str) -> pd.DataFrame:
    """Cached per (workspace, cohort, map source, target): a rerun never refits."""
    ws = Workspace(root)
    adata = load_cohort(ws, cohort_id)
    features = resolve_features(ws, cohort_id, source)
    if target == RISK:
        return out_of_fold_risk(adata, features).to_frame()
    return out_of_fold_classes(adata, features, target)


def prediction_colour(ws: Workspace, adata, cohort_id: str, source: str, cell
                      ) -> tuple[object, str]:
    """Colour by what a model fitted on the other folds predicts for each sample."""
    targets = [*label_columns(adata.obs), *([RISK] if has_survival(adata.obs) else [])]
    if not targets:
        st.caption("This cohort has no label or survival columns to predict.")
        return None, ""
    target = cell.selectbox("Predict", targets, key=f"emb_predict_{cohort_id}",
                            format_func=lambda t: "survival risk (Cox)" if t == RISK else t)
    try:
        result = predictions(str(ws.root), cohort_id, source, target)
    except GexError as err:
        st.error(esc(err))
        return None, ""
    how = ("Out-of-fold: each sample is predicted by a model fitted on the other folds (up to "
           "5 patient-aware folds over this map's features), never on itself.")
    if target == RISK:
        st.caption(f"{how} Ridge Cox risk as a percentile of the fitting folds' risks; higher "
                   "= shorter predicted survival.")
        return result.iloc[:, 0].to_numpy(), "risk percentile"
    agree = result["correct"].dropna().astype(bool).mean()
    st.caption(f"{how} Linear probe; **{agree:.0%}** of the labelled samples get their own "
               f"{esc(target)}. Unlabelled samples are grey.")
    return colour_values(result["predicted"]), f"predicted {target}"


def embed_offer(ws: Workspace, cohort_id: str, have: set[str]) -> None:
    """Finished encoders without an embedding of this cohort: an Embed button (an EmbedJob)."""
    missing = [r for r in ws.runs(kind="pretrain", status="done") if r.id not in have]
    failed = [r for r in ws.runs(kind="embed", status="failed")
              if r.params.get("cohort") == cohort_id][:3]
    if not missing and not failed:
        return
    with st.expander(f"{len(missing)} encoder(s) have not embedded this cohort yet"
                     if missing else "Failed embedding jobs", icon=":material/input:"):
        for run in failed:
            st.error(esc(f"{run.name}: {run.error}"))
        if not missing:
            return
        by_id = {r.id: r for r in missing}
        run_id = st.selectbox("Encoder", list(by_id), key=f"embed_run_{cohort_id}",
                              format_func=lambda i: f"{by_id[i].name} ({i})")
        if st.button("Embed this cohort", type="primary", icon=":material/play_arrow:"):
            try:
                submit(ws, EmbedJob(cohort=cohort_id, run=run_id))
            except GexError as err:
                st.error(esc(err))
            else:
                st.success("Embedding in the background; the map appears when it is done.")


def map_controls(sources: dict[str, str], cohort_id: str) -> tuple[str, ProjectionParams]:
    cells = st.columns([3, 1.2, 1.6, 1.6])
    # Keyed by the newest source too, so a freshly trained or embedded encoder is shown at once.
    source = cells[0].selectbox("Map of", list(sources), format_func=sources.get,
                                key=f"emb_source_{cohort_id}_{next(iter(sources))}",
                                help="An encoder's embedding of this cohort, or the cohort's "
                                     "own normalised expression (its top 50 principal "
                                     "components).")
    method = cells[1].radio("Projection", ["UMAP", "PCA"], horizontal=True, key="emb_method")
    umap = method == "UMAP"
    n_neighbors = cells[2].select_slider("Neighbours", NEIGHBOURS, value=15, disabled=not umap,
                                         key="emb_neighbors",
                                         help="UMAP: small = local detail, large = global "
                                              "structure.")
    min_dist = cells[3].select_slider("Min distance", MIN_DISTS, value=0.1, disabled=not umap,
                                      key="emb_min_dist",
                                      help="UMAP: how tightly points may pack.")
    return source, ProjectionParams(method="umap" if umap else "pca", n_neighbors=n_neighbors,
                                    min_dist=min_dist)


def colour_controls(ws: Workspace, adata, cohort_id: str, source: str) -> tuple[object, str]:
    """(values, name) to colour by: a clinical column, a gene's expression, a prediction, or
    nothing."""
    cells = st.columns([3, 3])
    mode = cells[0].radio("Colour by", COLOUR_MODES, horizontal=True, key="emb_colour_mode")
    if mode == "Clinical column" and len(adata.obs.columns):
        columns = list(map(str, adata.obs.columns))
        default = columns.index(keys.OBS_LABEL) if keys.OBS_LABEL in columns else 0
        column = cells[1].selectbox("Column", columns, index=default,
                                    key=f"emb_colour_column_{cohort_id}")
        return colour_values(adata.obs[column]), column
    if mode == "Gene":
        symbols = gene_symbols(adata)
        gene = cells[1].selectbox("Gene", list(adata.var_names), key=f"emb_gene_{cohort_id}",
                                  format_func=lambda g: str(symbols.get(g, g)),
                                  help="Coloured by the expression value as stored (see the "
                                       "Data page for its scale).")
        return gene_colour(adata, gene)
    if mode == "Prediction":
        return prediction_colour(ws, adata, cohort_id, source, cells[1])
    return None, ""


def downloads(table, fig, stem: str) -> None:
    cells = st.columns([1, 1, 3])
    cells[0].download_button("Map + clinical (CSV)", lambda: table.to_csv().encode(),
                             file_name=f"{stem}.csv", mime="text/csv", on_click="ignore",
                             icon=":material/download:")
    cells[1].download_button("Figure (HTML)", lambda: fig.to_html(include_plotlyjs=True),
                             file_name=f"{stem}.html", mime="text/html", on_click="ignore",
                             icon=":material/download:")


st.title("Embeddings")
ws = current_workspace()
cohort_id = current_cohort_id(ws)
info = ws.cohort(cohort_id)
adata = load_cohort(ws, cohort_id)
if is_simulated(adata):
    simulated_banner()
runs = encoder_runs(ws, cohort_id)
sources = {r.id: r.name for r in runs} | {EXPRESSION: "Expression (no encoder: top 50 PCs)"}
st.caption(f"**{esc(info.label)}** · {len(runs)} encoder(s) with an embedding of this cohort")
if not runs:                                   # no encoder map yet: offer one first
    embed_offer(ws, cohort_id, set())
job_panel(ws, "embed", key="embeddings")

source, params = map_controls(sources, cohort_id)
with st.spinner("Computing the map; it is stored, so this happens once per setting..."):
    coords = cohort_map(ws, cohort_id, source, params)
if coords is None:
    st.warning("This encoder has no embedding of this cohort any more; embed it again above.")
    st.stop()

colour, colour_name = colour_controls(ws, adata, cohort_id, source)
axes = ("UMAP 1", "UMAP 2") if params.method == "umap" else ("PC 1", "PC 2")
fig = viz.embedding_scatter(coords, color=colour, color_name=colour_name,
                            hover_ids=adata.obs_names, simulated=is_simulated(adata),
                            title=f"{sources[source]} · {params.method.upper()}",
                            axis_titles=axes)
fig.update_layout(height=620)
event = st.plotly_chart(fig, key=f"emb_map_{cohort_id}", on_select="rerun", theme=None,
                        selection_mode=("points", "box", "lasso"))
table = map_table(adata, coords, axes)
if colour is not None and colour_name not in table:     # a gene or a prediction: export it too
    table[colour_name] = colour
downloads(table, fig, re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{info.name}_{params.method}_map"))

rows = selected_rows(event)
if rows:
    st.subheader(f"{len(rows):,} selected sample(s)")
    st.dataframe(table.iloc[rows], height=320, key="emb_selected_table")
    st.download_button("Selected samples (CSV)", table.iloc[rows].to_csv().encode(),
                       file_name="selected_samples.csv", mime="text/csv", on_click="ignore",
                       icon=":material/download:")
else:
    st.caption("Draw a lasso or a box on the map, or click a point, to list those samples here.")
if runs:
    embed_offer(ws, cohort_id, {r.id for r in runs})
