"""Survival heads: Cox partial likelihood in torch, a ridge Cox estimator, risk groups, KM."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from gexcore.errors import InputError
from gexcore.tasks.metrics import harrell_c

__all__ = ["CoxHead", "HazardRatio", "KMGroup", "KMResult", "RiskGroups", "cox_loss",
           "km_summary", "survival_target"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HazardRatio:
    """Hazard ratio of `group` vs `reference` with its 95% CI and Wald p-value."""

    group: str
    reference: str
    hr: float
    lower: float
    upper: float
    p: float


@dataclass(frozen=True)
class KMGroup:
    """Kaplan-Meier curve of one risk group; `median` is inf when not reached."""

    name: str
    timeline: np.ndarray      # event/censor times, starting at 0
    survival: np.ndarray      # KM estimate at timeline
    lower: np.ndarray         # 95% CI
    upper: np.ndarray
    n: int
    events: int
    median: float             # median survival time (inf if not reached)


@dataclass(frozen=True)
class KMResult:
    """KM curves, numbers at risk, log-rank p and hazard ratios of risk groups."""

    groups: list[KMGroup]                 # ordered low risk -> high risk
    at_risk_times: np.ndarray             # ticks for the numbers-at-risk table
    at_risk: dict[str, list[int]]         # group name -> numbers at risk at at_risk_times
    logrank_p: float                      # multivariate log-rank across groups
    hazard_ratios: list[HazardRatio]      # each group vs the lowest-risk group
    time_unit: str = ""


# ------------------------------------------------------------------------------------ Cox loss

def cox_loss(risk: torch.Tensor, time: torch.Tensor | np.ndarray, event: torch.Tensor | np.ndarray,
             ties: Literal["efron", "breslow"] = "efron") -> torch.Tensor:
    """Negative Cox partial log-likelihood of `risk` (log hazard ratios) per observed event.

    `risk` is (n,) or (n, 1); higher = shorter survival. Tied event times use Efron's or
    Breslow's approximation. A batch without events gives a zero loss that keeps the graph.
    """
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow', not {ties!r}.")
    risk = risk.reshape(-1)
    time = torch.as_tensor(time, device=risk.device).reshape(-1)
    event = torch.as_tensor(event, device=risk.device).reshape(-1).to(risk.dtype)
    if not risk.shape == time.shape == event.shape:
        raise ValueError(f"risk, time and event have {risk.numel()}, {time.numel()} and "
                         f"{event.numel()} values; they must match.")
    n_events = event.sum()
    if n_events == 0:
        return risk.sum() * 0.0
    order = torch.argsort(time, descending=True, stable=True)
    eta, event = risk[order], event[order]
    _, group, counts = torch.unique_consecutive(time[order], return_inverse=True,
                                                return_counts=True)
    last = torch.cumsum(counts, 0) - 1                     # last index of each tied-time group
    log_risk_set = torch.logcumsumexp(eta, 0)[last][group]  # log sum exp(eta) over time >= t_i
    if ties == "efron":
        log_risk_set = log_risk_set + _efron_correction(eta, event, group, log_risk_set)
    return -((eta - log_risk_set) * event).sum() / n_events


def _efron_correction(eta: torch.Tensor, event: torch.Tensor, group: torch.Tensor,
                      log_risk_set: torch.Tensor) -> torch.Tensor:
    """log(1 - l/d * E/S) for the l-th of d events tied at a time (E: their exp-risk sum).

    Inputs are sorted by time with `group` the tied-time index; rows that are not events get
    terms the caller multiplies by zero.
    """
    n_groups = int(group.max()) + 1
    d = torch.zeros(n_groups, dtype=eta.dtype, device=eta.device).index_add(0, group, event)
    # E/S per group, each exp(eta_i - log S) <= 1 since i is in its own risk set
    share = torch.zeros_like(d).index_add(0, group, event * torch.exp(eta - log_risk_set))
    before = torch.cumsum(d, 0) - d                        # events in earlier groups
    rank = torch.cumsum(event, 0) - 1 - before[group]      # l = 0 .. d-1 within the group
    frac = rank / d[group].clamp(min=1)
    return torch.log1p(-(frac * share[group]).clamp(max=1.0 - 1e-12) * event)


# ------------------------------------------------------------------------------------ Cox head

def survival_target(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Structured (event bool, time float) array, as `sksurv.util.Surv.from_arrays` makes."""
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event).ravel()
    if len(time) != len(event):
        raise InputError(f"time has {len(time)} values and event {len(event)}; they must match.")
    if not (np.isfinite(time).all() and np.isin(event.astype(float), (0.0, 1.0)).all()):
        raise InputError("time must be finite and event 0/1 (1 = observed); drop samples with "
                         "missing survival first.")
    y = np.empty(len(time), dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = event.astype(bool), time
    return y


def _split_target(y) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) from a structured array whose fields are (event, time) in that order."""
    y = np.asarray(y)
    names = y.dtype.names
    if names is None or len(names) != 2:
        raise InputError("y must be a structured array of (event, time), e.g. from "
                         "survival_target(time, event) or sksurv.util.Surv.from_arrays.")
    return y[names[1]].astype(float), y[names[0]].astype(bool)


class CoxHead(BaseEstimator):
    """Linear Cox model with a ridge penalty, fitted by LBFGS on standardised features.

    Minimises `cox_loss` (per event) + penalizer / 2 * ||coef||^2; `coef_` is per standard
    deviation of each feature. `predict_risk` is the log hazard ratio: higher = shorter survival.
    """

    def __init__(self, *, penalizer: float = 0.1, ties: Literal["efron", "breslow"] = "efron",
                 max_iter: int = 200):
        self.penalizer = penalizer
        self.ties = ties
        self.max_iter = max_iter

    def fit(self, X: np.ndarray, y: np.ndarray) -> CoxHead:
        """Fit on X (n_samples, n_features) and y structured (event, time)."""
        X = _check_X(X)
        time, event = _split_target(y)
        if len(time) != len(X):
            raise InputError(f"X has {len(X)} rows but y has {len(time)}; they must match.")
        if not event.any():
            raise InputError(f"none of the {len(time)} samples has an event; a Cox model needs "
                             "at least one observed event.")
        if self.penalizer < 0:
            raise ValueError(f"penalizer must be >= 0, not {self.penalizer}.")
        self.n_features_in_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)      # constant features stay at 0
        Xs = torch.from_numpy((X - self.mean_) / self.scale_)
        coef = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([coef], lr=1.0, max_iter=self.max_iter, tolerance_grad=1e-9,
                                tolerance_change=1e-12, line_search_fn="strong_wolfe")
        t, e = torch.from_numpy(time), torch.from_numpy(event)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = cox_loss(Xs @ coef, t, e, self.ties) + 0.5 * self.penalizer * coef @ coef
            loss.backward()
            return loss

        opt.step(closure)
        self.coef_ = coef.detach().numpy().copy()
        self.n_iter_ = int(opt.state[coef].get("n_iter", 0))
        return self

    def predict_risk(self, X: np.ndarray) -> np.ndarray:
        """Log hazard ratio per sample (n_samples,); higher = shorter survival."""
        check_is_fitted(self)
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise InputError(f"X has {X.shape[1]} features; the model was fitted on "
                             f"{self.n_features_in_}.")
        return (X - self.mean_) / self.scale_ @ self.coef_

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Harrell's C of `predict_risk(X)` against y structured (event, time)."""
        time, event = _split_target(y)
        return harrell_c(time, event, self.predict_risk(X))


