"""Fast single-split facades for the dashboard: a linear probe, a Cox risk model and gene
attributions, each fitted on the training rows of one patient-aware stratified split and scored
on the held-out rows. The full protocol (seeds x label fractions x baselines) is `evaluate_cohort`.

`features` is an (n_samples, d) array (an encoder's embedding of the cohort) or `EXPRESSION`:
the cohort's own values, normalised with a `Normalizer` fitted on the training rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from gexcore.errors import InputError
from gexcore.evaluate.splits import train_test_split

if TYPE_CHECKING:
    from gexcore.models.encoder import Encoder
    from gexcore.tasks.survival import KMResult

__all__ = ["EXPRESSION", "AttributionResult", "ProbeResult", "RiskResult", "holdout_attributions",
           "holdout_probe", "holdout_risk", "label_columns", "planted_genes", "planted_hits",
           "stratified_subset", "survival_columns"]

EXPRESSION = "expression"        # features: normalised expression instead of an embedding
_EXPRESSION_TOP_GENES = 2000     # top-variance genes (of the training rows) for the probe
_MAX_CLASSES = 50


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

    keep, y = _labelled(adata, label)
    split, sub = _split(adata, keep, y[keep], seed, test_size)
    X_train, X_test = _features(features, adata, keep, split)
    model = linear_probe().fit(X_train, y[keep][split.train])
    classes = [str(c) for c in model.classes_]
    proba = model.predict_proba(X_test)
    ids = sub.obs_names[split.test]
    true = pd.Series(y[keep][split.test], index=ids, name="true")
    return ProbeResult(label, pd.DataFrame(proba, index=ids, columns=classes), true,
                       classification_metrics(true.to_numpy(), proba, classes),
                       len(split.train), split.grouped_by)


def holdout_risk(adata: AnnData, features: np.ndarray | str, *, time: str = "time",
                 event: str = "event", seed: int = 0, test_size: float = 0.3,
                 penalizer: float = 1.0) -> RiskResult:
    """Ridge Cox model on the training rows; risks of both sides, Harrell/Uno C on the test rows.

    Rows need a time > 0 and a 0/1 event; the split is stratified by event.
    """
    from gexcore.tasks.metrics import harrell_c, uno_c
    from gexcore.tasks.survival import CoxHead, survival_target

    keep, t, e = _survival_rows(adata, time, event)
    split, sub = _split(adata, keep, e[keep].astype(str), seed, test_size)
    X_train, X_test = _features(features, adata, keep, split)
    (t_train, t_test), (e_train, e_test) = ((v[keep][split.train], v[keep][split.test])
                                            for v in (t, e))
    model = CoxHead(penalizer=penalizer).fit(X_train, survival_target(t_train, e_train))
    risk = model.predict_risk(X_test)
    test = pd.DataFrame({"time": t_test, "event": e_test, "risk": risk},
                        index=sub.obs_names[split.test])
    return RiskResult(model.predict_risk(X_train), test, harrell_c(t_test, e_test, risk),
                      uno_c(t_test, e_test, risk, t_train, e_train), split.grouped_by, penalizer)


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
    keep, y = _labelled(adata, label)
    split, _ = _split(adata, keep, y[keep], seed, test_size)
    train_rows, test_rows = np.flatnonzero(keep)[split.train], np.flatnonzero(keep)[split.test]
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
    from gexcore.data.normalize import NormalizeConfig, Normalizer
    from gexcore.tasks.classification import linear_probe

    norm = Normalizer(NormalizeConfig(n_top_genes=_EXPRESSION_TOP_GENES)).fit(adata[train_rows])
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


def stratified_subset(labels, n: int, *, seed: int = 0) -> np.ndarray:
    """Sorted positions of at most `n` items, about equally many per class (all of a small one)."""
    codes = pd.factorize(pd.Series(np.asarray(labels, dtype=object)).astype(str))[0]
    if len(codes) <= n:
        return np.arange(len(codes))
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(np.flatnonzero(codes == c)) for c in np.unique(codes)]
    take, budget = {}, n
    for i, order in sorted(enumerate(orders), key=lambda io: len(io[1])):   # small classes first
        share = budget // (len(orders) - len(take))
        take[i] = order[:share]
        budget -= len(take[i])
    return np.sort(np.concatenate(list(take.values())))


def planted_genes(adata: AnnData, group: str | None = None) -> list[str]:
    """Genes of the simulator's planted modules: of class `group` (`type_<group>*`), or all.

    Empty for a cohort that is not simulated or a class without a module (e.g. Normal).
    """
    modules = adata.uns.get("simulation", {}).get("module_genes", {})
    if group is None:
        return sorted({g for genes in modules.values() for g in genes})
    own = [genes for name, genes in modules.items()
           if name == f"type_{group}" or name.startswith(f"type_{group}_")]
    return sorted({g for genes in own for g in genes})


def planted_hits(ranked_genes, adata: AnnData, group: str | None = None, *,
                 k: int = 20) -> tuple[int, int, float] | None:
    """(planted genes among the first `k`, k, share of planted genes among all ranked genes):
    how well a ranking finds the simulator's modules; None without a planted module."""
    planted = planted_genes(adata, group)
    if not planted:
        return None
    genes = np.asarray([str(g) for g in ranked_genes], dtype=object)
    k = min(k, len(genes))
    return int(np.isin(genes[:k], planted).sum()), k, float(np.isin(genes, planted).mean())


