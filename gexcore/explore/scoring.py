"""Scoring new patients from the dashboard: fit a saved prediction model on a stored cohort from
a feature source (an encoder run or `EXPRESSION`), and score any stored cohort with it.

The model is a `gexcore.tasks.predictor.Predictor` stored as a `predictor` run
(`gexcore.workspace.predictors`); `gex fit` / `gex predict` read and write the same folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from gexcore.data.rules import MIN_CLASS_SIZE
from gexcore.explore.features import EXPRESSION, EXPRESSION_TOP_GENES

if TYPE_CHECKING:
    from anndata import AnnData

    from gexcore.tasks.predictor import Predictor, Task
    from gexcore.workspace import Workspace

__all__ = ["ScoreResult", "fit_from_source", "left_out_note", "save_from_source", "score"]


@dataclass
class ScoreResult:
    """A scored cohort: one row per sample (`Predictor.predict`) and what the page says of it."""

    table: pd.DataFrame
    task: str
    description: str                 # what the model predicts, from what, fitted on how many
    missing_genes: str               # how genes a sample lacks were handled
    shared_genes: float              # share of the model's genes the cohort has at all
    groups: list[str]                # risk groups, low -> high ([] for a classifier)

    @property
    def n_flagged(self) -> int:
        return int((self.table["flag"] != "").sum())


def fit_from_source(ws: Workspace, cohort_id: str, adata: AnnData, source: str, task: Task, *,
                    label: str | None = None, groups: str = "median") -> Predictor:
    """A model on every usable row of the stored cohort: on the encoder run's stored embedding
    of it (the run's encoder goes into the model) or on its normalised expression."""
    from gexcore.data.normalize import NormalizeConfig
    from gexcore.explore.features import resolve_features
    from gexcore.tasks.predictor import fit_predictor

    if source == EXPRESSION:
        return fit_predictor(adata, task, label=label, groups=groups,
                             normalize=NormalizeConfig(n_top_genes=EXPRESSION_TOP_GENES))
    from gexcore.models.encoder import Encoder

    embedding = resolve_features(ws, cohort_id, source)
    return fit_predictor(adata, task, label=label, groups=groups,
                         encoder=Encoder.load(ws.run_dir(source)), features=embedding)


def save_from_source(ws: Workspace, cohort_id: str, adata: AnnData, source: str, task: Task,
                     name: str, *, label: str | None = None) -> str:
    """`fit_from_source`, stored as a `predictor` run named `name`; returns the run id."""
    from gexcore.workspace.predictors import save_predictor

    model = fit_from_source(ws, cohort_id, adata, source, task, label=label)
    return save_predictor(ws, model, name, params={"cohort": cohort_id, "features": source})


def score(ws: Workspace, run_id: str, adata: AnnData) -> ScoreResult:
    """Predictions of a saved model for every sample of `adata`, with the OOD flags."""
    from gexcore.workspace.predictors import load_predictor

    model = load_predictor(ws, run_id)
    table = model.predict(adata)
    shared = float(pd.Index(model.genes).isin(adata.var_names).mean())
    groups = list(model.risk_groups["names"]) if model.risk_groups else []
    return ScoreResult(table, model.task, model.description, model.missing_genes, shared,
                       groups)


def left_out_note(left_out: dict[str, int]) -> str | None:
    """'1 sample of class X left out: a class needs at least 2 samples' (None when none is)."""
    if not left_out:
        return None
    parts = [f"{n} sample{'s' if n != 1 else ''} of class {name}"
             for name, n in left_out.items()]
    return (f"{' and '.join(parts)} left out: a class needs at least {MIN_CLASS_SIZE} "
            "samples.")
