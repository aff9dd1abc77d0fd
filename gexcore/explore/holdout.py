"""Single-split views for the dashboard: a linear probe, a Cox risk model and gene
attributions, each fitted on the training rows of one patient-aware stratified split and scored
on the held-out rows. The full protocol (seeds x label fractions x baselines) is `evaluate_cohort`.

`features` is an (n_samples, d) array (an encoder's embedding of the cohort) or `EXPRESSION`:
the cohort's own values, normalised with a `Normalizer` fitted on the training rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData

from gexcore.data.rules import labelled_rows, survival_rows
from gexcore.errors import InputError
from gexcore.evaluate.splits import stratified_subset, train_test_split
from gexcore.explore.features import EXPRESSION, split_features

if TYPE_CHECKING:
    from gexcore.models.encoder import Encoder
    from gexcore.tasks.survival import KMResult

__all__ = ["EXPRESSION", "AttributionResult", "ProbeResult", "RiskResult", "holdout_attributions",
           "holdout_probe", "holdout_risk", "mixed_types"]

TYPE_COLUMNS = ("cancer_type", "label")      # where a mixed-type survival warning looks


@dataclass
class ProbeResult:
    """Held-out class probabilities (rows: test sample ids, columns: classes) and metrics."""

    label: str
    probabilities: pd.DataFrame
    true: pd.Series                  # test sample id -> true class
    metrics: dict                    # classification_metrics: accuracy, macro_f1, confusion, ...
    n_train: int
    grouped_by: str

    @property
    def classes(self) -> list[str]:
        return list(self.probabilities.columns)

    @property
    def predicted(self) -> pd.Series:
        return self.probabilities.idxmax(axis=1)

    @property
    def chance(self) -> float:
        """Accuracy of always predicting the most common test class."""
        return float(self.true.value_counts(normalize=True).max())

    def table(self) -> pd.DataFrame:
        """One row per test sample: true, predicted, confidence, then every class probability."""
        out = pd.DataFrame({"true": self.true, "predicted": self.predicted,
                            "confidence": self.probabilities.max(axis=1)})
        return out.join(self.probabilities)


@dataclass
class RiskResult:
    """Cox risks (higher = shorter survival) of training and held-out rows; C-index on test."""

    train_risk: np.ndarray
    test: pd.DataFrame               # index test sample id; time, event, risk
    c_harrell: float
    c_uno: float
    grouped_by: str
    penalizer: float

    @property
    def n_train(self) -> int:
        return len(self.train_risk)

    def groups(self, scheme: str = "median", cuts: tuple[float, ...] | None = None):
        """(RiskGroups fitted on the TRAINING risks, group index per test sample)."""
        from gexcore.tasks.survival import RiskGroups

        groups = RiskGroups(scheme=scheme, cuts=cuts).fit(self.train_risk)
        return groups, groups.assign(self.test["risk"].to_numpy())

    def group_table(self, scheme: str = "median",
                    cuts: tuple[float, ...] | None = None) -> pd.DataFrame:
        """Held-out rows (time, event, risk) with the risk group each falls in."""
        groups, assigned = self.groups(scheme, cuts)
        return self.test.assign(group=np.asarray(groups.names_)[assigned])

    def km(self, scheme: str = "median", cuts: tuple[float, ...] | None = None, *,
           time_unit: str = "") -> KMResult:
        """Kaplan-Meier summary of the test rows in groups cut at training-risk quantiles."""
        import warnings

        from gexcore.tasks.survival import km_summary

        groups, assigned = self.groups(scheme, cuts)
        with warnings.catch_warnings():           # an empty group shows as a missing curve
            warnings.simplefilter("ignore", UserWarning)
            return km_summary(self.test["time"].to_numpy(), self.test["event"].to_numpy(),
                              assigned, groups.names_, time_unit=time_unit)


@dataclass
class AttributionResult:
    """Signed per-gene attributions (n_samples, n_genes) toward each sample's own class."""

    scores: np.ndarray
    genes: list[str]
    rows: np.ndarray                 # row indices into the cohort
    labels: np.ndarray               # each row's class (the attribution target)
    method: str                      # what was differentiated, for the page's label
    n_in_train: int                  # rows that the head was fitted on (chosen samples only)


