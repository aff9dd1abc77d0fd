"""2-D maps stored per (source, cohort, parameters): computed once, never on a rerun."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gexcore.explore.features import EXPRESSION, expression_pcs
from gexcore.tasks.projection import ProjectionParams, project
from gexcore.workspace.store import Workspace, array_name, map_name

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData

__all__ = ["cohort_map", "colour_values", "encoder_overlap", "gene_colour", "gene_options",
           "gene_symbols", "map_features", "map_table", "stored_attention"]


def map_features(ws: Workspace, cohort_id: str, source: str) -> np.ndarray | None:
    """What a map is drawn from: a run's stored embedding, or 50 PCs of normalised expression."""
    if source != EXPRESSION:
        return ws.embedding(cohort_id, source)
    return expression_pcs(ws.load_cohort(cohort_id))


def cohort_map(ws: Workspace, cohort_id: str, source: str,
               params: ProjectionParams | None = None) -> np.ndarray | None:
    """(n, 2) map of `cohort_id` from `source` (a run id or EXPRESSION); None if there is no
    embedding."""
    params = params or ProjectionParams()
    key = source if source != EXPRESSION else f"cohort-{cohort_id}"
    name = map_name(cohort_id, params)
    if (coords := ws.load_array(key, name)) is not None:
        return coords
    feats = map_features(ws, cohort_id, source)
    if feats is None:
        return None
    coords = project(feats, params)
    ws.save_array(key, name, coords)
    return coords


def map_table(adata: AnnData, coords: np.ndarray,
              axis_names: tuple[str, str] = ("UMAP 1", "UMAP 2")) -> pd.DataFrame:
    """One row per sample: its id, the two map coordinates, then every obs column (a download)."""
    import pandas as pd

    xy = np.asarray(coords)
    if xy.shape != (adata.n_obs, 2):
        raise ValueError(f"coords must have shape ({adata.n_obs}, 2), not {xy.shape}.")
    table = pd.DataFrame(xy, index=adata.obs_names, columns=list(axis_names))
    table = table.join(adata.obs.drop(columns=list(axis_names), errors="ignore"))
    table.index.name = "sample_id"
    return table


def colour_values(values: pd.Series) -> np.ndarray:
    """A column's values to colour a map by: numbers as they are, anything else as plain
    objects with NaN for missing (hover text cannot fill a Categorical's NaN or pd.NA)."""
    from pandas.api.types import is_numeric_dtype

    if is_numeric_dtype(values):
        return values.to_numpy()
    return values.astype(object).where(values.notna(), np.nan).to_numpy()


def gene_symbols(adata: AnnData) -> pd.Series:
    """Gene id -> the symbol to show (the id itself where the cohort has no symbols)."""
    from gexcore import keys

    if keys.VAR_SYMBOL in adata.var:
        return adata.var[keys.VAR_SYMBOL].astype(str)
    return adata.var_names.to_series()


def gene_options(adata: AnnData) -> dict[str, str]:
    """Gene id -> how a gene picker shows it, sorted by that text: the symbol, with the id in
    brackets where they differ, so typing either finds the gene."""
    symbols = gene_symbols(adata)
    shown = {str(g): (s if s == str(g) else f"{s} ({g})") for g, s in symbols.items()}
    return dict(sorted(shown.items(), key=lambda item: item[1].casefold()))


def encoder_overlap(ws: Workspace, run_id: str, adata: AnnData) -> tuple[int, int, bool]:
    """(the encoder's genes this cohort measures, its genes, enough to embed it): read from the
    checkpoint's config, no torch; enough means `MIN_GENE_OVERLAP` of them. A run without a
    readable checkpoint is (0, 0, False)."""
    import json

    from gexcore.workspace.impute_job import gap

    try:
        found = gap(ws, run_id, adata)
    except (OSError, KeyError, TypeError, json.JSONDecodeError):    # no readable checkpoint
        return 0, 0, False
    return (found.model_genes - found.missing_genes, found.model_genes, found.enough_overlap)


def gene_colour(adata: AnnData, gene: str) -> tuple[np.ndarray, str]:
    """(expression of `gene` as stored, its symbol) to colour a map by."""
    return adata.obs_vector(gene), str(gene_symbols(adata).get(gene, gene))


def stored_attention(ws: Workspace, run_id: str, cohort_id: str, adata, *, mode: str,
                     rows: np.ndarray, load_encoder) -> np.ndarray:
    """(len(rows), G) attention importance of a transformer run, stored under the run keyed by
    cohort, mode and rows, so it is computed once; `load_encoder()` is called only then."""
    from gexcore.explain import attention_importance

    name = array_name("attention", cohort=cohort_id, mode=mode, rows=np.asarray(rows).tolist())
    scores = ws.load_array(run_id, name)
    if scores is None:
        scores = attention_importance(load_encoder(), adata, mode=mode, samples=rows)
        ws.save_array(run_id, name, scores.astype(np.float32))
    return scores
