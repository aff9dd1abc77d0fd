"""Classification heads: a linear probe on frozen features and end-to-end fine-tuning."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from gexcore.tasks.finetune import fit_estimator_net, predict_outputs

__all__ = ["FineTuneClassifier", "linear_probe"]


def linear_probe(*, C: float = 1.0, max_iter: int = 2000) -> Pipeline:
    """Standardise, then multinomial logistic regression: the frozen-feature head and baseline."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))


class FineTuneClassifier(ClassifierMixin, BaseEstimator):
    """Encoder body + linear head trained end to end with cross-entropy.

    `encoder` is a pretrained or random-init `gexcore.models.encoder.Encoder`; `X` holds values
    already normalised by its normaliser (`encoder.normalizer.transform(adata).X`, NaN missing).
    A random-init encoder makes this the from-scratch MLP (or transformer) baseline.
    """

    def __init__(self, *, encoder=None, epochs: int = 30, lr: float = 1e-3,
                 batch_size: int = 64, weight_decay: float = 1e-4, min_steps: int = 100,
                 seed: int = 0):
        self.encoder = encoder
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.min_steps = min_steps
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> FineTuneClassifier:
        self.classes_, codes = np.unique(np.asarray(y).astype(str), return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes to train a classifier, got {self.classes_}.")
        target = torch.from_numpy(codes)

        def loss_fn(logits: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(logits.float(), target[rows])

        self.net_ = fit_estimator_net(self, len(self.classes_), X, loss_fn)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, n_classes) probabilities, columns in `classes_` order."""
        check_is_fitted(self)
        logits = torch.from_numpy(predict_outputs(self.net_, X))
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
