"""Cohort rules, one home each: which samples enter a classification or survival fit, which
columns can serve as a label or as survival time/event, and the survival record in `uns`.

The evaluation protocol, the dashboard's single-split views, out-of-fold maps and the Data
page's column mapping all call these, so a page and a report never disagree on the rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from gexcore import keys
from gexcore.errors import InputError

__all__ = ["MAX_CLASSES", "MIN_CLASS_SIZE", "MIN_EVENTS", "MIN_SURVIVAL_SAMPLES",
           "check_columns", "has_survival", "is_label_column", "label_columns", "labelled_rows",
           "survival_columns", "survival_info", "survival_rows", "time_unit"]

MIN_CLASS_SIZE = 2           # a class with one sample cannot be on both sides of a split
MAX_CLASSES = 50
MIN_SURVIVAL_SAMPLES = 10
MIN_EVENTS = 2
_MAX_NUMERIC_CLASSES = 10    # a numeric column with more distinct values is a measurement


def check_columns(obs: pd.DataFrame, columns: dict[str, str | None]) -> None:
    """Every named column (role -> column) must be in `obs`; the error lists the columns."""
    for role, column in columns.items():
        if column is not None and column not in obs:
            there = ", ".join(map(str, obs.columns)) or "(none: no clinical table joined)"
            raise InputError(f"{role} column {column!r} is not in the clinical data; "
                             f"columns are: {there}.")


def labelled_rows(obs: pd.DataFrame, label: str, *,
                  min_class_size: int = MIN_CLASS_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask, labels as strings): rows with a label in a class of `min_class_size`+ samples.

    Raises `InputError` unless at least two classes are that large.
    """
    check_columns(obs, {"label": label})
    values = obs[label]
    counts = values.value_counts()
    large = counts[counts >= min_class_size]
    if len(large) < 2:
        raise InputError(f"label column {label!r} needs at least two classes with "
                         f"{min_class_size}+ samples; it has {counts.to_dict()}.")
    keep = values.notna().to_numpy() & values.isin(large.index).to_numpy()
    y = values.astype(object).where(values.notna(), None).astype(str).to_numpy()
    return keep, y


def survival_rows(obs: pd.DataFrame, time: str,
                  event: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keep mask, time as float, event as 0/1 int): rows with a time > 0 and a 0/1 event.

    Event is 0 outside `keep`. Raises `InputError` below 10 such rows or 2 events.
    """
    check_columns(obs, {"time": time, "event": event})
    t = pd.to_numeric(obs[time], errors="coerce").to_numpy(dtype=float)
    raw = obs[event]
    e = pd.to_numeric(raw.astype(float) if is_bool_dtype(raw) else raw,
                      errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(t) & (t > 0) & np.isin(e, (0.0, 1.0))
    if keep.sum() < MIN_SURVIVAL_SAMPLES or e[keep].sum() < MIN_EVENTS:
        raise InputError(f"survival needs at least {MIN_SURVIVAL_SAMPLES} samples with time > 0 "
                         f"in {time!r} and {MIN_EVENTS} events in {event!r} (0/1); found "
                         f"{int(keep.sum())} samples and {int(e[keep].sum())} events.")
    return keep, t, np.where(keep, e, 0).astype(int)


def is_label_column(values: pd.Series) -> bool:
    """2-50 classes, two of them with 2+ samples, fewer classes than half the labelled rows;
    a numeric column with more than 10 distinct values is a measurement, not a label."""
    if is_numeric_dtype(values) and not is_bool_dtype(values) \
            and values.nunique() > _MAX_NUMERIC_CLASSES:
        return False
    counts = values.value_counts()
    return (2 <= len(counts) <= MAX_CLASSES and (counts >= MIN_CLASS_SIZE).sum() >= 2
            and len(counts) < 0.5 * values.notna().sum())


def label_columns(obs: pd.DataFrame) -> list[str]:
    """Columns that can serve as a class label; `cancer_type` and `label` first."""
    out = [str(c) for c in obs.columns if is_label_column(obs[c])]
    return _first(_first(out, "label"), "cancer_type")


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
        elif len(v) >= MIN_SURVIVAL_SAMPLES and (v >= 0).all() and v.nunique() > 10:
            times.append(str(column))
    return _first(times, "time"), _first(events, "event")


def has_survival(obs: pd.DataFrame) -> bool:
    """True when the cohort has the standard `obs['time']` and `obs['event']` columns."""
    return keys.OBS_TIME in obs and keys.OBS_EVENT in obs


def survival_info(time_column: str, event_column: str | None, time_unit: str, endpoint: str,
                  time: np.ndarray, event: np.ndarray) -> dict:
    """The `uns['survival']` record: which columns became `obs['time']`/`obs['event']`."""
    return {"time_column": str(time_column), "event_column": event_column,
            "time_unit": str(time_unit), "endpoint": str(endpoint),
            "n_with_time": int(np.isfinite(time).sum()), "n_events": int(np.nansum(event))}


def time_unit(uns: dict, time_column: str) -> tuple[str, str]:
    """(unit, endpoint) of `time_column` from `uns['survival']`; ('', '') when unknown. The
    unit belongs to `obs['time']` and to the clinical column it was read from, no other."""
    survival = uns.get(keys.UNS_SURVIVAL, {})
    if time_column not in (keys.OBS_TIME, survival.get("time_column")):
        return "", ""
    unit = str(survival.get("time_unit", ""))
    return ("" if unit == "unknown" else unit), str(survival.get("endpoint", "") or "")


def _first(columns: list[str], name: str) -> list[str]:
    return [name, *[c for c in columns if c != name]] if name in columns else columns
