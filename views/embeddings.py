"""Embeddings page: a 2-D map (UMAP or PCA) of the current cohort from an encoder's embedding or
from its expression; colour by a clinical column, a gene, a gene set's score or an out-of-fold
prediction; select samples on the map or by a column's value, compare them with the rest or
another selection (differential expression), save them as an annotation, download."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from gexcore import keys, viz
from gexcore.data.genes import MIN_GENE_OVERLAP
from gexcore.data.genesets import parse_gmt
from gexcore.data.rules import has_survival, label_columns
from gexcore.errors import GexError
from gexcore.explore.crossfit import out_of_fold_classes, out_of_fold_risk
from gexcore.explore.de import differential_expression, log2_expression
from gexcore.explore.features import EXPRESSION, encoder_runs, resolve_features
from gexcore.explore.genesets import gene_set_score
from gexcore.explore.maps import (
    cohort_map,
    colour_values,
    encoder_overlap,
    gene_colour,
    gene_options,
    map_table,
)
from gexcore.explore.selection import column_values, rows_where, selectable_columns
from gexcore.tasks.projection import ProjectionParams
from gexcore.viz_de import volcano_figure
from gexcore.workspace import EmbedJob, Workspace, submit
from ui.common import (
    current_cohort_id,
    current_workspace,
    esc,
    is_simulated,
    job_panel,
    load_cohort,
    scoped,
    selected_rows,
    simulated_banner,
)

NEIGHBOURS = (5, 10, 15, 30, 50, 100)
MIN_DISTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8)
COLOUR_MODES = ("Clinical column", "Gene", "Gene set", "Prediction", "Nothing")
RISK = "survival risk"
SELECT_MODES = ("On the map (lasso, box or click)", "Where a column has a value")
REST, REMEMBERED, WHERE = "All other samples", "The remembered selection", SELECT_MODES[1]
TOP_GENES = 50                   # rows of the DE table shown (the CSV has every gene)
TOP_LABELS = 10                  # genes named on the volcano plot


@dataclass(frozen=True)
class Colour:
    """What the map is coloured by: values (None = nothing), their name, the classes that fix
    each category's colour, and what a point without a value is called."""

    values: object = None
    name: str = ""
    classes: object = None
    missing: str = "missing"


@st.cache_data(show_spinner="Out-of-fold predictions (5 patient-aware folds)...", max_entries=16)
def predictions(root: str, cohort_id: str, source: str, target: str) -> pd.DataFrame:
    """Cached per (workspace, cohort, map source, target): a rerun never refits."""
    ws = Workspace(root)
    adata = load_cohort(ws, cohort_id)
    features = resolve_features(ws, cohort_id, source)
    if target == RISK:
        return out_of_fold_risk(adata, features).to_frame()
    return out_of_fold_classes(adata, features, target)


def prediction_colour(ws: Workspace, adata, cohort_id: str, source: str, cell) -> Colour:
    """Colour by what a model fitted on the other folds predicts for each sample."""
    targets = [*label_columns(adata.obs), *([RISK] if has_survival(adata.obs) else [])]
    if not targets:
        st.caption("This cohort has no label or survival columns to predict.")
        return Colour()
    target = cell.selectbox("Predict", targets, key=f"emb_predict_{cohort_id}",
                            format_func=lambda t: "survival risk (Cox)" if t == RISK else t)
    try:
        result = predictions(*scoped(ws, cohort_id, source), target)
    except GexError as err:
        st.error(esc(err))
        return Colour()
    how = ("Out-of-fold: each sample is predicted by a model fitted on the other folds (up to "
           "5 patient-aware folds over this map's features), never on itself.")
    if target == RISK:
        st.caption(f"{how} Ridge Cox risk as a percentile of the fitting folds' risks; higher "
                   "= shorter predicted survival.")
        return Colour(result.iloc[:, 0].to_numpy(), "risk percentile", missing="no follow-up")
    agree = result["correct"].dropna().astype(bool).mean()
    st.caption(f"{how} Linear probe; **{agree:.0%}** of the labelled samples get their own "
               f"{esc(target)}. Unlabelled samples are grey.")
    # The label column's classes: a class keeps the colour it has when colouring by the label.
    return Colour(colour_values(result["predicted"]), f"predicted {target}",
                  classes=class_names(adata.obs[target]), missing="not predicted")


