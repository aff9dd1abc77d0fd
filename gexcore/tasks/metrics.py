"""Evaluation metrics: classification scores, Harrell's and Uno's C-index, imputation error.

Arrays in, plain floats, lists and dicts out, so results go straight into JSON reports.
Survival convention everywhere: higher `risk` = shorter survival.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from gexcore.errors import InputError

__all__ = ["UNO_TAU_QUANTILE", "classification_metrics", "harrell_c", "imputation_metrics",
           "survival_scores", "uno_c"]

# Uno's weights 1/G(t)^2 explode where few training samples remain at risk; truncating at this
# quantile of the training follow-up keeps small test sets from swinging.
UNO_TAU_QUANTILE = 0.8

_BLOCK_CELLS = 4_000_000            # pair-matrix cells per block in the C-index (~4 MB bool)
_TIED_TOL = 1e-8                    # risks this close count as tied, as scikit-survival


# ------------------------------------------------------------------------------ classification

def classification_metrics(y_true: Sequence, proba: np.ndarray,
                           classes: Sequence) -> dict:
    """Accuracy, macro-F1, balanced accuracy, per-class scores and confusion of argmax(`proba`).

    `proba` is (n, k) with columns ordered as `classes`; labels are compared as strings.
    Macro-F1 averages over classes present in `y_true` or the predictions (as scikit-learn).
    """
    y = np.asarray(y_true).astype(str).ravel()
    names = [str(c) for c in classes]
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape != (len(y), len(names)):
        raise InputError(f"proba has shape {proba.shape}; expected ({len(y)}, {len(names)}): "
                         "one row per sample, one column per class in `classes` order.")
    unknown = sorted(set(y) - set(names))
    if unknown:
        raise InputError(f"y_true holds {len(unknown)} label(s) not in classes, e.g. "
                         f"{unknown[:5]}; classes are {names[:10]}.")
    pred = np.asarray(names)[np.argmax(proba, axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=names, zero_division=0)
    with warnings.catch_warnings():          # predicted classes absent from y_true are fine
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = balanced_accuracy_score(y, pred)
    per_class = {name: {"precision": float(p), "recall": float(r), "f1": float(f),
                        "support": int(s)}
                 for name, p, r, f, s in zip(names, precision, recall, f1,
                                                 support, strict=True)}
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced),
        "per_class": per_class,
        "confusion": confusion_matrix(y, pred, labels=names).tolist(),
        "classes": names,
    }


# ------------------------------------------------------------------------------------ C-index

def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C: share of comparable pairs where the earlier event has the higher risk.

    A pair is comparable when the shorter time is an event (an event tied in time with a
    censored sample counts as shorter); risks within 1e-8 tie and count 0.5. NaN with no
    comparable pair.
    Matches `sksurv.metrics.concordance_index_censored` and lifelines with `-risk`.
    """
    time, event, risk = _survival_inputs(time, event, risk)
    return _weighted_concordance(time, event, risk, np.ones_like(time))


def uno_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray, train_time: np.ndarray,
          train_event: np.ndarray, tau: float | None = None) -> float:
    """Uno's IPCW C-index, the censoring KM fitted on the training data; pairs truncated at `tau`.

    Matches `sksurv.metrics.concordance_index_ipcw(train, test, risk, tau)`. Test events later
    than the last training time reuse the last censoring estimate.
    """
    time, event, risk = _survival_inputs(time, event, risk)
    train_time, train_event, _ = _survival_inputs(train_time, train_event, train_time)
    g = _censoring_survival(train_time, train_event, time)
    weight = np.zeros_like(time)
    use = event & (time < tau if tau is not None else True)
    if np.any(g[use] <= 0):
        first = time[use][g[use] <= 0].min()
        raise InputError(f"the training censoring survival is 0 at test time {first:g}, so "
                         "Uno's C is undefined; pass a smaller tau (e.g. the 80th percentile "
                         "of training times).")
    weight[use] = 1.0 / g[use] ** 2
    return _weighted_concordance(time, event, risk, weight)


def survival_scores(time: np.ndarray, event: np.ndarray, risk: np.ndarray,
                    train_time: np.ndarray, train_event: np.ndarray) -> dict[str, float]:
    """Harrell's and Uno's C of test `risk` (higher = shorter survival), Uno's truncated at the
    80th percentile of training follow-up: the one scorer of reports and pages."""
    tau = float(np.quantile(np.asarray(train_time, dtype=float), UNO_TAU_QUANTILE))
    return {"c_harrell": harrell_c(time, event, risk),
            "c_uno": uno_c(time, event, risk, train_time, train_event, tau=tau)}


