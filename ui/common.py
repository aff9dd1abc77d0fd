"""Helpers shared by pages: workspace, current cohort, cached loads, job status, reports.

Durable state lives in the workspace on disk; `st.session_state` holds UI choices only.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import streamlit as st
from anndata import AnnData

from gexcore import keys
from gexcore.data import ValidationReport, load_demo
from gexcore.data.validate import describe
from gexcore.explore.features import EXPRESSION, EXPRESSION_TOP_GENES
from gexcore.workspace import RunInfo, Workspace, open_workspace, recover
from gexcore.workspace.demo import ensure_demo
from gexcore.workspace.identity import default_base
from ui.auth import current_identity

ROOT = Path(__file__).resolve().parents[1]
COHORT_KEY = "cohort_id"            # session_state: the cohort every page works on


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")


def esc(text: object) -> str:
    """`text` as literal characters in Streamlit markdown (captions, messages, labels): a user's
    `![x](http://host/y.png)` shows as typed and makes no browser fetch anything."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def workspace_base() -> Path:
    """Where workspaces live: $GEX_WORKSPACE, else ./workspace next to app.py."""
    return default_base()


@st.cache_resource(show_spinner="Opening workspace...")
def _open(base: str, user: str) -> tuple[Workspace, str, list[str]]:
    """Once per server process and user: recover interrupted jobs, add the demo."""
    ws = open_workspace(base, user)
    recover(ws)
    cohort_id, run_ids = ensure_demo(ws)
    return ws, cohort_id, run_ids


def current_workspace() -> Workspace:
    """The signed-in user's workspace (`ui.auth.current_identity`; "default" in local mode).
    Nothing in the URL chooses it."""
    return _open(str(workspace_base()), current_identity().user)[0]


def demo_ids(ws: Workspace) -> tuple[str, list[str]]:
    """(demo cohort id, shipped demo run ids) of this workspace."""
    return _open(str(ws.root.parent), ws.user)[1:]


def cache_scope(ws: Workspace, cohort_id: str, *sources: str) -> tuple[str, str, tuple[str, ...]]:
    """(workspace root, cohort id, sources) to compute a cached result of a cohort in: the
    owner's workspace when the cohort and every source run are one owner's, shared with `ws`
    (the demo: computed once for every user, not once per user), else `ws` itself. Sources
    that are not runs (EXPRESSION) pass through."""
    root, local = ws.locate("cohort", cohort_id)
    runs = [ws.locate("run", s) if s != EXPRESSION else (root, s) for s in sources]
    if root == ws.root or any(r != root for r, _ in runs):
        return str(ws.root), cohort_id, tuple(sources)
    return str(root), local, tuple(s for _, s in runs)


def scoped(ws: Workspace, cohort_id: str, *sources: str) -> tuple[str, ...]:
    """`cache_scope` flattened for a cached function's leading (root, cohort, *sources)."""
    root, cohort, local = cache_scope(ws, cohort_id, *sources)
    return (root, cohort, *local)


def cohort_key(ws: Workspace, cohort_id: str) -> str:
    """What a cache of a cohort's results is keyed by: its stored file (the owner's for a
    shared cohort, so the demo is computed once for every user, not once per user) and that
    file's version. Only a workspace allowed to read the cohort can compute the key."""
    path = ws.cohort_path(cohort_id)
    return f"{path}@{path.stat().st_mtime_ns}"


@st.cache_resource(show_spinner="Loading cohort...", max_entries=8)
def _load(key: str, _ws: Workspace, _cohort_id: str) -> AnnData:
    return _ws.load_cohort(_cohort_id)


def load_cohort(ws: Workspace, cohort_id: str) -> AnnData:
    """A stored cohort, cached across reruns, sessions and the users it is shared with; treat
    it as read-only. A rewritten file (a saved annotation) is read again."""
    return _load(cohort_key(ws, cohort_id), ws, cohort_id)


@st.cache_resource(show_spinner="Loading demo cohort...")
def demo_cohort(name: str) -> AnnData:
    """Demo cohorts are deterministic, so one copy serves every session."""
    return load_demo(name)


def current_cohort_id(ws: Workspace) -> str:
    """The cohort pages work on: this session's choice, else the URL's (a bookmark), else the
    demo cohort."""
    known = {c.id for c in ws.cohorts()}
    for chosen in (st.session_state.get(COHORT_KEY), st.query_params.get("cohort")):
        if chosen in known:
            return chosen
    return demo_ids(ws)[0]