def class_names(values: pd.Series) -> list[str]:
    """A column's classes: a Categorical's categories, else the values present."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [str(c) for c in values.cat.categories]
    return [str(v) for v in values.dropna().unique()]


def embed_offer(ws: Workspace, adata, cohort_id: str, have: set[str]) -> None:
    """Finished encoders without an embedding of this cohort that measure enough of their
    genes here (the overlap shown): an Embed button (an EmbedJob)."""
    candidates = [r for r in ws.runs(kind="pretrain", status="done") if r.id not in have]
    overlap = {r.id: encoder_overlap(ws, r.id, adata) for r in candidates}
    missing = [r for r in candidates if overlap[r.id][2]]       # enough of its genes here
    n_unfit = len(candidates) - len(missing)
    failed = [r for r in ws.runs(kind="embed", status="failed")
              if r.params.get("cohort") == cohort_id][:3]
    if not missing and not failed:
        if n_unfit:
            st.caption(f"{n_unfit} encoder(s) measure too few of their genes in this cohort "
                       f"(under {MIN_GENE_OVERLAP:.0%}) to embed it.")
        return
    with st.expander(f"{len(missing)} encoder(s) have not embedded this cohort yet"
                     if missing else "Failed embedding jobs", icon=":material/input:"):
        for run in failed:
            st.error(esc(f"{run.name}: {run.error}"))
        if n_unfit:
            st.caption(f"{n_unfit} other encoder(s) are not offered: this cohort has under "
                       f"{MIN_GENE_OVERLAP:.0%} of their genes.")
        if not missing:
            return
        by_id = {r.id: r for r in missing}
        run_id = st.selectbox("Encoder", list(by_id), key=f"embed_run_{cohort_id}",
                              format_func=lambda i: f"{by_id[i].name} ({i}) · genes "
                                                    f"{overlap[i][0]:,} of {overlap[i][1]:,}")
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


def colour_controls(ws: Workspace, adata, cohort_id: str, source: str) -> Colour:
    """What to colour by: a clinical column, a gene's expression, a gene set's score, a
    prediction, or nothing."""
    cells = st.columns([3, 3])
    mode = cells[0].radio("Colour by", COLOUR_MODES, horizontal=True, key="emb_colour_mode")
    if mode == "Clinical column" and len(adata.obs.columns):
        columns = list(map(str, adata.obs.columns))
        default = columns.index(keys.OBS_LABEL) if keys.OBS_LABEL in columns else 0
        column = cells[1].selectbox("Column", columns, index=default,
                                    key=f"emb_colour_column_{cohort_id}")
        return Colour(colour_values(adata.obs[column]), column,
                      classes=class_names(adata.obs[column]))
    if mode == "Gene":
        shown = gene_options(adata)
        gene = cells[1].selectbox("Gene", list(shown), key=f"emb_gene_{cohort_id}",
                                  format_func=shown.get, placeholder="Type a gene symbol",
                                  help="Type a symbol (or an id) to find a gene. Coloured by "
                                       "the expression value as stored (see the Data page "
                                       "for its scale).")
        return Colour(*gene_colour(adata, gene))
    if mode == "Gene set":
        return gene_set_colour(ws, cohort_id, cells[1])
    if mode == "Prediction":
        return prediction_colour(ws, adata, cohort_id, source, cell=cells[1])
    return Colour()


@st.cache_data(show_spinner=False, max_entries=8)
def gene_sets(data: bytes, source: str) -> dict[str, list[str]]:
    return parse_gmt(data, source=source)


@st.cache_data(show_spinner="Scoring the gene set...", max_entries=32)
def set_scores(root: str, cohort_id: str, genes: tuple[str, ...], name: str):
    return gene_set_score(log2_cached(root, cohort_id), genes, name=name)


def gene_set_colour(ws: Workspace, cohort_id: str, cell) -> Colour:
    """Colour by a gene set's score (mean z-score of its genes) from an uploaded or pasted
    GMT file."""
    upload = cell.file_uploader("Gene sets (GMT file, e.g. from MSigDB)", type=["gmt", "txt"],
                                key=f"emb_gmt_{cohort_id}")
    pasted = cell.text_area("... or paste GMT lines (name, tab, description, tab, genes)",
                            key=f"emb_gmt_text_{cohort_id}", height=80)
    data = upload.getvalue() if upload is not None else pasted.encode()
    if not data.strip():
        st.caption("Upload or paste gene sets to colour each sample by a set's score.")
        return Colour()
    try:
        sets = gene_sets(data, upload.name if upload is not None else "pasted gene sets")
        name = cell.selectbox("Gene set", list(sets), key=f"emb_gene_set_{cohort_id}")
        scores, n = set_scores(*scoped(ws, cohort_id), tuple(sets[name]), name)
    except GexError as err:
        st.error(esc(err))
        return Colour()
    st.caption(f"**{esc(name)}**: score = mean z-score (log2 scale, across this cohort's "
               f"samples) of the {n:,} of its {len(sets[name]):,} genes measured here; 0 = "
               "the cohort's average sample.")
    return Colour(scores, f"{name} score")


def downloads(table, fig, stem: str) -> None:
    cells = st.columns([1, 1, 3])
    cells[0].download_button("Map + clinical (CSV)", lambda: table.to_csv().encode(),
                             file_name=f"{stem}.csv", mime="text/csv", on_click="ignore",
                             icon=":material/download:")
    cells[1].download_button("Figure (HTML)", lambda: fig.to_html(include_plotlyjs=True),
                             file_name=f"{stem}.html", mime="text/html", on_click="ignore",
                             icon=":material/download:")


# -- selections: on the map, or every sample where a column has one value ------------------
def where_controls(obs: pd.DataFrame, key: str) -> tuple[np.ndarray, str]:
    """(rows, "column = value") chosen with two select boxes; no rows until both are set."""
    columns = selectable_columns(obs)
    if not columns:
        st.caption("This cohort has no clinical column with a few distinct values.")
        return np.array([], dtype=int), ""
    cells = st.columns(2)
    column = cells[0].selectbox("Column", columns, key=f"{key}_column")
    value = cells[1].selectbox("Value", column_values(obs, column), index=None,
                               key=f"{key}_value_{column}", placeholder="Choose a value")
    if value is None:
        return np.array([], dtype=int), ""
    return rows_where(obs, column, value), f"{column} = {value}"


def selection_controls(obs: pd.DataFrame, cohort_id: str, event) -> tuple[np.ndarray, str]:
    """The selected rows and a name for them, from the map or from a column's value."""
    mode = st.radio("Select samples", SELECT_MODES, horizontal=True, key="emb_select_mode")
    if mode == SELECT_MODES[0]:
        return np.asarray(selected_rows(event), dtype=int), "the map selection"
    return where_controls(obs, f"emb_select_{cohort_id}")


