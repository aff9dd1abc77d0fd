"""Data page: the current cohort's report; add a cohort from a demo or uploaded files, say which
clinical columns are the label, survival, batch and patient, and save it to the workspace."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import streamlit as st
from anndata import AnnData

from gexcore import keys
from gexcore.data import list_demos
from gexcore.data.upload import read_uploaded
from gexcore.errors import GexError
from gexcore.models.methods import methods_with
from gexcore.workspace import ImputeJob, Workspace, submit
from gexcore.workspace.columns import ColumnMapping, apply_mapping, guess_mapping
from gexcore.workspace.impute_job import gap
from ui.common import (
    current_cohort_id,
    current_workspace,
    demo_cohort,
    esc,
    job_panel,
    load_cohort,
    select_cohort,
    show_report,
)
from ui.sharing import share_panel

CURRENT, ADD = "Current cohort", "Add a cohort"
NONE = "(none)"
ROLES = {"label": "Label (what to predict)", "time": "Survival time", "event": "Survival event",
         "batch": "Batch", "patient": "Patient id"}
ROLE_HELP = {
    "label": "Classes for the classification head, e.g. cancer type or tissue.",
    "time": "Time to event or last follow-up.",
    "event": "1 / dead / '1:DECEASED' = event observed; 0 / alive = censored.",
    "batch": "Processing batch, plate or centre; maps can be coloured by it.",
    "patient": "Samples of one patient always land on the same side of a train/test split.",
}


@st.cache_resource(show_spinner="Reading the uploaded files...", max_entries=4)
def _read(expression: tuple[str, bytes], clinical: tuple[str, bytes] | None,
          options: tuple[tuple[str, str | None], ...]) -> AnnData:
    """Parse an upload once per distinct (files, options), not on every rerun; read-only."""
    return read_uploaded(expression, clinical, **dict(options))


def _save(adata: AnnData, key: str) -> None:
    """Form callback: map the columns, store the cohort, make it current (runs before the
    sidebar picker is drawn, so the picker may change)."""
    state = st.session_state
    try:
        mapping = ColumnMapping(**{role: None if state[f"map_{role}_{key}"] == NONE
                                   else state[f"map_{role}_{key}"] for role in ROLES})
        cohort_id = current_workspace().add_cohort(apply_mapping(adata, mapping),
                                                   state[f"name_{key}"])
    except GexError as err:
        state["data_save_error"] = str(err)
        return
    select_cohort(cohort_id)
    state["data_saved"] = cohort_id
    state["data_tab"] = CURRENT


def _column_label(adata: AnnData, column: str) -> str:
    survival = adata.uns.get(keys.UNS_SURVIVAL, {})
    if column == keys.OBS_TIME and survival.get("time_column") not in (None, keys.OBS_TIME):
        return f"time (read from {survival['time_column']}, {survival.get('time_unit', '?')})"
    if column == keys.OBS_EVENT and survival.get("event_column") not in (None, keys.OBS_EVENT):
        return f"event (read from {survival['event_column']})"
    return column


def save_form(adata: AnnData, key: str, name: str) -> None:
    """Column mapping (defaults: what the reader detected) + a name -> Save to workspace."""
    guess = guess_mapping(adata)
    columns = [NONE, *map(str, adata.obs.columns)]
    with st.form(f"save_{key}", border=True):
        st.subheader("Save to workspace")
        st.caption("Say which clinical columns the analyses should use; the defaults are what "
                   "GexScope detected. The saved cohort becomes the current cohort.")
        st.text_input("Cohort name", value=name, key=f"name_{key}", max_chars=80)
        cells = [*st.columns(3), *st.columns(3)[:2]]
        for cell, role in zip(cells, ("label", "patient", "batch", "time", "event")):
            default = getattr(guess, role)
            cell.selectbox(ROLES[role], columns, index=columns.index(default) if default else 0,
                           key=f"map_{role}_{key}", help=ROLE_HELP[role],
                           format_func=lambda c: _column_label(adata, c))
        st.form_submit_button("Save to workspace", type="primary", icon=":material/save:",
                              on_click=_save, args=(adata, key))


def current_tab(ws) -> None:
    cohort_id = current_cohort_id(ws)
    info = ws.cohort(cohort_id)
    if st.session_state.pop("data_saved", None) == cohort_id:
        st.success(f"Saved **{esc(info.name)}** to your workspace; it is now the current cohort. "
                   "Next: pretrain an encoder on it.", icon=":material/check_circle:")
        st.page_link("views/train.py", label="Go to Train", icon=":material/model_training:")
    st.subheader(esc(info.name))
    st.caption(f"{info.n_obs:,} samples x {info.n_vars:,} genes · added "
               f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(info.created))} · switch "
               "cohorts in the sidebar, add one under **Add a cohort**.")
    adata = load_cohort(ws, cohort_id)
    downloads(ws, cohort_id, adata, info.name)
    share_panel(ws, "cohort", cohort_id, info.label)
    fill_genes(ws, cohort_id, adata)
    show_report(adata)


def downloads(ws: Workspace, cohort_id: str, adata: AnnData, name: str) -> None:
    """The stored cohort as a samples x genes CSV or as .h5ad (built when clicked)."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    cells = st.columns([1, 1, 3])
    cells[0].download_button("Expression (CSV)", lambda: adata.to_df().to_csv().encode(),
                             file_name=f"{stem}.csv", mime="text/csv", on_click="ignore",
                             icon=":material/download:", key=f"dl_csv_{cohort_id}")
    cells[1].download_button("Cohort (.h5ad)", lambda: ws.cohort_path(cohort_id).read_bytes(),
                             file_name=f"{stem}.h5ad", mime="application/octet-stream",
                             on_click="ignore", icon=":material/download:",
                             key=f"dl_h5ad_{cohort_id}")