def cohort_picker(ws: Workspace) -> None:
    """Sidebar select box over the workspace's cohorts."""
    cohorts = {c.id: c for c in ws.cohorts()}
    current = current_cohort_id(ws)
    ids = list(cohorts)
    chosen = st.selectbox("Cohort", ids, index=ids.index(current), key=COHORT_KEY,
                          format_func=lambda i: cohorts[i].label)     # shows who shared it
    asked = st.query_params.get("cohort")
    if asked is not None and asked not in cohorts:
        st.caption(f"No cohort '{esc(asked)}' here; showing {esc(cohorts[chosen].name)}.")
    if asked != chosen:
        st.query_params["cohort"] = chosen


@st.fragment(run_every=2)
def job_sidebar(ws: Workspace) -> None:
    """Active jobs with their progress, a queued one's place in the server's queue and when it
    should start; refreshed every 2 s without rerunning the page. Each refresh is also a
    dispatcher pass: a dead or hung worker shows as failed, and the next job starts."""
    from gexcore.workspace import queue_position

    recover(ws)
    active = ws.runs(status=("queued", "running"))
    if not active:
        st.caption("No jobs running.")
        return
    st.markdown("**Jobs**")
    for run in active:
        if run.status == "queued":
            position, seconds = queue_position(ws.root.parent, run.id, user=ws.user)
            when = ("start time unknown" if seconds is None
                    else f"starts in ~{duration(seconds)}")
            text = (f"{run.label}: number {position} in the queue, {when}" if position
                    else f"{run.label}: starting")
        else:
            message = run.progress.get("message", "") if run.progress else ""
            text = f"{run.label}: {run.status} {message}".strip()
        st.progress(run.fraction, text=esc(text))


def show_report(adata: AnnData) -> None:
    """Headline numbers, the validation report and the clinical table of a loaded cohort."""
    prov = adata.uns.get(keys.UNS_PROVENANCE, {})
    if prov.get("simulated"):
        simulated_banner()
    stored = adata.uns.get(keys.UNS_VALIDATION)
    report = (ValidationReport(**stored) if stored else     # a cohort built through the API
              describe(adata, source=str(prov.get("source", "")), format="stored"))
    cols = st.columns(4)
    cols[0].metric("Samples", f"{report.n_samples:,}")
    cols[1].metric("Genes", f"{report.n_genes:,}")
    cols[2].metric("Scale", report.scale)
    cols[3].metric("Missing", f"{report.missing_fraction:.2%}")
    for warning in report.warnings:
        st.warning(esc(warning))
    st.subheader("Validation report")
    st.code("\n".join(report.lines()), language=None)
    st.subheader("Samples")
    st.dataframe(adata.obs.head(200), height=260)
    if attribution := prov.get("attribution"):
        st.caption(esc(attribution))


def open_cohort_page(title: str) -> tuple[Workspace, str, AnnData]:
    """Title, workspace, current cohort (loaded) and the simulated banner: every cohort page's
    opening lines."""
    st.title(title)
    ws = current_workspace()
    cohort_id = current_cohort_id(ws)
    adata = load_cohort(ws, cohort_id)
    if is_simulated(adata):
        simulated_banner()
    return ws, cohort_id, adata


def simulated_banner() -> None:
    st.warning("**Simulated data** — generated by the GexScope simulator; not real patients.",
               icon=":material/science:")


def is_simulated(adata: AnnData) -> bool:
    return bool(adata.uns.get(keys.UNS_PROVENANCE, {}).get("simulated", False))


# -- added for the Data / Train / Embeddings pages ---------------------------------------------
_STATUS_ICONS = {"queued": "… queued", "running": "● running", "done": "✓ done",
                 "failed": "✗ failed", "cancelled": "■ cancelled"}


def select_cohort(cohort_id: str) -> None:
    """Make `cohort_id` the current cohort; call from a widget callback (before the sidebar
    picker is drawn), never from the page body."""
    st.session_state[COHORT_KEY] = cohort_id


