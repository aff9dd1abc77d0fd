"""Train page: pretrain an encoder on the current cohort as a background job, watch its progress
and loss live, cancel it, and look back at every run (status, metrics, loss curve, errors)."""

from __future__ import annotations

from dataclasses import fields

import streamlit as st

from gexcore import viz
from gexcore.models.methods import METHODS as METHOD_NAMES
from gexcore.models.methods import method_info
from gexcore.train.config import TrainConfig
from gexcore.workspace import PretrainJob, RunInfo, Workspace, cancel
from gexcore.workspace.losslog import loss_history
from gexcore.workspace.pretrain import DEFAULT_TOP_GENES
from ui.common import (
    current_cohort_id,
    current_workspace,
    duration,
    esc,
    job_panel,
    runs_frame,
    start_job,
)
from ui.evaluate_form import evaluate_form
from ui.sharing import share_panel

METHODS = {m: method_info(m).title for m in METHOD_NAMES}
METHOD_NOTES = """
| Method | What it learns from | Speed |
|---|---|---|
| **Masked-expression transformer** (GexBERT-style) | hides some genes of each sample and restores their values; also gives gene attention and imputation | slowest; a GPU helps |
| **SCARF** | tells a sample apart from others after 30% of its genes are swapped for random values of those genes | fast on a CPU |
| **VIME** | finds and repairs masked genes | fast on a CPU |
| **BYOL** | matches two corrupted views of a sample, with a slowly updated teacher | fast on a CPU |

Frozen embeddings are not always better than a model trained from scratch on the labels; the
Predictions page compares them honestly with baselines.
"""
PRESETS = {"auto": "auto (base on a GPU, small on the CPU)", "small": "small", "base": "base"}
JOB = {f.name: f.default for f in fields(PretrainJob)}     # the form starts at the job's defaults


def pretrain_form(ws: Workspace, cohort_id: str) -> None:
    """Method and settings -> a PretrainJob submitted to a worker process."""
    info, train = ws.cohort(cohort_id), TrainConfig()
    with st.form("pretrain_form", border=True):
        st.markdown(f"**Cohort:** {esc(info.label)} · pick another in the sidebar")
        left, right = st.columns(2)
        method = left.selectbox("Method", list(METHODS), list(METHODS).index(JOB["method"]),
                                format_func=METHODS.get, key="train_method")
        preset = right.selectbox("Model size", list(PRESETS), list(PRESETS).index(JOB["preset"]),
                                 format_func=PRESETS.get, key="train_preset")
        cells = st.columns(3)
        epochs = cells[0].number_input("Epochs", 1, 1000, train.epochs, key="train_epochs",
                                       help="Passes over the cohort; training stops early "
                                            "when the validation loss stops improving.")
        seed = cells[1].number_input("Seed", 0, 2**31 - 1, train.seed, key="train_seed",
                                     help="Same seed and settings -> the same model.")
        top_genes = cells[2].number_input(
            "Top-variance genes", 0, 100_000, value=JOB["top_genes"], key="train_top_genes",
            placeholder=f"method default ({DEFAULT_TOP_GENES['transformer']} for the "
                        "transformer, all for MLPs)",
            help="Train on the most variable genes only; 0 = all genes.")
        name = st.text_input("Run name (optional)", key="train_name",
                             placeholder=f"<method> on {info.name}")
        with st.expander("What do the methods do?"):
            st.markdown(METHOD_NOTES)
        submitted = st.form_submit_button("Start pretraining", type="primary",
                                          icon=":material/play_arrow:")
    if submitted:
        job = PretrainJob(cohort=cohort_id, method=method, preset=preset, name=name.strip(),
                          top_genes=None if top_genes is None else int(top_genes),
                          train=TrainConfig(epochs=int(epochs), seed=int(seed)))
        start_job(ws, job, "it keeps running if you leave this page or close the browser.")