def selected_samples(table: pd.DataFrame, rows: np.ndarray, name: str) -> None:
    st.subheader(f"{len(rows):,} selected sample(s)")
    st.caption(f"Selected: {esc(name)}.")
    st.dataframe(table.iloc[rows], height=320, key="emb_selected_table")
    st.download_button("Selected samples (CSV)", table.iloc[rows].to_csv().encode(),
                       file_name="selected_samples.csv", mime="text/csv", on_click="ignore",
                       icon=":material/download:")


# -- differential expression of the selection ---------------------------------------------
@st.cache_resource(show_spinner="Putting expression on a log2 scale...", max_entries=2)
def log2_cached(root: str, cohort_id: str):
    """Once per cohort: every selection of it is compared on the same matrix."""
    return log2_expression(load_cohort(Workspace(root), cohort_id))


@st.cache_data(show_spinner="Differential expression (Welch t-test per gene)...",
               max_entries=16)
def de_table(root: str, cohort_id: str, rows: tuple[int, ...],
             reference: tuple[int, ...] | None) -> tuple[pd.DataFrame, dict]:
    """(table, its attrs) per selection pair: a rerun never recomputes it."""
    table = differential_expression(log2_cached(root, cohort_id), list(rows),
                                    None if reference is None else list(reference))
    return table, dict(table.attrs)


