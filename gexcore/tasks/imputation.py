"""Imputation benchmark: hide observed cells at random (MCAR) or whole genes, restore them,
score the hidden cells.

Every imputer works in one normalised (z-scored) space and is fitted on training rows only;
`imputation_curve` scores RMSE and Pearson r on the hidden cells alone, per missing rate and seed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from sklearn.base import BaseEstimator
from sklearn.impute import KNNImputer as _SKKNNImputer
from sklearn.utils.validation import check_is_fitted

from gexcore.data.normalize import Normalizer
from gexcore.errors import GeneMismatchError
from gexcore.models.methods import require
from gexcore.models.objectives.base import MarginalFill
from gexcore.progress import Progress, ProgressCallback
from gexcore.tasks.metrics import imputation_metrics

__all__ = ["EncoderImputer", "KNNImputer", "MeanImputer", "imputation_curve", "mask_genes",
           "mask_mcar", "summarize_curve"]

logger = logging.getLogger(__name__)

RATES = (0.1, 0.3, 0.5, 0.7, 0.9)
VimeFill = Literal["mean", "marginal"]
Missing = Literal["cells", "genes"]


def mask_mcar(missing: np.ndarray, rate: float, *, seed: int | np.random.Generator = 0
              ) -> np.ndarray:
    """Hide round(`rate` x observed) cells uniformly among the observed ones -> (n, G) bool.

    Cells already `missing` are never hidden. One seed draws one random order of the cells, so
    with the same seed the masks of increasing rates are nested.
    """
    missing = np.asarray(missing, dtype=bool)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], not {rate}.")
    rng = np.random.default_rng(seed)
    scores = rng.random(missing.shape)
    scores[missing] = np.inf                          # observed cells rank first
    k = round(rate * int((~missing).sum()))
    hide = np.zeros(missing.size, dtype=bool)
    if k:
        hide[np.argpartition(scores.ravel(), k - 1)[:k]] = True
    return hide.reshape(missing.shape)


def mask_genes(missing: np.ndarray, rate: float, *, seed: int | np.random.Generator = 0
               ) -> np.ndarray:
    """Hide round(`rate` x observed genes) whole genes -> (n, G) bool: a smaller panel.

    Every observed cell of a hidden gene is hidden, in every row; genes no row observed are
    never drawn. One seed draws one order of the genes, so masks of increasing rates nest.
    """
    missing = np.asarray(missing, dtype=bool)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], not {rate}.")
    genes = np.random.default_rng(seed).permutation(np.flatnonzero((~missing).any(axis=0)))
    hide = np.zeros(missing.shape, dtype=bool)
    hide[:, genes[: round(rate * len(genes))]] = True
    return hide & ~missing


MASKS = {"cells": mask_mcar, "genes": mask_genes}


class _Imputer(BaseEstimator):
    """Shared `predict`: blank the `hide` cells first, so their true values can never be read.

    `predict(X, hide)` returns a copy of `X` (n, G) with the `hide` cells replaced by predictions;
    other cells keep their value, and cells missing in `X` (NaN) that are not hidden stay NaN.
    """

    def predict(self, X: np.ndarray, hide: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        X, hide = _check_xy(X, hide, self.n_features_in_)
        visible = np.where(hide, np.nan, X)
        out = visible.copy()
        out[hide] = self._predict(visible, hide)[hide]
        return out

    def _predict(self, X: np.ndarray, hide: np.ndarray) -> np.ndarray:
        """(n, G) visible values (NaN = missing or hidden) -> (n, G) predictions at `hide`."""
        raise NotImplementedError


class MeanImputer(_Imputer):
    """Each gene's training mean (the baseline); genes never observed in training get 0."""

    def fit(self, X: np.ndarray, y=None) -> MeanImputer:
        X = _as_matrix(X)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nansum(X, axis=0, dtype=np.float64) / (~np.isnan(X)).sum(axis=0)
        self.mean_ = np.nan_to_num(mean).astype(np.float32)
        self.n_features_in_ = X.shape[1]
        return self

    def _predict(self, X: np.ndarray, hide: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.mean_, X.shape)


