"""Gene importance page: attention-derived importance of a transformer run (rollout or CLS) and,
beside it, integrated gradients toward each sample's class; per class or for chosen samples,
with a check against the planted modules on simulated cohorts and CSV export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from gexcore import viz
from gexcore.data.rules import label_columns, labelled_rows
from gexcore.errors import GexError
from gexcore.evaluate.splits import stratified_subset
from gexcore.explain import importance_table
from gexcore.explore.features import EXPRESSION, encoder_runs
from gexcore.explore.holdout import AttributionResult, holdout_attributions
from gexcore.explore.maps import stored_attention
from gexcore.explore.planted import planted_hits
from gexcore.models.encoder import Encoder
from gexcore.models.methods import methods_with
from gexcore.workspace import RunInfo, Workspace
from gexcore.workspace.sharing import DEMO_OWNER
from ui.common import cache_scope, esc, is_simulated, load_cohort, open_cohort_page, scoped

ALL = "All classes"
MODES = {"rollout": "Attention rollout (all layers)", "cls": "CLS attention (last layer)"}
SUBSET_SIZES = (60, 120, 240, 300)
SUBSET, CHOSEN = "Stratified subset", "Chosen samples"
TOP = 20


@st.cache_resource(max_entries=4, show_spinner="Loading the encoder...")
def load_encoder(root: str, run_id: str) -> Encoder:
    return Encoder.load(Workspace(root).run_dir(run_id))


@st.cache_data(max_entries=16, show_spinner="Integrated gradients on held-out samples...")
def attributions(root: str, cohort_id: str, run_id: str | None, label: str,
                 samples: tuple[int, ...] | None, max_samples: int) -> AttributionResult:
    ws = Workspace(root)
    encoder = load_encoder(root, run_id) if run_id else None
    return holdout_attributions(load_cohort(ws, cohort_id), label, encoder=encoder,
                                samples=None if samples is None else np.asarray(samples),
                                max_samples=max_samples)


def attention_scores(ws: Workspace, run_id: str, cohort_id: str, adata, mode: str,
                     rows: np.ndarray) -> np.ndarray:
    root, cohort_id, (run_id,) = cache_scope(ws, cohort_id, run_id)
    if Path(root).name == DEMO_OWNER:       # the shipped demo's: stored once for every user
        ws = Workspace(root)
    with st.spinner(f"Attention of {len(rows)} samples (stored, so this happens once)..."):
        return stored_attention(ws, run_id, cohort_id, adata, mode=mode, rows=rows,
                                load_encoder=lambda: load_encoder(str(ws.root), run_id))


def subset_size(cell, n_labelled: int, cohort_id: str) -> int:
    """Sizes the cohort can fill; a cohort under the smallest one is used whole."""
    sizes = [s for s in SUBSET_SIZES if s < n_labelled] + [n_labelled] * (n_labelled <= 300)
    if len(sizes) == 1:
        return n_labelled
    return cell.select_slider("Subset size", sizes, value=max(s for s in sizes if s <= 240),
                              key=f"imp_size_{cohort_id}",
                              format_func=lambda s: f"all {s}" if s == n_labelled else str(s))


def method_of(run: RunInfo) -> str:
    return str(run.params.get("method") or run.metrics.get("method") or "")


def chosen_rows(adata, labelled: np.ndarray, cohort_id: str) -> np.ndarray:
    """Sample ids picked here (default: the Embeddings page's selection) -> row indices."""
    ids = adata.obs_names[labelled]
    remembered = [str(s) for s in st.session_state.get("selected_samples", []) or []]
    default = [s for s in remembered if s in set(ids)][:300]
    picked = st.multiselect("Samples (up to 300)", list(ids), default=default,
                            key=f"imp_samples_{cohort_id}", max_selections=300,
                            help="Defaults to the samples selected on the Embeddings map.")
    return np.sort(adata.obs_names.get_indexer(picked))


def ranking(table: pd.DataFrame, column: str) -> pd.DataFrame:
    return table.sort_values(column, ascending=False, kind="stable", na_position="last")


def planted_note(genes, adata, group: str | None) -> None:
    if not is_simulated(adata):
        return
    hits = planted_hits(genes, adata, group, k=TOP)
    if hits is None:
        st.caption(f"Planted truth: no planted module for {esc(group)}.")
        return
    found, k, base = hits
    module = f"the planted {esc(group)} module" if group else "a planted module"
    st.caption(f"Planted truth: **{found} of the top {k}** genes are in {module} "
               f"(they are {base:.0%} of the ranked genes).")


def panel(title: str, table: pd.DataFrame, column: str, adata, group, key: str) -> None:
    st.markdown(f"**{esc(title)}**")
    ranked = ranking(table, column)
    st.plotly_chart(viz.importance_bar(ranked, value=column, top=TOP), key=key, theme=None)
    planted_note(ranked["gene"], adata, group)


def table_tab(table: pd.DataFrame, column: str, stem: str, key: str) -> None:
    ranked = ranking(table, column)
    ranked = ranked[["gene", column, *[c for c in ranked.columns if c not in ("gene", column)]]]
    st.dataframe(ranked.head(200), hide_index=True, height=360, key=key,
                 column_config={"rank": st.column_config.NumberColumn("overall rank")})
    st.download_button("All genes (CSV)", ranked.to_csv(index=False).encode(),
                       file_name=f"{stem}.csv", mime="text/csv", on_click="ignore",
                       key=f"{key}_csv", icon=":material/download:")


ws, cohort_id, adata = open_cohort_page("Gene importance")
# Runs with attention maps (the transformer's) first: only they have attention to show.
runs = {r.id: r for r in sorted(encoder_runs(ws, cohort_id),
                                key=lambda r: method_of(r) not in methods_with("has_attention"))}
labels = label_columns(adata.obs)
if not labels:
    st.info("Gene importance is computed per class; this cohort has no label column with 2-50 "
            "classes. Choose one on the Data page.")
    st.stop()

cells = st.columns([3, 2, 2])
picked = cells[0].selectbox("Encoder", [*runs, EXPRESSION], key=f"imp_run_{cohort_id}",
                            format_func=lambda r: "None (expression only)" if r == EXPRESSION
                            else f"{runs[r].name} ({method_of(runs[r])})")
run_id = None if picked == EXPRESSION else picked
label = cells[1].selectbox("Label column", labels, key=f"imp_label_{cohort_id}")
values = adata.obs[label]
labelled, _ = labelled_rows(adata.obs, label)
cells = st.columns([3, 2, 2])
which = cells[0].radio("Samples", [SUBSET, CHOSEN], horizontal=True, key="imp_which",
                       help="A class-stratified subset gives per-class importance; chosen "
                            "samples explain just those.")
if which == SUBSET:
    size = subset_size(cells[1], int(labelled.sum()), cohort_id)
    rows = np.flatnonzero(labelled)[stratified_subset(values[labelled], size, seed=0)]
else:
    size = 300
    rows = chosen_rows(adata, labelled, cohort_id)
    if not len(rows):
        st.info("Pick samples above, or select them with the lasso on the Embeddings page.")
        st.stop()
groups = values.astype(str).to_numpy()[rows]
classes = sorted(set(groups))
group = cells[2].selectbox("Class", [ALL, *classes], key=f"imp_class_{cohort_id}_{label}")
column = "importance" if group == ALL else group
group = None if group == ALL else group
st.caption(f"{len(rows):,} samples ({len(classes)} classes of {esc(label)}). Bars: the mean over "
           + ("all these samples." if group is None else f"the {esc(group)} samples."))

attention_table = None
left, right = st.columns(2)
with left:
    run = runs.get(run_id)
    if run is None or method_of(run) not in methods_with("has_attention"):
        st.info("Attention importance needs a transformer encoder; "
                + ("none is selected." if run is None else
                   f"{esc(run.name)} is an MLP ({method_of(run)}). Integrated gradients go "
                   "through it instead (right)."))
    else:
        mode = st.radio("Attention", list(MODES), format_func=MODES.get, horizontal=True,
                        key="imp_mode")
        try:
            scores = attention_scores(ws, run.id, cohort_id, adata, mode, rows)
        except (GexError, ValueError) as err:
            st.error(esc(err))
        else:
            attention_table = importance_table(scores, load_encoder(str(ws.root), run.id).genes,
                                               groups=groups)
            panel(f"{MODES[mode]}: where the model looks", attention_table, column, adata,
                  group, "imp_attention_bar")
            st.caption("Attention is the share of the CLS token's attention each gene gets: "
                       "where the model looks, not why it decides. This encoder is pretrained "
                       "without labels (restoring masked values), so its attention need not "
                       "single out the genes that separate classes; rollout (through every "
                       "layer) tracks planted modules once a transformer is fine-tuned, "
                       "last-layer CLS attention does not. The gradients on the right explain "
                       "a class decision.")
with right:
    try:
        scope = scoped(ws, cohort_id, run_id) if run_id else (*scoped(ws, cohort_id), None)
        result = attributions(*scope, label,
                              None if which == SUBSET else tuple(int(r) for r in rows), size)
    except GexError as err:
        st.error(esc(err))
        result = None
    if result is not None:
        ig_table = importance_table(result.scores, result.genes, groups=result.labels)
        ig_column = column if column in ig_table else "importance"
        panel("Integrated gradients toward each sample's class", ig_table, ig_column, adata,
              group, "imp_ig_bar")
        trained = (f" {result.n_in_train} of them were training samples of the head."
                   if result.n_in_train else "")
        st.caption(f"Method: {esc(result.method)}. Head fitted on the training samples of a "
                   f"patient-disjoint split; {len(result.rows):,} samples explained "
                   f"({'held-out' if which == SUBSET else 'chosen'}).{trained} Positive = "
                   "evidence for the sample's own class.")

st.subheader("Top genes")
tabs = st.tabs(["Integrated gradients", "Attention"])
with tabs[0]:
    if result is not None:
        table_tab(ig_table, ig_column, f"integrated_gradients_{label}_{group or 'all'}",
                  "imp_ig_table")
with tabs[1]:
    if attention_table is not None:
        table_tab(attention_table, column, f"attention_{mode}_{label}_{group or 'all'}",
                  "imp_attention_table")
    else:
        st.caption("No attention for this encoder.")