def holdout_probe(adata: AnnData, features: np.ndarray | str, label: str, *, seed: int = 0,
                  test_size: float = 0.3) -> ProbeResult:
    """Linear probe (standardise + logistic regression) on the training rows; test probabilities.

    Rows without a label, and classes with fewer than 2 samples, are left out.
    """
    from gexcore.tasks.classification import linear_probe
    from gexcore.tasks.metrics import classification_metrics

    keep, y = labelled_rows(adata.obs, label)
    train, test, grouped_by = _split(adata, keep, y, seed, test_size)
    X_train, X_test = split_features(features, adata, train, test)
    model = linear_probe().fit(X_train, y[train])
    classes = [str(c) for c in model.classes_]
    proba = model.predict_proba(X_test)
    ids = adata.obs_names[test]
    true = pd.Series(y[test], index=ids, name="true")
    return ProbeResult(label, pd.DataFrame(proba, index=ids, columns=classes), true,
                       classification_metrics(true.to_numpy(), proba, classes),
                       len(train), grouped_by)


def holdout_risk(adata: AnnData, features: np.ndarray | str, *, time: str = "time",
                 event: str = "event", seed: int = 0, test_size: float = 0.3,
                 penalizer: float = 1.0, within: tuple[str, str] | None = None) -> RiskResult:
    """Ridge Cox model on the training rows; risks of both sides, Harrell/Uno C on the test rows
    (scored as `gex evaluate` scores them). `within=(column, value)`: those samples only.

    Rows need a time > 0 and a 0/1 event; the split is stratified by event.
    """
    from gexcore.tasks.metrics import survival_scores
    from gexcore.tasks.survival import CoxHead, survival_target

    if within is not None:
        rows = (adata.obs[within[0]].astype(str) == within[1]).to_numpy()
        adata = adata[rows]
        features = features[rows] if isinstance(features, np.ndarray) else features
    keep, t, e = survival_rows(adata.obs, time, event)
    train, test, grouped_by = _split(adata, keep, e.astype(str), seed, test_size)
    X_train, X_test = split_features(features, adata, train, test)
    model = CoxHead(penalizer=penalizer).fit(X_train, survival_target(t[train], e[train]))
    risk = model.predict_risk(X_test)
    frame = pd.DataFrame({"time": t[test], "event": e[test], "risk": risk},
                         index=adata.obs_names[test])
    scores = survival_scores(t[test], e[test], risk, t[train], e[train])
    return RiskResult(model.predict_risk(X_train), frame, scores["c_harrell"], scores["c_uno"],
                      grouped_by, penalizer)


def mixed_types(adata: AnnData, result: RiskResult) -> tuple[str, pd.Series] | None:
    """(type column, held-out samples per type) when the held-out rows span several cancer
    types, whose baseline survival differs; None otherwise."""
    column = next((c for c in TYPE_COLUMNS if c in adata.obs), None)
    if column is None:
        return None
    types = adata.obs.loc[result.test.index, column].astype(str)
    return (column, types.value_counts()) if types.nunique() >= 2 else None