def _check_X(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise InputError(f"X must be 2-D (samples, features); got shape {X.shape}.")
    if not np.isfinite(X).all():
        raise InputError(f"X has {int((~np.isfinite(X)).sum())} missing or infinite value(s); "
                         "impute or drop them first.")
    return X


# --------------------------------------------------------------------------------- risk groups

_QUANTILES = {"median": (0.5,), "tertiles": (1 / 3, 2 / 3), "quartiles": (0.25, 0.5, 0.75)}
_NAMES = {"median": ["low", "high"], "tertiles": ["low", "intermediate", "high"],
          "quartiles": ["Q1 (low)", "Q2", "Q3", "Q4 (high)"]}


class RiskGroups(BaseEstimator):
    """Cut risk scores into groups at quantiles of the TRAINING risks; 0 = lowest risk.

    `scheme="custom"` takes `cuts`, increasing quantiles in (0, 1). A risk equal to a threshold
    goes to the lower group.
    """

    def __init__(self, *, scheme: Literal["median", "tertiles", "quartiles", "custom"] = "median",
                 cuts: tuple[float, ...] | None = None):
        self.scheme = scheme
        self.cuts = cuts

    def fit(self, train_risk: np.ndarray, y=None) -> RiskGroups:
        """Learn `thresholds_` and `names_` from training risks (n_samples,)."""
        risk = _check_risk(train_risk)
        quantiles = self._quantiles()
        self.quantiles_ = np.asarray(quantiles, dtype=float)
        self.thresholds_ = np.quantile(risk, self.quantiles_)
        k = len(quantiles) + 1
        self.names_ = list(_NAMES.get(self.scheme) or
                           [f"G{i + 1}" + (" (low)" if i == 0 else " (high)" if i == k - 1
                                           else "") for i in range(k)])
        return self

    def assign(self, risk: np.ndarray) -> np.ndarray:
        """Group index per sample (n_samples,) int: 0 = lowest risk."""
        check_is_fitted(self)
        return np.searchsorted(self.thresholds_, _check_risk(risk), side="left").astype(int)

    def _quantiles(self) -> tuple[float, ...]:
        if self.scheme in _QUANTILES:
            return _QUANTILES[self.scheme]
        if self.scheme != "custom":
            raise ValueError(f"scheme must be one of {[*_QUANTILES, 'custom']}, not "
                             f"{self.scheme!r}.")
        cuts = tuple(float(c) for c in (self.cuts or ()))
        if not cuts or not all(0 < c < 1 for c in cuts) or any(np.diff(cuts) <= 0):
            raise ValueError(f"custom cuts must be increasing quantiles in (0, 1), e.g. "
                             f"(0.25, 0.75); got {self.cuts!r}.")
        return cuts


def _check_risk(risk) -> np.ndarray:
    risk = np.asarray(risk, dtype=float).ravel()
    if not len(risk) or not np.isfinite(risk).all():
        raise InputError("risk must be a non-empty array of finite scores.")
    return risk


# ----------------------------------------------------------------------------- Kaplan-Meier

def km_summary(time: np.ndarray, event: np.ndarray, groups: np.ndarray, names: list[str], *,
               time_unit: str = "", n_ticks: int = 6) -> KMResult:
    """KM curves (95% CI), numbers at risk, log-rank p and HRs vs group 0 of risk groups.

    `groups` holds indices into `names` (ordered low -> high risk, as `RiskGroups.assign`).
    Empty groups are dropped with a warning; with fewer than 2 left, p is NaN and no HRs.
    """
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    time, event = _split_target(survival_target(time, event))
    groups = np.asarray(groups).ravel()
    if len(groups) != len(time) or not np.isin(groups, np.arange(len(names))).all():
        raise InputError(f"groups must hold {len(time)} indices in 0..{len(names) - 1} "
                         f"(one per sample, into names {list(names)}).")
    present = [g for g in range(len(names)) if (groups == g).any()]
    empty = [names[g] for g in range(len(names)) if g not in present]
    if empty:
        warnings.warn(f"risk group(s) {empty} have no samples and are left out of the "
                      "Kaplan-Meier summary.", stacklevel=2)
    ticks = _round_ticks(float(time.max()) if len(time) else 0.0, n_ticks)
    curves, at_risk = [], {}
    for g in present:                                      # a handful of groups, not samples
        in_g = groups == g
        kmf = KaplanMeierFitter().fit(time[in_g], event[in_g], label=names[g])
        ci = kmf.confidence_interval_.to_numpy()
        curves.append(KMGroup(name=names[g], timeline=kmf.timeline.astype(float),
                              survival=kmf.survival_function_.iloc[:, 0].to_numpy(),
                              lower=ci[:, 0], upper=ci[:, 1], n=int(in_g.sum()),
                              events=int(event[in_g].sum()),
                              median=float(kmf.median_survival_time_)))
        at_risk[names[g]] = (time[in_g, None] >= ticks).sum(axis=0).astype(int).tolist()
    if len(present) < 2:
        return KMResult(curves, ticks, at_risk, float("nan"), [], time_unit)
    keep = np.isin(groups, present)
    p = float(multivariate_logrank_test(time[keep], groups[keep], event[keep]).p_value)
    hrs = _hazard_ratios(time[keep], event[keep], groups[keep], [names[g] for g in present],
                         present)
    return KMResult(curves, ticks, at_risk, p, hrs, time_unit)


def _hazard_ratios(time: np.ndarray, event: np.ndarray, groups: np.ndarray, names: list[str],
                   present: list[int]) -> list[HazardRatio]:
    """Unpenalised Cox on group dummies, each vs the first (lowest-risk) group; NaN if it fails."""
    import pandas as pd
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    dummies = {f"g{k}": (groups == g).astype(float) for k, g in enumerate(present) if k > 0}
    frame = pd.DataFrame({**dummies, "time": time, "event": event.astype(float)})
    # A group without events has an infinite (or zero) hazard ratio: the fit would return a
    # huge number with a meaningless interval, so it is reported as NaN instead.
    no_events = [g for g in present if not event[groups == g].any()]
    summary = None
    if no_events:
        warnings.warn(f"{len(no_events)} risk group(s) have no events; hazard ratios are "
                      "undefined and reported as NaN.", stacklevel=3)
    else:
        try:
            summary = CoxPHFitter().fit(frame, "time", "event").summary
        except ConvergenceError as err:
            warnings.warn(f"hazard ratios could not be estimated ({err}); reported as NaN.",
                          stacklevel=3)
    out = []
    for k, name in enumerate(names[1:], start=1):
        row = summary.loc[f"g{k}"] if summary is not None else None
        values = ((row["exp(coef)"], row["exp(coef) lower 95%"], row["exp(coef) upper 95%"],
                   row["p"]) if row is not None else (np.nan,) * 4)
        out.append(HazardRatio(name, names[0], *(float(v) for v in values)))
    return out


def _round_ticks(end: float, n_ticks: int) -> np.ndarray:
    """At most `n_ticks` round times from 0 to `end` (steps of 1, 2, 2.5 or 5 x 10^k)."""
    if end <= 0 or n_ticks < 2:
        return np.zeros(1)
    raw = end / (n_ticks - 1)
    power = 10.0 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return np.arange(0.0, end + 1e-9 * end, step)
