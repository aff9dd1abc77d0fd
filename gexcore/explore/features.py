"""What the dashboard's models are fitted on: an encoder run's stored embedding of a cohort, or
the cohort's own expression normalised on the fitting rows only.

A feature *source* is a run id or `EXPRESSION`; pages pass sources around, never arrays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gexcore.errors import InputError

if TYPE_CHECKING:
    from anndata import AnnData

    from gexcore.workspace import RunInfo, Workspace

__all__ = ["EXPRESSION", "EXPRESSION_TOP_GENES", "MAP_PCS", "encoder_runs",
           "expression_normalizer", "expression_pcs", "feature_sources", "resolve_features",
           "split_features"]

EXPRESSION = "expression"        # the source that is the cohort's own normalised expression
EXPRESSION_TOP_GENES = 2000      # top-variance genes (of the fitting rows) for expression models
MAP_PCS = 50                     # principal components of expression that a map is drawn from


def encoder_runs(ws: Workspace, cohort_id: str) -> list[RunInfo]:
    """Finished pretrain runs that have an embedding of `cohort_id`, newest first."""
    return [r for r in ws.runs(kind="pretrain", status="done")
            if ws.embedding(cohort_id, r.id) is not None]


def feature_sources(ws: Workspace, cohort_id: str) -> dict[str, RunInfo | None]:
    """Source -> run: encoder runs with an embedding of this cohort (newest first), then
    `EXPRESSION` -> None."""
    return {r.id: r for r in encoder_runs(ws, cohort_id)} | {EXPRESSION: None}


def resolve_features(ws: Workspace, cohort_id: str, source: str) -> np.ndarray | str:
    """The stored embedding of `source` (a run id), or `EXPRESSION` itself; refuses a run
    without an embedding of this cohort."""
    if source == EXPRESSION:
        return EXPRESSION
    embedding = ws.embedding(cohort_id, source)
    if embedding is None:
        raise InputError(f"run {source!r} has no embedding of this cohort; embed the cohort "
                         "with it on the Embeddings page first.")
    return embedding


def split_features(features: np.ndarray | str, adata: AnnData, train: np.ndarray,
                   test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) feature rows for row indices `train`, `test` of `adata`; expression is
    normalised with a `Normalizer` fitted on the `train` rows only."""
    if isinstance(features, str):
        if features != EXPRESSION:
            raise ValueError(f"features must be an array or {EXPRESSION!r}, not {features!r}.")
        norm = expression_normalizer(adata[train])
        return tuple(np.nan_to_num(norm.transform(adata[r]).X) for r in (train, test))
    F = np.asarray(features, dtype=np.float64)
    if F.ndim != 2 or len(F) != adata.n_obs:
        raise InputError(f"features have shape {F.shape}; expected ({adata.n_obs}, d), one row "
                         "per sample of the cohort (embed the cohort with this encoder again).")
    if not np.isfinite(F).all():
        raise InputError("the features hold missing or infinite values; embed the cohort again.")
    return F[train], F[test]


def expression_pcs(adata: AnnData) -> np.ndarray:
    """(n, <= 50) principal components of the normalised expression: what an expression map is
    drawn from (unsupervised, so fitting on every sample leaks nothing)."""
    from sklearn.decomposition import PCA

    X = np.nan_to_num(expression_normalizer(adata).transform(adata).X)
    k = max(1, min(MAP_PCS, *X.shape))
    return PCA(n_components=k, random_state=0).fit_transform(X).astype(np.float32)


def expression_normalizer(fit_on: AnnData):
    """A Normalizer of the top-variance genes, fitted on `fit_on` only."""
    from gexcore.data.normalize import NormalizeConfig, Normalizer

    return Normalizer(NormalizeConfig(n_top_genes=EXPRESSION_TOP_GENES)).fit(fit_on)