def _survival_inputs(time, event, risk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event).ravel()
    risk = np.asarray(risk, dtype=float).ravel()
    if not len(time) == len(event) == len(risk):
        raise InputError(f"time, event and risk have lengths {len(time)}, {len(event)} and "
                         f"{len(risk)}; they must match (one value per sample).")
    for name, values in (("time", time), ("event", event.astype(float)), ("risk", risk)):
        if not np.all(np.isfinite(values)):
            raise InputError(f"{name} has {int((~np.isfinite(values)).sum())} missing or "
                             "infinite value(s); drop those samples first.")
    if not np.isin(event.astype(float), (0.0, 1.0)).all():
        raise InputError("event must be 0/1 or boolean (1 = event observed, 0 = censored).")
    return time, event.astype(bool), risk


def _weighted_concordance(time: np.ndarray, event: np.ndarray, risk: np.ndarray,
                          weight: np.ndarray) -> float:
    """Sum over comparable pairs (i event, j later) of w_i * [risk_i > risk_j] (ties 0.5)."""
    rows = np.flatnonzero(event & (weight > 0))
    step = max(1, _BLOCK_CELLS // max(len(time), 1))
    numerator = denominator = 0.0
    for start in range(0, len(rows), step):                  # blocks of events, not samples
        i = rows[start:start + step]
        t_i, r_i, w_i = time[i, None], risk[i, None], weight[i]
        comparable = (time > t_i) | ((time == t_i) & ~event)          # (block, n)
        tied = np.abs(risk - r_i) <= _TIED_TOL                        # (block, n)
        score = np.where(tied, 0.5, risk < r_i)
        numerator += float(w_i @ np.where(comparable, score, 0.0).sum(axis=1))
        denominator += float(w_i @ comparable.sum(axis=1))
    return numerator / denominator if denominator > 0 else float("nan")


def _censoring_survival(train_time: np.ndarray, train_event: np.ndarray,
                        at: np.ndarray) -> np.ndarray:
    """Reverse KM G(t) = P(censored after t) of the training data, right-continuous, at `at`.

    Events at a time leave the risk set before censorings at that time (as scikit-survival).
    """
    times, inverse = np.unique(train_time, return_inverse=True)
    n_censored = np.bincount(inverse, weights=~train_event, minlength=len(times))
    n_events = np.bincount(inverse, weights=train_event, minlength=len(times))
    n_total = np.bincount(inverse, minlength=len(times))
    at_risk = len(train_time) - np.concatenate([[0], np.cumsum(n_total)[:-1]]) - n_events
    hazard = np.divide(n_censored, at_risk, out=np.zeros(len(times)), where=n_censored > 0)
    g = np.concatenate([[1.0], np.cumprod(1.0 - hazard)])             # g[0]: before first time
    return g[np.searchsorted(times, at, side="right")]


# ---------------------------------------------------------------------------------- imputation

def imputation_metrics(true: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> dict:
    """RMSE and Pearson r over masked cells only, plus the mean per-gene r.

    `true`, `pred`, `mask` are (samples, genes); masked cells whose true value is missing are
    skipped. `per_gene_r` averages genes with >= 3 masked cells and non-constant values.
    """
    true = np.asarray(true, dtype=float)
    pred = np.asarray(pred, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    if not true.shape == pred.shape == mask.shape:
        raise InputError(f"true, pred and mask have shapes {true.shape}, {pred.shape} and "
                         f"{mask.shape}; they must match.")
    mask = mask & np.isfinite(true)
    if not np.all(np.isfinite(pred[mask])):
        raise InputError("pred has missing or infinite values in masked cells.")
    t, p = true[mask], pred[mask]
    n = int(mask.sum())
    rmse = float(np.sqrt(np.mean((t - p) ** 2))) if n else float("nan")
    return {"rmse": rmse, "pearson_r": _pearson(t, p), "per_gene_r": _per_gene_r(true, pred, mask),
            "n": n}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def _per_gene_r(true: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    if true.ndim != 2:
        return float("nan")
    count = mask.sum(axis=0)                                          # (genes,)
    safe = np.maximum(count, 1)
    t = np.where(mask, true - np.where(mask, true, 0).sum(axis=0) / safe, 0.0)
    p = np.where(mask, pred - np.where(mask, pred, 0).sum(axis=0) / safe, 0.0)
    denom = np.sqrt((t * t).sum(axis=0) * (p * p).sum(axis=0))
    ok = (count >= 3) & (denom > 0)
    if not ok.any():
        return float("nan")
    return float(np.mean((t * p).sum(axis=0)[ok] / denom[ok]))