def _start_impute(ws: Workspace, job: ImputeJob) -> None:
    try:
        submit(ws, job)
    except GexError as err:
        st.session_state["impute_error"] = str(err)


def fill_genes(ws: Workspace, cohort_id: str, adata: AnnData) -> None:
    """A finished transformer or VIME run fills the genes this cohort lacks (an impute job);
    the result is a new cohort, this one stays as it is."""
    runs = {r.id: r for r in ws.runs(kind="pretrain", status="done")
            if r.params.get("method") in methods_with("can_restore")}
    latest = next((r for r in ws.runs(kind="impute") if r.params.get("cohort") == cohort_id),
                  None)
    if latest is not None and latest.active:      # no 2 s fragment on the page otherwise
        job_panel(ws, "impute", key=cohort_id)
    if latest is not None and latest.status == "failed":
        st.error(esc(f"{latest.name} failed: {latest.error}"))
    elif latest is not None and latest.status == "done":
        filled = {c.id: c for c in ws.cohorts()}.get(latest.metrics.get("cohort"))
        if filled is not None:
            st.button(f"Open {esc(filled.name)} ({latest.metrics['n_cells']:,} cells filled)",
                      key=f"open_{latest.id}", on_click=select_cohort, args=(filled.id,),
                      icon=":material/open_in_new:")
    with st.expander("Fill missing genes with an encoder", icon=":material/healing:"):
        if error := st.session_state.pop("impute_error", None):
            st.error(esc(error))
        if not runs:
            st.caption("A transformer or VIME encoder predicts genes from the measured ones; "
                       "pretrain one on the Train page first.")
            return
        run_id = st.selectbox("Encoder", list(runs), key=f"impute_run_{cohort_id}",
                              format_func=lambda i: runs[i].name)
        g = gap(ws, run_id, adata)
        if g.empty:
            st.caption(f"This cohort has all {g.model_genes:,} genes of that encoder and no "
                       "empty cells among them: nothing to fill.")
            return
        if not g.enough_overlap:
            st.warning(f"This cohort has only {g.model_genes - g.missing_genes:,} of the "
                       f"encoder's {g.model_genes:,} genes; filling needs at least half of "
                       "them measured. Pick an encoder pretrained on a similar panel.")
            return
        st.caption(f"{g.missing_genes:,} of the encoder's {g.model_genes:,} genes are missing "
                   f"here and {g.empty_cells:,} of its cells are empty. They are predicted from "
                   "the measured genes, in this cohort's units, and saved as a new cohort "
                   "(layers['imputed'] marks them); measured values are kept.")
        st.button("Fill genes", type="primary", icon=":material/play_arrow:",
                  key=f"impute_start_{cohort_id}", on_click=_start_impute,
                  disabled=latest is not None and latest.active,
                  args=(ws, ImputeJob(cohort=cohort_id, run=run_id)))


def demo_source() -> tuple[AnnData, str, str]:
    demos = {d.name: d for d in list_demos()}
    name = st.selectbox("Demo cohort", list(demos), key="demo_name",
                        format_func=lambda n: demos[n].label)
    st.caption(demos[name].description)
    return demo_cohort(name), f"demo_{name}", demos[name].label


def upload_source() -> tuple[AnnData, str, str] | None:
    expression = st.file_uploader(
        "Expression matrix (CSV/TSV/TXT, gzip, Parquet, h5ad, GCT, GDC STAR counts, "
        "GEO series matrix)", key="upload_expression")
    clinical = st.file_uploader("Clinical table (optional: CSV/TSV, cBioPortal, Xena, GDC)",
                                key="upload_clinical")
    with st.expander("Reader options"):
        orientation = st.selectbox("Orientation", ["auto", "genes_by_samples",
                                                   "samples_by_genes"])
        sample_column = st.text_input("Clinical id column (blank: detect)") or None
        time_column = st.text_input("Survival time column (blank: detect)") or None
        event_column = st.text_input("Survival event column (blank: detect)") or None
    if expression is None:
        st.info("Upload an expression file (samples x genes or genes x samples) to see its "
                "validation report.", icon=":material/upload_file:")
        return None
    options = (("orientation", orientation), ("sample_column", sample_column),
               ("time_column", time_column), ("event_column", event_column))
    adata = _read((expression.name, expression.getvalue()),
                  (clinical.name, clinical.getvalue()) if clinical is not None else None,
                  options)
    # A new file or reader option is a new cohort: fresh column-mapping defaults.
    key = "upload_" + "_".join(f"{zlib.crc32(repr(part).encode()):08x}" for part in
                               (expression.file_id, clinical and clinical.file_id, options))
    return adata, key, Path(expression.name).name.split(".")[0]


def add_tab() -> None:
    if error := st.session_state.pop("data_save_error", None):
        st.error(esc(error))
    source = st.radio("Cohort source", ["Upload files", "Demo cohort"], horizontal=True,
                      key="data_source")
    try:
        picked = demo_source() if source == "Demo cohort" else upload_source()
    except GexError as err:
        st.error(esc(err))
        return
    if picked is None:
        return
    adata, key, name = picked
    show_report(adata)
    save_form(adata, key, name)


st.title("Data")
ws = current_workspace()
current, add = st.tabs([CURRENT, ADD], key="data_tab", on_change="rerun")
if current.open:
    with current:
        current_tab(ws)
if add.open:
    with add:
        add_tab()