class KNNImputer(_Imputer):
    """Mean of the `n_neighbors` nearest training rows (nan-Euclidean on the visible genes)."""

    def __init__(self, *, n_neighbors: int = 10, weights: Literal["uniform", "distance"] =
                 "uniform"):
        self.n_neighbors = n_neighbors
        self.weights = weights

    def fit(self, X: np.ndarray, y=None) -> KNNImputer:
        X = _as_matrix(X)
        self.knn_ = _SKKNNImputer(n_neighbors=self.n_neighbors, weights=self.weights,
                                  keep_empty_features=True).fit(X)
        self.n_features_in_ = X.shape[1]
        return self

    def _predict(self, X: np.ndarray, hide: np.ndarray) -> np.ndarray:
        return self.knn_.transform(X).astype(np.float32)


class EncoderImputer(_Imputer):
    """A pretrained encoder restores hidden genes, in its own normaliser's space.

    `Encoder.restore` does the work (the transformer's hidden genes become mask-token queries
    over the visible ones; VIME's value decoder reads every cell). For a model that reads every
    cell, hidden (and missing) cells are filled as `fill` says: "mean" puts the training mean
    (0 after z-scoring, the value that missing cells had in pretraining), "marginal" draws each
    cell from the same gene in a random training row, as VIME's corruption did, and averages
    the decoder over `n_draws` draws. Encoders whose method cannot restore are refused.
    """

    def __init__(self, encoder, *, fill: VimeFill = "mean", n_draws: int = 8, seed: int = 0,
                 batch_size: int = 256):
        self.encoder = encoder
        self.fill = fill
        self.n_draws = n_draws
        self.seed = seed
        self.batch_size = batch_size

    def fit(self, X: np.ndarray, y=None) -> EncoderImputer:
        """Check the encoder; keep the training rows as the marginal bank (training only)."""
        X = _as_matrix(X)
        require(getattr(self.encoder, "method", None), "can_restore")   # CapabilityError
        if self.fill not in VimeFill.__args__:
            raise ValueError(f"fill must be one of {VimeFill.__args__}, not {self.fill!r}.")
        n_genes = len(self.encoder.genes)
        if X.shape[1] != n_genes:
            raise GeneMismatchError(f"the encoder has {n_genes} genes but X has {X.shape[1]}; "
                                    "transform X with encoder.normalizer first.")
        self.bank_ = X if self.fill == "marginal" else None
        self.n_features_in_ = n_genes
        return self

    def _predict(self, X: np.ndarray, hide: np.ndarray) -> np.ndarray:
        bank = None if self.bank_ is None else torch.from_numpy(self.bank_)
        parts = []
        for start in range(0, X.shape[0], self.batch_size):
            rows = slice(start, start + self.batch_size)
            x = torch.from_numpy(X[rows])
            fill = None if bank is None else MarginalFill(bank, self.n_draws, self.seed + start)
            pred = self.encoder.restore(torch.nan_to_num(x), torch.isnan(x),
                                        torch.from_numpy(hide[rows]), fill=fill)
            parts.append(pred.float().cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros_like(X)


def imputation_curve(train: AnnData, test: AnnData, *, encoders: Mapping | None = None,
                     rates: Sequence[float] = RATES, seeds: Sequence[int] = (0, 1, 2),
                     knn_neighbors: int = 10, normalizer: Normalizer | None = None,
                     vime_fill: VimeFill = "mean", missing: Missing = "cells",
                     progress: ProgressCallback | None = None) -> pd.DataFrame:
    """Long table: method, missing_rate, seed, rmse, pearson_r, per_gene_r, n_masked.

    Scored on `test`'s hidden cells only (pooled r; per_gene_r is the mean of per-gene r), in
    z-score units. One normalised space for every method: `normalizer`, else the first
    encoder's, else a new Normalizer fitted on `train`. Encoders must be pretrained on `train`
    only (the caller's promise) and share that normaliser exactly. Baselines fit on `train`
    rows. Each seed draws one mask of `test`, nested over rates: `missing="cells"` hides
    observed cells at random (MCAR), "genes" hides whole genes in every test row (a panel
    that lacks them).
    """
    if missing not in MASKS:
        raise ValueError(f"missing must be one of {tuple(MASKS)}, not {missing!r}.")
    encoders = dict(encoders or {})
    started = time.perf_counter()
    norm = _reference_normalizer(train, encoders, normalizer)
    X_train, X_test = norm.transform(train).X, norm.transform(test).X
    imputers = {"mean": MeanImputer(), "knn": KNNImputer(n_neighbors=knn_neighbors)}
    imputers |= {name: EncoderImputer(enc, fill=vime_fill) for name, enc in encoders.items()}
    for imputer in imputers.values():
        imputer.fit(X_train)
    absent, rows = np.isnan(X_test), []
    total, done = len(rates) * len(seeds) * len(imputers), 0
    for seed in seeds:
        for rate in rates:
            hide = MASKS[missing](absent, rate, seed=seed)
            for name, imputer in imputers.items():
                pred = imputer.predict(X_test, hide)
                rows.append({"method": name, "missing_rate": float(rate), "seed": int(seed),
                             **_score(X_test, pred, hide)})
                done += 1
                if progress is not None:
                    progress(Progress("evaluate", done, total, message=f"{name} at {rate:.0%}"))
    logger.info("imputation curve: %d methods x %d rates x %d seeds on %s x %s in %.1f s",
                len(imputers), len(rates), len(seeds), f"{X_test.shape[0]:,}",
                f"{X_test.shape[1]:,}", time.perf_counter() - started)
    return pd.DataFrame(rows, columns=["method", "missing_rate", "seed", "rmse", "pearson_r",
                                       "per_gene_r", "n_masked"])


def summarize_curve(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds: method, missing_rate, rmse_mean, rmse_sd, r_mean, r_sd."""
    g = df.groupby(["method", "missing_rate"], sort=False)
    out = g.agg(rmse_mean=("rmse", "mean"), rmse_sd=("rmse", "std"),
                r_mean=("pearson_r", "mean"), r_sd=("pearson_r", "std"))
    return out.reset_index()


def _score(true: np.ndarray, pred: np.ndarray, hide: np.ndarray) -> dict:
    """`imputation_metrics` on the hidden cells; r is NaN where the prediction is constant."""
    m = imputation_metrics(true, pred, hide)
    # The mean imputer predicts ~0 everywhere in z-space; its float rounding noise would
    # otherwise give a random pooled r instead of "no correlation".
    spread, scale = np.std(pred[hide], dtype=np.float64), np.std(true[hide], dtype=np.float64)
    r = m["pearson_r"] if spread > 1e-5 * scale else float("nan")
    return {"rmse": m["rmse"], "pearson_r": r, "per_gene_r": m["per_gene_r"],
            "n_masked": m["n"]}


def _reference_normalizer(train: AnnData, encoders: dict,
                          normalizer: Normalizer | None) -> Normalizer:
    """The one normaliser all methods share; every encoder must have exactly this one."""
    if normalizer is None:
        first = next(iter(encoders.values()), None)
        normalizer = first.normalizer if first is not None else Normalizer().fit(train)
    for name, enc in encoders.items():
        other = enc.normalizer
        same = (other.genes_ == normalizer.genes_ and other.transform_ == normalizer.transform_
                and np.allclose(other.mean_, normalizer.mean_, atol=1e-5)
                and np.allclose(other.std_, normalizer.std_, atol=1e-5))
        if not same:
            raise GeneMismatchError(
                f"encoder {name!r} has another normaliser ({len(other.genes_)} genes, "
                f"{other.transform_}) than the reference ({len(normalizer.genes_)} genes, "
                f"{normalizer.transform_}); pretrain every encoder on the same training "
                "samples with the same NormalizeConfig so their errors compare.")
    return normalizer


def _as_matrix(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D (samples, genes) array, not shape {X.shape}.")
    return X


def _check_xy(X, hide, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    X, hide = _as_matrix(X), np.asarray(hide, dtype=bool)
    if X.shape[1] != n_features or hide.shape != X.shape:
        raise ValueError(f"X {X.shape} and hide {hide.shape} must both be (n, {n_features}).")
    return X, hide
