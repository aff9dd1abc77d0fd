"""Survival columns in clinical tables: find time/event pairs, parse events, check times."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from gexcore.data.clinical import _MISSING, _listing, _missing_mask, _source
from gexcore.errors import InputError

__all__ = ["SurvivalColumns", "TimeUnit", "detect_survival", "survival_arrays"]

TimeUnit = Literal["days", "months", "years", "unknown"]

_EVENT_MISSING = _MISSING | {"not reported", "unknown", "not available", "not applicable"}
_EVENT_WORDS = {
    **dict.fromkeys(("1", "true", "yes", "dead", "deceased", "died", "death", "recurred",
                     "progressed", "recurred/progressed", "relapsed", "recurrence",
                     "progression"), 1.0),
    **dict.fromkeys(("0", "false", "no", "alive", "living", "censored", "diseasefree",
                     "disease free", "disease-free", "progressionfree", "tumor free"), 0.0),
}
_ACCEPTED_EVENTS = ("0/1, true/false, yes/no, coded labels such as '1:DECEASED' / '0:LIVING' "
                    "(the number before ':' is used), or dead/deceased/died/alive/living/censored")
_GDC_GROUPS = {"cases", "demographic", "diagnoses", "follow_ups", "treatments", "exposures",
               "project", "family_histories", "pathology_details"}
_ENDPOINTS = {"os": "OS", "overall_survival": "OS", "survival": "OS", "death": "OS",
              "dss": "DSS", "disease_specific_survival": "DSS", "pfs": "PFS", "pfi": "PFI",
              "progression_free_survival": "PFS", "dfs": "DFS", "disease_free": "DFS",
              "disease_free_survival": "DFS", "dfi": "DFI", "rfs": "RFS", "dmfs": "DMFS",
              "mfs": "MFS", "tdm": "TDM", "ttp": "TTP"}
_ENDPOINT_RANK = ("OS", "unspecified", "DSS", "PFS", "PFI", "DFS", "DFI", "RFS", "DMFS", "MFS",
                  "TDM", "TTP")
_OS_EVENTS = ("vital_status", "os_status", "os", "dead", "death", "deceased")
_UNITS = {"day": "days", "days": "days", "month": "months", "months": "months",
          "year": "years", "years": "years"}


@dataclass(frozen=True)
class SurvivalColumns:
    """Which clinical columns hold survival time and event; falsy when none were found.

    `censor_time_column` is GDC's follow-up time, used for rows whose event is 0.
    """

    time_column: str | None = None
    event_column: str | None = None
    time_unit: TimeUnit = "unknown"
    endpoint: str | None = None
    censor_time_column: str | None = None
    candidates: tuple[SurvivalColumns, ...] = field(default=(), compare=False)

    def __bool__(self) -> bool:
        return self.time_column is not None

    def as_dict(self) -> dict[str, str]:
        """Plain strings for `uns[keys.UNS_SURVIVAL]` (None dropped: .h5ad cannot store it)."""
        out = {k: v for k, v in asdict(self).items() if k != "candidates" and v is not None}
        return {k: str(v) for k, v in out.items()}


def detect_survival(clinical: pd.DataFrame, *, time_column: str | None = None,
                    event_column: str | None = None) -> SurvivalColumns:
    """Find survival time/event column pairs (best first: OS); named columns override."""
    for name in (time_column, event_column):
        if name is not None and name not in clinical.columns:
            raise InputError(f"{_source(clinical)}: no column '{name}'; the columns are "
                             f"{_listing(clinical.columns)}.")
    found = _survival_pairs(clinical)
    if time_column is None and event_column is None:
        return replace(found[0], candidates=tuple(found)) if found else SurvivalColumns()
    chosen = next((c for c in found if time_column in (None, c.time_column)
                   and event_column in (None, c.event_column)), None)
    if chosen is None:
        if time_column is None or event_column is None:
            given = time_column or event_column
            raise InputError(f"{_source(clinical)}: found no column to pair with '{given}'; "
                             "pass both time_column and event_column.")
        parsed = _parse_time_name(time_column)
        prefix, unit = parsed if parsed else (None, "unknown")
        chosen = SurvivalColumns(time_column, event_column, unit, _endpoint(prefix, event_column))
    return replace(chosen, candidates=(chosen, *[c for c in found if c != chosen]))


def _survival_pairs(clinical: pd.DataFrame) -> list[SurvivalColumns]:
    names = [str(c) for c in clinical.columns]
    by_key = {}
    for name in reversed(names):                             # first spelling wins
        by_key[_norm_name(name)] = name
    follow_up = by_key.get("days_to_last_follow_up") or by_key.get("days_to_last_followup")
    pairs = []
    for name in names:
        parsed = _parse_time_name(name)
        if parsed is None or not _has_numbers(clinical[name]):
            continue
        prefix, unit = parsed
        event = next((by_key[k] for k in _event_keys(prefix) if k in by_key), None)
        if event is None or event == name:
            continue
        censor = follow_up if _norm_name(name) == "days_to_death" else None
        pairs.append(SurvivalColumns(name, event, unit, _endpoint(prefix, event), censor))
    unique = list({(p.time_column, p.event_column): p for p in reversed(pairs)}.values())[::-1]
    rank = {e: i for i, e in enumerate(_ENDPOINT_RANK)}
    return sorted(unique, key=lambda p: (rank.get(p.endpoint, len(rank)), names.index(
        p.time_column)))


def _norm_name(name: str) -> str:
    head, _, rest = name.partition(".")
    if rest and head.lower() in _GDC_GROUPS:                 # new GDC exports: demographic.x
        name = rest
    return re.sub(r"[.\s\-]+", "_", name.strip().lower())


def _parse_time_name(name: str) -> tuple[str | None, TimeUnit] | None:
    """(endpoint prefix, unit) when `name` looks like a survival time column, else None."""
    key = _norm_name(name)
    if m := re.fullmatch(r"days_to_(?P<p>.+)", key):
        return m["p"], "days"
    if m := re.fullmatch(r"(?:(?P<p>.+?)_)?(?P<u>days?|months?|years?)", key):
        return m["p"], _UNITS[m["u"]]
    if m := re.fullmatch(r"(?:(?P<p>.+?)_)?time", key):
        xena = m["p"] is not None and name.strip().endswith(".time")   # Xena: OS.time in days
        return m["p"], "days" if xena else "unknown"
    if m := re.fullmatch(r"t_(?P<p>[a-z0-9]+)", key):        # t.rfs / e.rfs (Bioconductor)
        return m["p"], "unknown"
    return None


def _event_keys(prefix: str | None) -> list[str]:
    own = [f"{prefix}{s}" for s in ("", "_status", "_event", "_events", "_ind", "_indicator")]
    own = [*own, f"e_{prefix}"] if prefix else ["event", "status"]
    return own + list(_OS_EVENTS) if prefix is None or _ENDPOINTS.get(prefix) == "OS" else own


def _endpoint(prefix: str | None, event: str) -> str:
    if prefix is None:
        return "OS" if _norm_name(event) in _OS_EVENTS else "unspecified"
    return _ENDPOINTS.get(prefix, prefix.upper())


def _has_numbers(column: pd.Series) -> bool:
    return bool(pd.to_numeric(column, errors="coerce").notna().any())


def survival_arrays(clinical: pd.DataFrame,
                    columns: SurvivalColumns) -> tuple[np.ndarray, np.ndarray]:
    """Float64 (time, event) arrays in row order; event 1 = observed, 0 = censored, NaN = missing.

    Time is in `columns.time_unit`; for GDC, censored rows take `censor_time_column`.
    """
    if not columns:
        raise InputError(f"{_source(clinical)}: no survival columns were found; name them with "
                         "detect_survival(..., time_column=..., event_column=...).")
    event = _parse_events(clinical[columns.event_column], clinical)
    time = _parse_numbers(clinical[columns.time_column], clinical)
    if columns.censor_time_column is not None:
        censored = _parse_numbers(clinical[columns.censor_time_column], clinical)
        time = np.where(event == 1, time, np.where(event == 0, censored, np.nan))
    negative = np.flatnonzero(time < 0)
    if len(negative):
        i = negative[0]
        column = columns.time_column if event[i] == 1 or columns.censor_time_column is None \
            else columns.censor_time_column
        raise InputError(f"{_source(clinical)}: column '{column}', {_row(clinical, i)} has "
                         f"negative time {time[i]:g} ({len(negative)} such row(s)); survival "
                         "times must be >= 0. Fix or blank those cells.")
    return time.astype(np.float64), event


def _parse_events(column: pd.Series, clinical: pd.DataFrame) -> np.ndarray:
    text = column.astype("string").str.strip().str.lower()
    missing = _missing_mask(text, _EVENT_MISSING).to_numpy()
    coded = pd.to_numeric(text.str.extract(r"^(\d+(?:\.\d*)?)\s*:", expand=False),
                          errors="coerce")                  # cBioPortal '1:DECEASED'
    value = coded.fillna(text.map(_EVENT_WORDS).astype(float))
    value = value.fillna(pd.to_numeric(text, errors="coerce")).to_numpy(dtype=float)
    bad = np.flatnonzero(~missing & ~np.isin(value, (0.0, 1.0)))
    if len(bad):
        i = bad[0]
        hint = (" If 1 = censored and 2 = event (R's survival coding), subtract 1 first."
                if value[i] == 2 else "")
        raise InputError(f"{_source(clinical)}: column '{column.name}', {_row(clinical, i)} "
                         f"holds '{column.iloc[i]}', which is not an event value "
                         f"({len(bad)} such row(s)). Accepted: {_ACCEPTED_EVENTS}; missing may be "
                         f"empty, NA or '[Not Available]'.{hint}")
    return np.where(missing, np.nan, value)


def _parse_numbers(column: pd.Series, clinical: pd.DataFrame) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=float, na_value=np.nan)
    text = column.astype("string").str.strip()
    missing = _missing_mask(text, _EVENT_MISSING).to_numpy()
    value = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~missing & np.isnan(value))
    if len(bad):
        i = bad[0]
        raise InputError(f"{_source(clinical)}: column '{column.name}', {_row(clinical, i)} "
                         f"holds '{column.iloc[i]}', which is not a number ({len(bad)} such "
                         "row(s)). Survival times must be numbers; blank the cells that are "
                         "unknown.")
    return np.where(missing, np.nan, value)


def _row(clinical: pd.DataFrame, i: int) -> str:
    return f"row {i + 1} (id '{clinical.index[i]}')"
