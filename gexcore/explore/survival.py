"""Survival by any grouping, as cBioPortal and Xena show it: patients split by predicted risk
(cut at quantiles of the TRAINING risks), by a clinical column or by one gene's expression; per
group a Kaplan-Meier curve with numbers at risk, the median survival with its 95% CI and a Cox
hazard ratio against a chosen reference group; one log-rank test across all groups; an optional
landmark time.

Build `SurvivalGroups` with `risk_groups`, `clinical_groups` or `gene_groups`, then
`compare_groups(groups, reference=..., landmark=...)`. Curves, log-rank p and hazard ratios come
from `gexcore.tasks.survival.km_summary` (lifelines); which rows have survival from
`gexcore.data.rules.survival_rows`; p-values are written by `gexcore.viz.format_p`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from gexcore import keys
from gexcore.data.rules import is_label_column, label_columns, survival_rows
from gexcore.errors import InputError

if TYPE_CHECKING:
    from gexcore.explore.holdout import RiskResult
    from gexcore.tasks.survival import KMResult

__all__ = ["MAX_LEVELS", "MIN_GROUP_SIZE", "MIN_LEVEL_SIZE", "SCHEMES", "GroupComparison",
           "SurvivalGroups", "clinical_groups", "compare_groups", "gene_groups",
           "grouping_columns", "is_measurement", "landmark", "parse_cuts", "risk_groups",
           "risk_label"]

Scheme = Literal["median", "tertiles", "quartiles", "custom"]
SCHEMES: tuple[Scheme, ...] = ("median", "tertiles", "quartiles", "custom")
MIN_GROUP_SIZE = 10          # below this a group's curve and hazard ratio are unreliable
MIN_LEVEL_SIZE = 5           # rarer levels of a clinical column are pooled into one group
MAX_LEVELS = 12              # at most this many groups from one clinical column


@dataclass(frozen=True)
class SurvivalGroups:
    """Patients with survival, each in one group; `names` in display order (cuts: low first).

    `group` holds indices into `names`; `ranges` says which values each group holds ('' for a
    categorical level); `title` names what split them, `note` how (thresholds, pooled levels).
    """

    ids: pd.Index
    time: np.ndarray
    event: np.ndarray
    group: np.ndarray
    names: list[str]
    ranges: list[str]
    title: str
    note: str = ""

    def frame(self) -> pd.DataFrame:
        """One row per patient: time, event and group name (for a CSV export)."""
        return pd.DataFrame({"time": self.time, "event": self.event,
                             "group": np.asarray(self.names, dtype=object)[self.group]},
                            index=self.ids)


@dataclass(frozen=True)
class GroupComparison:
    """KM curves (display order), per-group table, log-rank p and warnings for a grouping.

    `table` has one row per group with patients: n, events, median survival and its 95% CI
    (inf = not reached), hazard ratio vs `reference` with its 95% CI and Wald p.
    """

    km: KMResult
    table: pd.DataFrame
    reference: str
    landmark: float | None = None
    n_excluded: int = 0                      # patients no longer at risk at the landmark
    warnings: list[str] = field(default_factory=list)

    @property
    def logrank_p(self) -> float:
        return self.km.logrank_p

    @property
    def small_groups(self) -> list[str]:
        """Groups with fewer than `MIN_GROUP_SIZE` patients."""
        return [str(g) for g, n in self.table["n"].items() if n < MIN_GROUP_SIZE]

    def at_risk_table(self) -> pd.DataFrame:
        """Numbers at risk: one row per group, one column per time tick."""
        ticks = [f"{t:.3g}" for t in self.km.at_risk_times]
        return pd.DataFrame({g.name: self.km.at_risk[g.name] for g in self.km.groups},
                            index=pd.Index(ticks, name="time")).T

    def display_table(self) -> pd.DataFrame:
        """`table` as text: 'median (95% CI)', 'HR (95% CI)', p as clinicians read it."""
        from gexcore.viz import format_p

        t = self.table
        hr = [("1 (reference)" if g == self.reference else
               "n/a" if not np.isfinite(row.hr) else
               f"{row.hr:.2f} ({row.hr_lower:.2f}-{row.hr_upper:.2f})")
              for g, row in t.iterrows()]
        p = ["" if g == self.reference else format_p(v, prefix="") for g, v in t["p"].items()]
        median = [f"{_time(m)} ({_time(lo)}-{_time(hi)})"
                  for m, lo, hi in zip(t["median"], t["median_lower"], t["median_upper"])]
        out = pd.DataFrame({"values": t["range"], "patients": t["n"], "events": t["events"],
                            "median survival (95% CI)": median, "HR (95% CI)": hr, "p": p},
                           index=t.index)
        same = (t["range"] == "") | (t["range"] == t.index)   # levels, or cuts named by value
        return out.drop(columns="values") if same.all() else out


# ------------------------------------------------------------------------------- groupings

def risk_label(name: str) -> str:
    """A risk group's name as a clinician reads it: 'low' -> 'low risk', 'Q4 (high)' ->
    'Q4 (high risk)'."""
    return re.sub(r"\b(low|intermediate|high)\b", r"\1 risk", name)


def risk_groups(result: RiskResult, scheme: Scheme = "median",
                cuts: tuple[float, ...] | None = None) -> SurvivalGroups:
    """Held-out patients of a single-split Cox model in groups cut at quantiles of the
    TRAINING risks (`RiskResult.groups`), named 'low risk' ... 'high risk'."""
    groups, assigned = result.groups(scheme, cuts)
    test = result.test
    cut_text = ", ".join(f"{q:.0%} -> {t:.3g}" for q, t in zip(groups.quantiles_,
                                                               groups.thresholds_))
    return SurvivalGroups(test.index, test["time"].to_numpy(float),
                          test["event"].to_numpy(int), assigned,
                          [risk_label(n) for n in groups.names_], _ranges(groups.thresholds_),
                          "predicted risk",
                          f"cut at quantiles of the training risks ({cut_text})")


def gene_groups(adata: AnnData, gene: str, *, time: str = "time", event: str = "event",
                scheme: Scheme = "median", cuts: tuple[float, ...] | None = None
                ) -> SurvivalGroups:
    """Patients with survival cut by one gene's stored expression (`adata.X`): at its median,
    tertiles or quartiles over those patients, or at `cuts` in expression units
    (`scheme="custom"`). `gene` is an id or a symbol; patients without a value are left out."""
    from gexcore.explore.maps import gene_symbols

    symbols = gene_symbols(adata)
    column = _gene_position(symbols, gene)
    name = str(symbols.iloc[column])
    values = adata[:, column].X
    values = np.asarray(values.toarray() if hasattr(values, "toarray") else values,
                        dtype=float).ravel()
    return _value_groups(adata.obs, values, f"{name} expression", time=time, event=event,
                         scheme=scheme, cuts=cuts)


def clinical_groups(obs: pd.DataFrame, column: str, *, time: str = "time", event: str = "event",
                    scheme: Scheme = "median", cuts: tuple[float, ...] | None = None,
                    min_level: int = MIN_LEVEL_SIZE, max_levels: int = MAX_LEVELS
                    ) -> SurvivalGroups:
    """Patients with survival grouped by a clinical column. A measurement (`is_measurement`,
    e.g. age) is cut like a gene; other columns group by level: missing values are left out,
    levels with fewer than `min_level` patients, and all beyond the `max_levels - 1` largest,
    are pooled into one 'other' group. Levels: an ordered categorical's order, else largest
    first."""
    if column not in obs:
        raise InputError(f"no clinical column {column!r}; columns are: "
                         f"{', '.join(map(str, obs.columns))}.")
    if is_measurement(obs[column]):
        values = pd.to_numeric(obs[column], errors="coerce").to_numpy(dtype=float)
        return _value_groups(obs, values, str(column), time=time, event=event, scheme=scheme,
                             cuts=cuts)
    with_survival, t, e, repeated = _patient_rows(obs, time, event)
    raw = obs[column]
    keep = with_survival & raw.notna().to_numpy()
    levels = raw.astype(object).where(raw.notna(), "").astype(str).to_numpy()
    names, pooled = _levels(raw[keep], levels[keep], min_level, max_levels)
    if len(names) < 2:
        raise InputError(f"clinical column {column!r} has fewer than two values among the "
                         f"{int(keep.sum()):,} patients with survival; pick another column.")
    index = {n: i for i, n in enumerate(names)}             # a pooled level -> the last group
    group = pd.Series(levels[keep]).map(index).fillna(len(names) - 1).to_numpy(dtype=int)
    note = (f"{len(pooled)} level(s) with fewer than {min_level} patients or beyond the "
            f"{max_levels - 1} largest pooled as {names[-1]!r}: {', '.join(pooled[:8])}"
            + (" ..." if len(pooled) > 8 else "")) if pooled else ""
    note = _with_missing(note, int((with_survival & ~keep).sum()), str(column))
    note = _with_repeated(note, repeated)
    return SurvivalGroups(obs.index[keep], t[keep], e[keep], group, names, [""] * len(names),
                          str(column), note)


def grouping_columns(obs: pd.DataFrame, *, exclude: tuple[str, ...] = ()) -> list[str]:
    """Clinical columns that can split survival: label-like columns (2-50 classes, the type
    first) and numeric measurements such as age; `exclude` (time and event) left out."""
    out = [c for c in label_columns(obs) if c not in exclude]
    out += [str(c) for c in obs.columns if str(c) not in exclude and str(c) not in out
            and is_measurement(obs[c])]
    return out


def is_measurement(values: pd.Series) -> bool:
    """A numeric column that is no label (`is_label_column`): cut at quantiles, not by level."""
    return (is_numeric_dtype(values) and not is_bool_dtype(values)
            and not is_label_column(values))


def parse_cuts(text: str) -> tuple[float, ...]:
    """Cut values typed by a user ('6.5', '5, 7'), sorted; InputError names a bad entry."""
    parts = [part for part in re.split(r"[,;\s]+", str(text).strip()) if part]
    values = pd.to_numeric(pd.Series(parts, dtype=object), errors="coerce").to_numpy(float)
    if bad := [part for part, v in zip(parts, values) if not np.isfinite(v)]:
        raise InputError(f"{bad[0]!r} is not a number; type cut values such as 6.5 or 5, 7.")
    return tuple(sorted(set(values.tolist())))


def landmark(groups: SurvivalGroups, t0: float) -> SurvivalGroups:
    """Landmark analysis at `t0`: only patients still at risk (time > t0), time shifted to
    start at t0; groups keep their membership from baseline."""
    if not t0 or t0 <= 0:
        return groups
    at_risk = groups.time > t0
    if not at_risk.any():
        raise InputError(f"no patient is still at risk at the landmark time {t0:g}; the "
                         f"longest follow-up is {groups.time.max():.3g}.")
    return replace(groups, ids=groups.ids[at_risk], time=groups.time[at_risk] - t0,
                   event=groups.event[at_risk], group=groups.group[at_risk])


# ------------------------------------------------------------------------------ comparison

def compare_groups(groups: SurvivalGroups, *, reference: str | None = None,
                   landmark_time: float | None = None, time_unit: str = "") -> GroupComparison:
    """KM curves, numbers at risk, k-group log-rank p, median survival (95% CI) and Cox hazard
    ratios (95% CI) of each group vs `reference` (default: the first group with patients).

    Groups without patients (after the landmark) are left out with a warning.
    """
    from gexcore.tasks.survival import km_summary

    shown = landmark(groups, landmark_time or 0.0)
    present = [i for i in range(len(groups.names)) if (shown.group == i).any()]
    if not present:
        raise InputError("no patients are left in any group.")
    notes = []
    if empty := [groups.names[i] for i in range(len(groups.names)) if i not in present]:
        notes.append(f"No patients in {', '.join(map(repr, empty))}"
                     + (" after the landmark" if shown is not groups else "")
                     + "; left out.")
    names = [groups.names[i] for i in present]
    ref = reference if reference in names else names[0]
    order = [ref, *[n for n in names if n != ref]]       # km_summary compares with its first
    lookup = np.full(len(groups.names), -1)                # group index -> place in order
    lookup[[groups.names.index(n) for n in order]] = np.arange(len(order))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        km = km_summary(shown.time, shown.event, lookup[shown.group], order,
                        time_unit=time_unit)
    notes += [_reworded(w.message) for w in caught if issubclass(w.category, UserWarning)]
    km = replace(km, groups=sorted(km.groups, key=lambda g: names.index(g.name)))
    return GroupComparison(km, _group_table(km, [groups.ranges[i] for i in present], ref),
                           ref, landmark_time or None, len(groups.ids) - len(shown.ids),
                           notes)


def _group_table(km: KMResult, ranges: list[str], reference: str) -> pd.DataFrame:
    """One row per group: n, events, median (95% CI, lifelines on the KM CI), HR (95% CI), p."""
    from lifelines.utils import median_survival_times

    hrs = {h.group: h for h in km.hazard_ratios}
    rows = []
    for g, values in zip(km.groups, ranges):
        ci = median_survival_times(pd.DataFrame({"lower": g.lower, "upper": g.upper},
                                                index=g.timeline))
        hr = hrs.get(g.name)
        rows.append({"group": g.name, "range": values, "n": g.n, "events": g.events,
                     "median": g.median, "median_lower": float(ci["lower"].iloc[0]),
                     "median_upper": float(ci["upper"].iloc[0]),
                     "hr": 1.0 if g.name == reference else hr.hr if hr else np.nan,
                     "hr_lower": hr.lower if hr else np.nan,
                     "hr_upper": hr.upper if hr else np.nan, "p": hr.p if hr else np.nan})
    return pd.DataFrame(rows).set_index("group")


# --------------------------------------------------------------------------------- helpers

def _value_groups(obs: pd.DataFrame, values: np.ndarray, what: str, *, time: str, event: str,
                  scheme: Scheme, cuts: tuple[float, ...] | None) -> SurvivalGroups:
    """Patients with survival and a value, cut at quantiles of those values or at `cuts`."""
    keep, t, e, repeated = _patient_rows(obs, time, event)
    measured = keep & np.isfinite(values)
    if measured.sum() < 2:
        raise InputError(f"{what}: only {int(measured.sum())} patient(s) with survival have a "
                         "value; nothing to compare.")
    x = values[measured]
    if scheme == "custom":
        thresholds = np.asarray(sorted(float(c) for c in (cuts or ())), dtype=float)
        if not len(thresholds) or not np.isfinite(thresholds).all():
            raise InputError(f"{what}: give at least one cut value, e.g. {np.median(x):.3g}.")
        names = _ranges(thresholds)
        how = f"cut at {', '.join(f'{c:.3g}' for c in thresholds)}"
    else:
        from gexcore.tasks.survival import RiskGroups

        fitted = RiskGroups(scheme=scheme).fit(x)
        thresholds, names = fitted.thresholds_, list(fitted.names_)
        how = (f"cut at the {scheme} of the {len(x):,} patients with survival ("
               + ", ".join(f"{q:.0%} -> {c:.3g}" for q, c in zip(fitted.quantiles_, thresholds))
               + ")")
    group = np.searchsorted(thresholds, x, side="left").astype(int)   # a tie goes lower
    note = _with_repeated(_with_missing(how, int((keep & ~np.isfinite(values)).sum()), what),
                          repeated)
    return SurvivalGroups(obs.index[measured], t[measured], e[measured], group, names,
                          _ranges(thresholds), what, note)


def _levels(raw: pd.Series, levels: np.ndarray, min_level: int,
            max_levels: int) -> tuple[list[str], list[str]]:
    """(group names, pooled levels): levels kept in order, then 'other (k levels)' if any."""
    counts = pd.Series(levels).value_counts()
    if isinstance(raw.dtype, pd.CategoricalDtype) and raw.cat.ordered:
        order = [str(c) for c in raw.cat.categories if str(c) in counts.index]
    else:
        order = list(counts.index)                      # largest first
    rare = [lv for lv in order if counts[lv] < min_level]
    if len(rare) <= 1 and len(order) <= max_levels:    # pooling one level changes nothing
        return order, []
    largest = sorted((lv for lv in order if lv not in rare), key=lambda lv: -counts[lv])
    kept = [lv for lv in order if lv in largest[:max_levels - 1]]
    pooled = [lv for lv in order if lv not in kept]
    return [*kept, f"other ({len(pooled)} levels)"], pooled


def _ranges(thresholds) -> list[str]:
    """Which values each group holds: '<= a', '> a and <= b', ..., '> z'."""
    t = [f"{float(c):.3g}" for c in thresholds]
    if not t:
        return ["all"]
    return [f"<= {t[0]}", *[f"> {a} and <= {b}" for a, b in pairwise(t)], f"> {t[-1]}"]


def _gene_position(symbols: pd.Series, gene: str) -> int:
    """Column of `gene` (gene id -> symbol, in cohort order): by id, then by symbol, each
    exactly and then ignoring case."""
    ids, names = pd.Index(symbols.index.astype(str)), pd.Index(symbols.astype(str))
    for index, text in ((ids, str(gene)), (names, str(gene)), (ids.str.lower(), str(gene).lower()),
                        (names.str.lower(), str(gene).lower())):
        if len(found := np.flatnonzero(index == text)):
            return int(found[0])
    raise InputError(f"gene {gene!r} is not in this cohort ({len(ids):,} genes, e.g. "
                     f"{', '.join(names[:3])}).")


def _patient_rows(obs: pd.DataFrame, time: str,
                  event: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """`survival_rows` with one sample per patient (`obs['patient_id']`), a tumour before a
    normal sample, so no patient counts twice; also how many repeated samples were dropped."""
    keep, t, e = survival_rows(obs, time, event)
    if keys.OBS_PATIENT not in obs:
        return keep, t, e, 0
    normal = (obs["sample_type"].astype(str).str.contains("normal", case=False).to_numpy()
              if "sample_type" in obs else np.zeros(len(obs), dtype=bool))
    order = np.lexsort((normal,))                           # stable: tumours first
    patient = obs[keys.OBS_PATIENT].astype(str).to_numpy()[order]
    repeated = np.zeros(len(obs), dtype=bool)
    repeated[order] = pd.Series(patient).where(keep[order]).duplicated().to_numpy() & keep[order]
    return keep & ~repeated, t, e, int(repeated.sum())


def _with_repeated(note: str, n_repeated: int) -> str:
    if not n_repeated:
        return note
    extra = f"{n_repeated:,} further sample(s) of the same patients left out (one per patient)"
    return f"{note}; {extra}" if note else extra


def _with_missing(note: str, n_missing: int, what: str) -> str:
    if not n_missing:
        return note
    extra = f"{n_missing:,} patient(s) with survival but no value in {what} left out"
    return f"{note}; {extra}" if note else extra


def _reworded(message: Warning) -> str:
    """km_summary speaks of risk groups; these groups may come from anything."""
    return str(message).replace("risk group(s)", "group(s)")


def _time(value: float) -> str:
    return "NR" if not np.isfinite(value) else f"{value:.3g}"