def holdout_attributions(adata: AnnData, label: str, *, encoder: Encoder | None = None,
                         samples=None, max_samples: int = 300, seed: int = 0,
                         test_size: float = 0.3, steps: int = 32) -> AttributionResult:
    """Integrated gradients toward each sample's own class, the head fitted on training rows.

    An MLP `encoder`: IG through the encoder and a linear probe on its embedding. Otherwise
    (no encoder, or a transformer, whose binned values make IG undefined): IG of a logistic
    regression on z-scored expression, which for a linear model is exactly
    (x - training mean) * coefficient. `samples` (row indices) default to a class-stratified
    subset of at most `max_samples` held-out rows.
    """
    keep, y = labelled_rows(adata.obs, label)
    train_rows, test_rows, _ = _split(adata, keep, y, seed, test_size)
    if samples is None:
        rows = test_rows[stratified_subset(y[test_rows], max_samples, seed=seed)]
    else:
        rows = np.asarray(samples, dtype=int).ravel()
        rows = rows[keep[rows]][:max_samples]
        if not len(rows):
            raise InputError(f"none of the chosen samples has a value in {label!r}.")
    if encoder is not None and encoder.input_gradients:
        scores, genes, method = _encoder_ig(encoder, adata, y, train_rows, rows, steps)
    else:
        scores, genes, method = _expression_ig(adata, y, train_rows, rows)
        if encoder is not None:
            method += (" (fallback: the transformer bins its values, so integrated gradients "
                       "through it are undefined)")
    return AttributionResult(scores.astype(np.float32), genes, rows, y[rows], method,
                             int(np.isin(rows, train_rows).sum()))


def _encoder_ig(encoder: Encoder, adata: AnnData, y: np.ndarray, train_rows: np.ndarray,
                rows: np.ndarray, steps: int):
    from gexcore.explain import gene_attributions, linear_head
    from gexcore.tasks.classification import linear_probe

    Z = encoder.embed(adata[train_rows])
    probe = linear_probe().fit(Z, y[train_rows])
    coef, intercept = _folded(probe)
    classes = [str(c) for c in probe.classes_]
    target = np.array([classes.index(c) for c in y[rows]])
    scores = gene_attributions(encoder, linear_head(coef, intercept), adata, target=target,
                               samples=rows, steps=steps)
    return scores, encoder.genes, (f"integrated gradients through the {encoder.method} encoder " \
                                  "and a linear probe")


def _expression_ig(adata: AnnData, y: np.ndarray, train_rows: np.ndarray, rows: np.ndarray):
    from gexcore.explore.features import expression_normalizer
    from gexcore.tasks.classification import linear_probe

    norm = expression_normalizer(adata[train_rows])
    probe = linear_probe().fit(np.nan_to_num(norm.transform(adata[train_rows]).X),
                               y[train_rows])
    coef, _ = _folded(probe)
    classes = [str(c) for c in probe.classes_]
    x = norm.transform(adata[rows]).X                      # NaN where unmeasured: stays NaN
    target = np.array([classes.index(c) for c in y[rows]])
    # IG of a linear logit from the all-zero baseline (the training mean) is exact: x * w.
    return x * coef[target], list(norm.genes_), ("integrated gradients of a logistic "
                                                  "regression on normalised expression")


def _folded(probe) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and intercepts of a StandardScaler + LogisticRegression on raw inputs."""
    scaler, lr = probe[0], probe[-1]
    coef = lr.coef_ / scaler.scale_
    intercept = lr.intercept_ - coef @ scaler.mean_
    if coef.shape[0] == 1:                                 # binary: one logit for class 1
        coef, intercept = np.vstack([-coef, coef]) / 2, np.r_[-intercept, intercept] / 2
    return coef, intercept


# ---------------------------------------------------------------------------------- helpers

def _split(adata: AnnData, keep: np.ndarray, strata: np.ndarray, seed: int,
           test_size: float) -> tuple[np.ndarray, np.ndarray, str]:
    """(train rows, test rows, grouped by): a patient-aware split of the `keep` rows, stratified
    by `strata` (one value per cohort row), as row indices of the cohort."""
    rows = np.flatnonzero(keep)
    split = train_test_split(adata[keep], stratify=strata[keep], test_size=test_size, seed=seed)
    return rows[split.train], rows[split.test], split.grouped_by