def label_columns(obs: pd.DataFrame) -> list[str]:
    """Columns that can serve as a class label: 2-50 classes, each class not a single sample."""
    out = []
    for column in obs.columns:
        values = obs[column]
        if is_numeric_dtype(values) and not is_bool_dtype(values) and values.nunique() > 10:
            continue
        counts = values.value_counts()
        if 2 <= len(counts) <= _MAX_CLASSES and (counts >= 2).sum() >= 2 \
                and len(counts) < 0.5 * values.notna().sum():
            out.append(str(column))
    preferred = [c for c in ("cancer_type", "label") if c in out]
    return preferred + [c for c in out if c not in preferred]


def survival_columns(obs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(time candidates, event candidates): numeric non-negative columns with many values, and
    0/1 columns; `time` and `event` first when present."""
    times, events = [], []
    for column in obs.columns:
        values = obs[column]
        if not (is_numeric_dtype(values) or is_bool_dtype(values)):
            continue
        v = values.dropna().astype(float)
        if len(v) and v.isin([0.0, 1.0]).all() and v.nunique() == 2:
            events.append(str(column))
        elif len(v) >= 10 and (v >= 0).all() and v.nunique() > 10:
            times.append(str(column))
    return _first(times, "time"), _first(events, "event")


def _first(columns: list[str], name: str) -> list[str]:
    return [name, *[c for c in columns if c != name]] if name in columns else columns


# ---------------------------------------------------------------------------------- helpers

def _labelled(adata: AnnData, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask, labels as strings): rows with a label in a class of at least 2 samples."""
    if label not in adata.obs:
        raise InputError(f"label column {label!r} is not in the clinical data; columns are: "
                         f"{', '.join(map(str, adata.obs.columns))}.")
    values = adata.obs[label]
    y = values.astype(object).where(values.notna(), None).astype(str).to_numpy()
    counts = values.value_counts()
    keep = values.notna().to_numpy() & values.isin(counts[counts >= 2].index).to_numpy()
    if (counts >= 2).sum() < 2:
        raise InputError(f"label column {label!r} needs at least two classes with 2+ samples; "
                         f"it has {counts.to_dict()}.")
    return keep, y


def _survival_rows(adata: AnnData, time: str, event: str):
    for role, column in (("time", time), ("event", event)):
        if column not in adata.obs:
            raise InputError(f"{role} column {column!r} is not in the clinical data; columns "
                             f"are: {', '.join(map(str, adata.obs.columns))}.")
    t = pd.to_numeric(adata.obs[time], errors="coerce").to_numpy(dtype=float)
    raw = adata.obs[event]
    e = pd.to_numeric(raw.astype(float) if is_bool_dtype(raw) else raw,
                      errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(t) & (t > 0) & np.isin(e, (0.0, 1.0))
    if keep.sum() < 10 or e[keep].sum() < 2:
        raise InputError(f"survival needs at least 10 samples with time > 0 in {time!r} and 2 "
                         f"events in {event!r} (0/1); found {int(keep.sum())} samples and "
                         f"{int(e[keep].sum())} events.")
    return keep, t, np.where(keep, e, 0).astype(int)


def _split(adata: AnnData, keep: np.ndarray, strata: np.ndarray, seed: int, test_size: float):
    sub = adata[keep]                     # a view: the split reads obs only
    split = train_test_split(sub, stratify=strata, test_size=test_size, seed=seed)
    return split, sub


def _features(features: np.ndarray | Literal["expression"], adata: AnnData, keep: np.ndarray,
              split) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) feature rows; expression is normalised with a train-fitted Normalizer."""
    rows = np.flatnonzero(keep)
    train, test = rows[split.train], rows[split.test]
    if isinstance(features, str):
        if features != EXPRESSION:
            raise ValueError(f"features must be an array or {EXPRESSION!r}, not {features!r}.")
        from gexcore.data.normalize import NormalizeConfig, Normalizer

        norm = Normalizer(NormalizeConfig(n_top_genes=_EXPRESSION_TOP_GENES)).fit(adata[train])
        return tuple(np.nan_to_num(norm.transform(adata[r]).X) for r in (train, test))
    F = np.asarray(features, dtype=np.float64)
    if F.ndim != 2 or len(F) != adata.n_obs:
        raise InputError(f"features have shape {F.shape}; expected ({adata.n_obs}, d), one row "
                         "per sample of the cohort (embed the cohort with this encoder again).")
    if not np.isfinite(F).all():
        raise InputError("the features hold missing or infinite values; embed the cohort again.")
    return F[train], F[test]
