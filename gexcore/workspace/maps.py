"""2-D maps stored per (source, cohort, parameters): computed once, never on a rerun."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gexcore.tasks.projection import ProjectionParams, project
from gexcore.workspace.store import Workspace, array_name

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData

__all__ = ["RAW", "cohort_map", "features", "map_name", "map_table", "stored_attention"]

RAW = "expression"       # the map source that is the cohort's own normalised expression


def map_name(cohort_id: str, params: ProjectionParams) -> str:
    return array_name(f"map-{cohort_id}", **params.key())


def features(ws: Workspace, cohort_id: str, source: str) -> np.ndarray | None:
    """What a map is drawn from: a run's stored embedding, or 50 PCs of normalised expression."""
    if source != RAW:
        return ws.embedding(cohort_id, source)
    from sklearn.decomposition import PCA

    from gexcore.data.normalize import NormalizeConfig, Normalizer

    adata = ws.load_cohort(cohort_id)
    X = np.nan_to_num(Normalizer(NormalizeConfig(n_top_genes=2000)).fit_transform(adata).X)
    k = max(1, min(50, *X.shape))
    return PCA(n_components=k, random_state=0).fit_transform(X).astype(np.float32)


def cohort_map(ws: Workspace, cohort_id: str, source: str,
               params: ProjectionParams | None = None) -> np.ndarray | None:
    """(n, 2) map of `cohort_id` from `source` (a run id or RAW); None if there is no embedding."""
    params = params or ProjectionParams()
    key = source if source != RAW else f"cohort-{cohort_id}"
    name = map_name(cohort_id, params)
    if (coords := ws.load_array(key, name)) is not None:
        return coords
    feats = features(ws, cohort_id, source)
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