def duration(seconds: float) -> str:
    """'<1 s', '42 s', '3 min 05 s', '1 h 02 min'."""
    s = round(seconds)
    if s < 1:
        return "<1 s"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def runs_frame(runs: list[RunInfo], cohort_names: dict[str, str] | None = None) -> pd.DataFrame:
    """One display row per run: name, cohort, status, started, job time (queue start to end,
    with the worker's start-up), headline metrics, error."""
    names = cohort_names or {}
    rows = []
    for run in runs:
        cohort = str(run.params.get("cohort") or "")
        numbers = {k: v for k, v in run.metrics.items()          # the time is its own column
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seconds"}
        rows.append({
            "run": run.name, "cohort": names.get(cohort, cohort),
            "status": _STATUS_ICONS.get(run.status, run.status),
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started or
                                                                           run.created)),
            "job time": (duration(run.elapsed_s)               # not for registered runs
                         if run.started and run.finished != run.started else ""),
            "metrics": " · ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v:,}"
                                  for k, v in numbers.items()),
            "error": run.error, "id": run.id})
    return pd.DataFrame(rows, columns=["run", "cohort", "status", "started", "job time",
                                       "metrics", "error", "id"])


def progress_text(run: RunInfo) -> str:
    """'epoch 3/10 · step 45/210 · loss 0.812 · ~1 min 10 s left' from the run's progress."""
    p = run.progress or {}
    if run.status == "queued":
        return "queued: waiting for a free job slot"
    parts = []
    if p.get("epochs"):
        parts.append(f"epoch {p.get('epoch', 0)}/{p['epochs']}")
    if p.get("total_steps"):
        parts.append(f"step {p.get('step', 0):,}/{p['total_steps']:,}")
    if isinstance(p.get("loss"), (int, float)):
        parts.append(f"loss {p['loss']:.4g}")
    if isinstance(p.get("eta_s"), (int, float)) and p["eta_s"] > 0:
        parts.append(f"~{duration(p['eta_s'])} left")
    if p.get("message"):
        parts.append(str(p["message"]))
    if run.cancel_requested:
        parts.append("cancelling...")
    return " · ".join(parts) or "starting..."


def start_job(ws: Workspace, job, then: str) -> str | None:
    """Queue a job from a form: its run id, or None after showing why it was refused (a
    limit, bad settings). `then` says where its result will appear."""
    from gexcore.errors import GexError
    from gexcore.workspace import submit

    try:
        run_id = submit(ws, job)
    except GexError as err:
        st.error(esc(err))
        return None
    st.success(f"Started **{esc(ws.run(run_id).name)}** in the background; {then}",
               icon=":material/rocket:")
    return run_id


@st.fragment(run_every=2)
def job_panel(ws: Workspace, kind: str, detail=None, *, key: str = "") -> None:
    """Active runs of `kind` with a progress bar (and `detail(run)` under each); reruns the
    whole page once one of them finishes, so tables and pickers below catch up."""
    active = ws.runs(kind=kind, status=("queued", "running"))
    state_key = f"_active_{kind}_{key}"
    before = set(st.session_state.get(state_key, ()))
    st.session_state[state_key] = tuple(r.id for r in active)
    if before - {r.id for r in active}:
        st.rerun()
    for run in active:
        with st.container(border=True):
            st.markdown(f"**{esc(run.name)}** — {run.status}")
            st.progress(run.fraction, text=progress_text(run))
            if detail is not None:
                detail(run)


def selected_rows(event) -> list[int]:
    """Row indices (the points' `customdata`) chosen on a `viz` scatter shown with
    `st.plotly_chart(..., on_select="rerun")`; [] when nothing is selected."""
    points = event.selection.get("points", []) if event is not None else []
    rows = set()
    for point in points:
        data = point.get("customdata")
        if data is not None:
            rows.add(int(data[0] if isinstance(data, (list, tuple)) else data))
    return sorted(rows)


# -- feature sources (gexcore.explore.features) as the prediction pages show them ----------
def source_name(runs: dict[str, RunInfo | None], source: str) -> str:
    run = runs[source]
    return "Expression (no encoder)" if run is None else f"{run.name} · embedding"


def source_note(run: RunInfo | None, cohort_id: str) -> str:
    if run is None:
        return (f"Features: normalised expression (top {EXPRESSION_TOP_GENES:,} variable genes), "
                "normaliser fitted on the training samples only.")
    seen = ("pretrained on this cohort without labels, test samples included (transductive)"
            if run.params.get("cohort") == cohort_id else "pretrained on another cohort")
    return f"Features: the embedding of **{esc(run.name)}**, {seen}; labels never reach it."
