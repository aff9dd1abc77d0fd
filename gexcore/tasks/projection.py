"""2-D maps of embeddings or expression for the explorer: UMAP and PCA."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

__all__ = ["ProjectionParams", "project"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectionParams:
    """How to draw the map; `asdict` keys the stored coordinates, so a change recomputes."""

    method: Literal["umap", "pca"] = "umap"
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0

    def key(self) -> dict:
        return asdict(self) if self.method == "umap" else {"method": "pca"}


def project(features: np.ndarray, params: ProjectionParams | None = None) -> np.ndarray:
    """(n, d) features -> (n, 2) float32 coordinates; NaN features count as 0 (the mean)."""
    params = params or ProjectionParams()
    X = np.nan_to_num(np.asarray(features, dtype=np.float32))
    if X.ndim != 2 or X.shape[0] < 3:
        raise ValueError(f"need a 2-D array of at least 3 samples to project, got {X.shape}.")
    if params.method == "pca" or X.shape[1] <= 2:
        return _pca2(X)
    import umap  # slow import (numba): only here

    n_neighbors = max(2, min(params.n_neighbors, X.shape[0] - 1))
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=params.min_dist,
                        random_state=params.seed, n_jobs=1)
    return reducer.fit_transform(X).astype(np.float32)


def _pca2(X: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    k = min(2, X.shape[1])
    out = PCA(n_components=k, random_state=0).fit_transform(X - X.mean(0)).astype(np.float32)
    return out if k == 2 else np.column_stack([out, np.zeros(len(out), np.float32)])