def kept_radio(where, label: str, options: list[str], *, key: str) -> str:
    """A horizontal radio that keeps its choice through runs that do not draw it (Streamlit
    drops a widget's state when a run skips it, e.g. while a new selection is being made)."""
    memory = f"{key}_kept"
    kept = st.session_state.get(memory)
    choice = where.radio(label, options, horizontal=True, key=key,
                         index=options.index(kept) if kept in options else 0)
    st.session_state[memory] = choice
    return choice


def reference_controls(obs: pd.DataFrame, cohort_id: str, rows: np.ndarray
                       ) -> tuple[np.ndarray | None, str]:
    """(reference rows or None for the rest, its name): the rest, a remembered selection, or
    the samples where a column has a value."""
    memory = f"emb_remembered_{cohort_id}"
    remembered = st.session_state.get(memory)
    options = [REST, *([REMEMBERED] if remembered else []), WHERE]
    cells = st.columns([3, 1.4])
    choice = kept_radio(cells[0], "Compare with", options, key=f"emb_reference_{cohort_id}")
    if cells[1].button("Remember this selection", icon=":material/bookmark_add:",
                       key=f"emb_remember_{cohort_id}",
                       help="Keep it as the group to compare the next selection with."):
        st.session_state[memory] = remembered = tuple(int(r) for r in rows)
        st.rerun()
    if choice == REMEMBERED and remembered:
        return np.asarray(remembered), f"the remembered selection ({len(remembered):,})"
    if choice == WHERE:
        ref, name = where_controls(obs, f"emb_ref_{cohort_id}")
        return (ref, name) if name else (None, "")
    return None, "all other samples"


def de_section(ws: Workspace, obs: pd.DataFrame, cohort_id: str, rows: np.ndarray,
               name: str, stem: str) -> None:
    st.subheader("Differential expression")
    reference, ref_name = reference_controls(obs, cohort_id, rows)
    if not ref_name:
        st.caption("Choose the value that defines the reference group.")
        return
    try:
        table, attrs = de_table(*scoped(ws, cohort_id), tuple(map(int, rows)),
                                None if reference is None else tuple(map(int, reference)))
    except GexError as err:
        st.error(esc(err))
        return
    n_genes = int(table["q"].notna().sum())
    st.caption(f"{esc(name)} ({attrs['n_selected']:,}) against {esc(ref_name)} "
               f"({attrs['n_reference']:,}): Welch's t-test per gene on "
               f"{esc(attrs['scale_note'])}; log2 FC = difference of the group means; q = "
               f"Benjamini-Hochberg over the {n_genes:,} tested genes; % expressed = share "
               "of measured samples above 0. Missing values leave only their own gene's test.")
    st.plotly_chart(volcano_figure(table, top=TOP_LABELS,
                                   title=f"{name} vs {ref_name}"),
                    key=f"emb_volcano_{cohort_id}", theme=None)
    shown = table.head(TOP_GENES)
    if (shown["symbol"] == shown.index).all():       # no symbols: do not show the ids twice
        shown = shown.drop(columns="symbol")
    st.dataframe(shown, height=420, key="emb_de_table", column_config=_de_columns())
    st.download_button("Differential expression, every gene (CSV)",
                       table.to_csv().encode(), file_name=f"{stem}_de.csv", mime="text/csv",
                       on_click="ignore", icon=":material/download:")