def live_detail(run: RunInfo) -> None:
    """Under a running job's progress bar: its loss so far and a Cancel button."""
    ws = current_workspace()
    history = loss_history(ws, run)
    if history and history.get("step_loss"):
        fig = viz.loss_curve(history, title="Loss so far")
        fig.update_layout(height=320, margin={"t": 50, "b": 45})
        st.plotly_chart(fig, key=f"live_loss_{run.id}", theme=None)
    elif run.status == "running":
        st.caption("The loss curve appears with the first progress report.")
    st.button("Cancel", key=f"cancel_{run.id}", icon=":material/stop_circle:",
              on_click=cancel, args=(ws, run.id), disabled=run.cancel_requested)


def run_detail(ws: Workspace, run: RunInfo) -> None:
    """One run: its error, or its headline numbers and loss curve; params and log below."""
    st.markdown(f"**{esc(run.name)}** — {run.status}")
    if run.status == "failed":
        st.error(f"**{esc(run.name)}** failed: {esc(run.error)}", icon=":material/error:")
    elif run.status == "cancelled":
        st.warning(f"**{esc(run.name)}** was cancelled.", icon=":material/stop_circle:")
    elif run.kind == "pretrain":
        m = run.metrics
        cells = st.columns(4)
        best = m.get("best_val_loss")
        cells[0].metric("Best validation loss", f"{best:.4g}" if best is not None else "n/a")
        cells[1].metric("Epochs", m.get("epochs", "n/a"))
        cells[2].metric("Embedding size", m.get("dim", "n/a"))
        cells[3].metric("Training time", duration(m["seconds"]) if m.get("seconds") else "n/a",
                        help="The training loop alone; the job time in the table adds the "
                             "worker's start-up.")
        if history := loss_history(ws, run):
            st.plotly_chart(viz.loss_curve(history, title=f"Loss of {run.name}"),
                            key=f"loss_{run.id}", theme=None)
    elif run.metrics:
        st.json(run.metrics, expanded=False)
    if run.status == "done":
        share_panel(ws, "run", run.id, run.name)
    with st.expander("Settings and log"):
        st.json(run.params, expanded=True)
        st.code(ws.read_log(run.id, max_chars=6000) or "(no log)", language=None)


def run_history(ws: Workspace, kind: str) -> None:
    """Finished runs of `kind`, newest first, then the details of the one picked (running ones
    live in the panel above, which reruns the page when they finish)."""
    runs = ws.runs(kind=kind, status=("done", "failed", "cancelled"))
    if not runs:
        st.caption(f"No finished {kind} runs yet.")
        return
    cohorts = {c.id: c.name for c in ws.cohorts()}
    st.dataframe(runs_frame(runs, cohorts), hide_index=True, key=f"runs_table_{kind}",
                 column_config={"error": st.column_config.TextColumn("error", width="medium"),
                                "id": st.column_config.TextColumn("run id"),
                                "job time": st.column_config.TextColumn(
                                    "job time", help="From the job's start to its end, with "
                                    "the worker's start-up (imports, reading the cohort); "
                                    "a run's details show the training time alone.")})
    by_id = {r.id: r for r in runs}
    # Keyed by the newest run, so a new run shows its details at once.
    picked = st.selectbox("Run details", list(by_id), key=f"run_detail_{kind}_{runs[0].id}",
                          format_func=lambda i: f"{by_id[i].name} ({i})")
    run_detail(ws, by_id[picked])


st.title("Train")
ws = current_workspace()
pretrain_tab, evaluate_tab = st.tabs(["Pretrain an encoder", "Evaluate heads"])
with pretrain_tab:
    pretrain_form(ws, current_cohort_id(ws))
    job_panel(ws, "pretrain", live_detail, key="train")
    st.subheader("Finished runs")
    run_history(ws, "pretrain")
with evaluate_tab:
    # Heads and baselines over label fractions ("evaluate" jobs); reports: Predictions page.
    evaluate_form(ws, current_cohort_id(ws), key="train_evaluate")
    st.subheader("Evaluation runs")
    run_history(ws, "evaluate")
