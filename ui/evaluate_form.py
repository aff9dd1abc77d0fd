"""The form that starts an evaluation job (SSL encoders vs baselines over label fractions) and
the live progress of running ones; used on the Predictions and Train pages."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from gexcore.data.rules import label_columns
from gexcore.evaluate.config import ALL_FRACTIONS, QUICK_EVAL, EvalConfig
from gexcore.models.methods import method_info
from gexcore.workspace import EvaluateJob, RunInfo, Workspace, cancel
from ui.common import current_workspace, esc, job_panel, load_cohort, start_job

TASKS = {"classification": "Classification (a label column)",
         "survival": "Survival (obs time / event)",
         "imputation": "Imputation (hide random values, restore them)",
         "imputation_genes": "Imputation of whole genes (a smaller panel)"}
METHODS = {m: method_info(m).title for m in EvalConfig().methods}


def evaluate_form(ws: Workspace, cohort_id: str, *, key: str = "evaluate") -> None:
    """Task, label, methods, label fractions, seeds and epochs -> an EvaluateJob in a worker;
    below it, the progress of evaluation jobs (refreshed every 2 s) with a Cancel button."""
    info, start = ws.cohort(cohort_id), QUICK_EVAL         # the form's starting values
    labels = label_columns(load_cohort(ws, cohort_id).obs)
    with st.form(f"{key}_form", border=True):
        st.markdown(f"**Cohort:** {esc(info.label)}")
        left, right = st.columns(2)
        task = left.selectbox("Task", list(TASKS), format_func=TASKS.get, key=f"{key}_task")
        label = right.selectbox("Label column (classification)", labels or [None],
                                key=f"{key}_label")
        methods = st.multiselect("SSL methods (baselines always run: PCA + linear, raw-feature "
                                 "linear, MLP from scratch, random-init encoder)",
                                 list(METHODS), default=list(start.methods),
                                 format_func=METHODS.get,
                                 key=f"{key}_methods")
        fractions = st.multiselect("Labelled fractions of the training samples",
                                   list(ALL_FRACTIONS), default=list(start.fractions),
                                   format_func=lambda f: f"{f:.0%}", key=f"{key}_fractions")
        cells = st.columns(4)
        seeds = cells[0].number_input("Seeds (splits)", 1, 10, start.seeds, key=f"{key}_seeds")
        pretrain_epochs = cells[1].number_input("Pretraining epochs", 1, 500,
                                                start.pretrain_epochs,
                                                key=f"{key}_pretrain_epochs")
        finetune_epochs = cells[2].number_input("Fine-tuning epochs", 1, 500,
                                                start.finetune_epochs,
                                                key=f"{key}_finetune_epochs")
        finetune = cells[3].checkbox("Fine-tune end to end", start.finetune, key=f"{key}_finetune",
                                     help="Also train each encoder with its head; the gains of "
                                          "SSL often show only this way at low label fractions.")
        st.caption("Every seed pretrains each method on that seed's training samples, so time "
                   "grows with methods x seeds x epochs; the run keeps going if you leave.")
        submitted = st.form_submit_button("Start evaluation", type="primary",
                                          icon=":material/play_arrow:")
    if submitted:
        job = EvaluateJob(cohort=cohort_id, task=task.removesuffix("_genes"),
                          missing="genes" if task == "imputation_genes" else "cells",
                          label=label if task == "classification" else None,
                          config=replace(start, methods=tuple(methods), fractions=fractions,
                                         seeds=int(seeds), pretrain_epochs=int(pretrain_epochs),
                                         finetune_epochs=int(finetune_epochs),
                                         finetune=bool(finetune)))
        if not fractions:
            st.error("Pick at least one labelled fraction.")
        else:
            start_job(ws, job, "its report appears under Evaluation reports when it is done.")
    job_panel(ws, "evaluate", _cancel_button, key=key)


def _cancel_button(run: RunInfo) -> None:
    st.button("Cancel", key=f"cancel_eval_{run.id}", icon=":material/stop_circle:",
              on_click=cancel, args=(current_workspace(), run.id),
              disabled=run.cancel_requested)