def _de_columns() -> dict:
    number = st.column_config.NumberColumn
    return {"log2_fc": number("log2 FC", format="%.2f"),
            "mean_selected": number("mean (selection)", format="%.2f"),
            "mean_reference": number("mean (reference)", format="%.2f"),
            "pct_selected": number("% expr. (selection)", format="%.0f"),
            "pct_reference": number("% expr. (reference)", format="%.0f"),
            "t": number("t", format="%.2f"), "p": number("p", format="%.1e"),
            "q": number("q", format="%.1e")}


# -- saving a selection as a clinical column ------------------------------------------------
def annotation_form(ws: Workspace, info, rows: np.ndarray) -> None:
    """Name the selection and store it as a new clinical column of this cohort."""
    with st.expander("Save selection as annotation", icon=":material/label:"):
        if info.owner:
            st.caption("This cohort is shared read-only (the demo is): only its owner can add "
                       "columns. To annotate it, download it (.h5ad) on the Data page and add "
                       "it as your own cohort.")
            return
        st.caption("A new clinical column of this stored cohort: the name for the selected "
                   "samples, empty for the others. Existing columns and the uploaded files are "
                   "never changed.")
        cells = st.columns([3, 1.4])
        column = cells[0].text_input("Annotation name", key=f"emb_annotation_{info.id}",
                                     max_chars=64, placeholder="e.g. cluster_A")
        if cells[1].button("Save annotation", icon=":material/save:",
                           key=f"emb_save_annotation_{info.id}", disabled=not column.strip()):
            try:
                ws.add_annotation(info.id, column, rows)
            except GexError as err:
                st.error(esc(err))
                return
            st.success(f"Saved {len(rows):,} sample(s) as column **{esc(column.strip())}**; "
                       "colour the map by it under Clinical column.")


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
    embed_offer(ws, adata, cohort_id, set())
job_panel(ws, "embed", key="embeddings")

source, params = map_controls(sources, cohort_id)
with st.spinner("Computing the map; it is stored, so this happens once per setting..."):
    coords = cohort_map(ws, cohort_id, source, params)
if coords is None:
    st.warning("This encoder has no embedding of this cohort any more; embed it again above.")
    st.stop()

colour = colour_controls(ws, adata, cohort_id, source)
axes = ("UMAP 1", "UMAP 2") if params.method == "umap" else ("PC 1", "PC 2")
fig = viz.embedding_scatter(coords, color=colour.values, color_name=colour.name,
                            classes=colour.classes, missing_name=colour.missing,
                            hover_ids=adata.obs_names, simulated=is_simulated(adata),
                            title=f"{sources[source]} · {params.method.upper()}",
                            axis_titles=axes)
fig.update_layout(height=620)
event = st.plotly_chart(fig, key=f"emb_map_{cohort_id}", on_select="rerun", theme=None,
                        selection_mode=("points", "box", "lasso"))
table = map_table(adata, coords, axes)
if colour.values is not None and colour.name not in table:   # a gene or a prediction: export it
    table[colour.name] = colour.values
stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{info.name}_{params.method}_map")
downloads(table, fig, stem)

rows, selection_name = selection_controls(adata.obs, cohort_id, event)
if len(rows):
    selected_samples(table, rows, selection_name)
    de_section(ws, adata.obs, cohort_id, rows, selection_name, stem)
    annotation_form(ws, info, rows)
else:
    st.caption("Draw a lasso or a box on the map, click a point, or select by a column's value "
               "to list those samples, compare their expression with the rest and save them as "
               "an annotation.")
if runs:
    embed_offer(ws, adata, cohort_id, {r.id for r in runs})
