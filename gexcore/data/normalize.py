"""Normalisation as a fitted, saved object: log transform, top-variance genes, per-gene z-score.

Fit on training samples only, then apply the same transform to new cohorts; genes a new cohort
lacks become NaN (missing), never zero.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from anndata import AnnData

from gexcore import keys
from gexcore.atomic import atomic_write_text
from gexcore.config import FromDict
from gexcore.data.genes import align_to_genes
from gexcore.data.validate import detect_scale
from gexcore.errors import InputError

__all__ = ["NormalizeConfig", "Normalizer", "log2p1", "log_cpm"]

Transform = Literal["auto", "log_cpm", "log2p1", "none"]


@dataclass(frozen=True)
class NormalizeConfig(FromDict):
    """How to normalise: `transform` "auto" picks log-CPM for counts, log2(x+1) for linear
    values."""

    transform: Transform = "auto"
    zscore: bool = True
    n_top_genes: int | None = None
    target_sum: float = 1e6

    def __post_init__(self) -> None:
        if self.transform not in Transform.__args__:
            raise ValueError(f"transform must be one of {Transform.__args__}, "
                             f"not {self.transform!r}.")
        if self.n_top_genes is not None and self.n_top_genes < 1:
            raise ValueError(f"n_top_genes must be positive or None, not {self.n_top_genes}.")
        if self.target_sum <= 0:
            raise ValueError(f"target_sum must be positive, not {self.target_sum}.")


def log_cpm(X: np.ndarray, target_sum: float = 1e6) -> np.ndarray:
    """Counts per `target_sum` then natural log1p, per sample (row); NaN cells are ignored."""
    lib = np.nansum(X, axis=1, keepdims=True)
    lib[lib == 0] = 1.0
    return np.log1p(X / lib * target_sum).astype(np.float32)


def log2p1(X: np.ndarray) -> np.ndarray:
    """log2(x + 1) for linear-scale values (TPM, FPKM)."""
    return np.log2(X + 1.0).astype(np.float32)


class Normalizer:
    """Fitted normalisation: `fit` on training samples, `transform` any cohort, `save`/`load`
    as JSON."""

    def __init__(self, config: NormalizeConfig | None = None):
        self.config = config or NormalizeConfig()

    def fit(self, adata: AnnData) -> Normalizer:
        """Learn the transform, the gene list and per-gene mean/sd from `adata.X`."""
        X = np.asarray(adata.X, dtype=np.float32)
        self.input_scale_ = detect_scale(X)
        self.transform_ = self._resolve(self.input_scale_)
        Xt = self._apply(X, adata.var_names, "fit")
        var = np.nanvar(Xt, axis=0)
        var = np.where(np.isfinite(var), var, -1.0)       # all-missing genes rank last
        order = np.arange(X.shape[1])
        if self.config.n_top_genes is not None and self.config.n_top_genes < X.shape[1]:
            order = np.sort(np.argsort(-var, kind="stable")[: self.config.n_top_genes])
        self.genes_ = [str(g) for g in adata.var_names[order]]
        with warnings.catch_warnings():                    # all-NaN genes: mean NaN on purpose
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, sd = np.nanmean(Xt[:, order], axis=0), np.nanstd(Xt[:, order], axis=0)
        self.mean_ = np.nan_to_num(mean).astype(np.float32)
        self.std_ = np.where(np.isfinite(sd) & (sd > 1e-6), sd, 1.0).astype(np.float32)
        self.n_samples_fit_ = int(X.shape[0])
        return self

    def transform(self, adata: AnnData, *, min_overlap: float = 0.0) -> AnnData:
        """A new AnnData on the fitted genes; `var['observed']` marks genes the cohort had."""
        self._check_fitted()
        Xt = self._apply(np.asarray(adata.X, dtype=np.float32), adata.var_names, "transform")
        source = str(adata.uns.get(keys.UNS_PROVENANCE, {}).get("source", "cohort"))
        aligned, observed = align_to_genes(Xt, adata.var_names, self.genes_, source=source,
                                           min_overlap=min_overlap)
        if self.config.zscore:
            aligned = (aligned - self.mean_) / self.std_
        out = AnnData(X=aligned.astype(np.float32), obs=adata.obs.copy())
        out.var_names = self.genes_
        out.var[keys.VAR_OBSERVED] = observed
        out.uns = {k: v for k, v in adata.uns.items() if k != keys.UNS_NORMALIZE}
        out.uns[keys.UNS_NORMALIZE] = self.summary()
        return out

    def fit_transform(self, adata: AnnData) -> AnnData:
        return self.fit(adata).transform(adata)

    def inverse_transform(self, X: np.ndarray, *, library_size: np.ndarray | None = None
                          ) -> np.ndarray:
        """(n, fitted genes) normalised values -> the input's units (undo z-score, then log).

        log-CPM needs each sample's `library_size` (the sum of its input values, as `transform`
        used); the other transforms are undone from the values alone.
        """
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        if self.config.zscore:
            X = X * self.std_ + self.mean_
        if self.transform_ == "log2p1":
            return (np.exp2(X) - 1.0).astype(np.float32)
        if self.transform_ == "log_cpm":
            if library_size is None:
                raise ValueError("log-CPM values need library_size to return to counts.")
            lib = np.asarray(library_size, dtype=np.float64).reshape(-1, 1)
            return (np.expm1(X) * np.where(lib == 0, 1.0, lib) / self.config.target_sum
                    ).astype(np.float32)
        return X.astype(np.float32)

    def summary(self) -> dict:
        """Small, h5ad-safe description of the fitted transform (no arrays)."""
        self._check_fitted()
        return {"transform": self.transform_, "input_scale": self.input_scale_,
                "zscore": self.config.zscore, "n_genes": len(self.genes_),
                "n_samples_fit": self.n_samples_fit_}

    def to_dict(self) -> dict:
        self._check_fitted()
        return {"config": asdict(self.config), "transform": self.transform_,
                "input_scale": self.input_scale_, "genes": self.genes_,
                "mean": self.mean_.tolist(), "std": self.std_.tolist(),
                "n_samples_fit": self.n_samples_fit_}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        self = cls(NormalizeConfig.from_dict(d["config"]))
        self.transform_, self.input_scale_ = d["transform"], d["input_scale"]
        self.genes_ = list(d["genes"])
        self.mean_ = np.asarray(d["mean"], dtype=np.float32)
        self.std_ = np.asarray(d["std"], dtype=np.float32)
        self.n_samples_fit_ = int(d["n_samples_fit"])
        if not len(self.genes_) == len(self.mean_) == len(self.std_):
            raise ValueError("normaliser file is inconsistent: genes, mean and std differ in "
                             "length.")
        return self

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically."""
        return atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def _resolve(self, scale: str) -> str:
        if self.config.transform != "auto":
            return self.config.transform
        return {"counts": "log_cpm", "linear": "log2p1"}.get(scale, "none")

    def _apply(self, X: np.ndarray, genes, stage: str) -> np.ndarray:
        if self.transform_ == "none":
            return X
        if np.nanmin(X) < 0:
            r, c = np.argwhere(X < 0)[0]
            raise InputError(
                f"cannot {stage} with {self.transform_}: gene '{genes[c]}' of sample {r + 1} is "
                f"negative ({X[r, c]:g}); these values are already log or z-scored. Use "
                "NormalizeConfig(transform='none')."
            )
        return log_cpm(X, self.config.target_sum) if self.transform_ == "log_cpm" else log2p1(X)

    def _check_fitted(self) -> None:
        if not hasattr(self, "genes_"):
            from sklearn.exceptions import NotFittedError
            raise NotFittedError("This Normalizer is not fitted yet; call fit(adata) first.")
