"""A Cox head trained end to end with its encoder (DeepSurv-style, minibatch risk sets)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from gexcore.tasks.finetune import fit_estimator_net, predict_outputs

__all__ = ["FineTuneCox"]


class FineTuneCox(BaseEstimator):
    """Encoder body + one linear risk output, trained on the Cox negative partial likelihood.

    `X` holds values normalised by `encoder.normalizer` (NaN = missing); `y` is a structured
    (event, time) array as `survival_target` makes. Higher risk = shorter survival. Risk sets
    are those of each minibatch, so batches are large (256) to keep them informative.
    """

    def __init__(self, *, encoder=None, epochs: int = 30, lr: float = 1e-3,
                 batch_size: int = 256, weight_decay: float = 1e-4, min_steps: int = 100,
                 ties: str = "efron", seed: int = 0):
        self.encoder = encoder
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.min_steps = min_steps
        self.ties = ties
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> FineTuneCox:
        from gexcore.tasks.survival import cox_loss

        event = np.ascontiguousarray(y[y.dtype.names[0]], dtype=bool)
        time = np.ascontiguousarray(y[y.dtype.names[1]], dtype=np.float64)
        if not event.any():
            raise ValueError("cannot fit a Cox model without events: every sample is censored.")
        t, e = torch.from_numpy(time), torch.from_numpy(event)

        def loss_fn(out: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
            idx = torch.from_numpy(rows)
            return cox_loss(out[:, 0].double(), t[idx], e[idx], ties=self.ties)

        self.net_ = fit_estimator_net(self, 1, X, loss_fn)
        return self

    def predict_risk(self, X: np.ndarray) -> np.ndarray:
        """(N,) log relative hazard; higher = shorter survival."""
        check_is_fitted(self)
        return predict_outputs(self.net_, X)[:, 0].astype(np.float64)
