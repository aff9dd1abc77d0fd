"""Clinical tables: read plain, cBioPortal, Xena and GDC files; find survival; join to samples."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gexcore import keys
from gexcore.data._source import MISSING_TOKENS, read_text, table_from_text
from gexcore.errors import InputError

__all__ = ["read_clinical", "SurvivalColumns", "detect_survival", "survival_arrays",
           "JoinReport", "join_clinical", "patient_ids", "TimeUnit", "MatchLevel"]

logger = logging.getLogger(__name__)

TimeUnit = Literal["days", "months", "years", "unknown"]
MatchLevel = Literal["exact", "sample", "patient"]

ID_COLUMNS = ("SAMPLE_ID", "sample", "sampleID", "sample_id", "submitter_id", "case_submitter_id",
              "cases.submitter_id", "PATIENT_ID", "patient", "ID")
# GDC writes "'--" for empty fields; cBioPortal writes bracketed tokens such as "[Not Available]".
_MISSING = frozenset(MISSING_TOKENS) | {"'--", "--", "#n/a", "nat"}
_BRACKETED = r"\[[^\]]*\]"
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
_BARCODE = r"^((?:TCGA|TARGET)-[A-Z0-9]{2}-[A-Z0-9]{4,6})(?:-(\d{2})[A-Z]?(?=-|$))?"
_LEVEL_TEXT = {"exact": "exact ids", "sample": "sample-level barcodes, first 15 characters",
               "patient": "patient-level barcodes, first 12 characters"}


# ---------------------------------------------------------------------------------- reading

def read_clinical(path: str | Path, *, sample_column: str | None = None) -> pd.DataFrame:
    """Read a clinical table (CSV/TSV/TXT, gzip; cBioPortal, Xena, GDC) indexed by sample id.

    Numeric columns become numbers, missing tokens NaN. `attrs` carry source, format, id_column,
    display_names, datatypes, n_duplicates_dropped, duplicate_ids and n_missing_ids.
    """
    path = Path(path)
    lines = read_text(path).splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    n_meta = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    meta, body = lines[:n_meta], lines[n_meta:]
    if not body:
        raise InputError(f"{path.name}: no header line after the '#' comment lines; "
                         "re-export the clinical table.")
    sep = _detect_sep(body[0], path)
    header = table_from_text(body[0], sep, path, nrows=0).columns
    table = table_from_text("\n".join(body), sep, path,
                            converters={i: str for i in range(len(header) + 1)})
    if not isinstance(table.index, pd.RangeIndex):           # R write.table: no header for ids
        table = table.set_axis(table.index.astype(str)).rename_axis("id").reset_index()
    if table.empty:
        raise InputError(f"{path.name}: has a header ({', '.join(map(str, header[:5]))}, ...) "
                         "but no data rows; export the table with its rows.")
    table.columns = [_clean_name(c, i) for i, c in enumerate(table.columns)]
    attrs = {"source": path.name, "format": _format_of(table.columns, meta, sep),
             **_cbioportal_meta(meta, sep, table.columns)}
    id_column = _id_column(table.columns, sample_column, path)
    frame = _typed(table.drop(columns=id_column), attrs.get("datatypes", {}))
    ids = table[id_column].str.strip()
    has_id = ~_missing_mask(ids, _MISSING)
    frame = frame.set_axis(pd.Index(ids, name=id_column))[has_id.to_numpy()]
    duplicated = frame.index.duplicated(keep="first")
    if duplicated.any():
        logger.warning("%s: %d duplicated id(s) in column '%s' (e.g. %s); kept the first row.",
                       path.name, duplicated.sum(), id_column, frame.index[duplicated][0])
    attrs.update(id_column=id_column, n_duplicates_dropped=int(duplicated.sum()),
                 duplicate_ids=list(dict.fromkeys(frame.index[duplicated]))[:10],
                 n_missing_ids=int((~has_id).sum()))
    frame = frame[~duplicated]
    frame.attrs = attrs
    return frame


def _detect_sep(header: str, path: Path) -> str:
    counts = {sep: header.count(sep) for sep in ("\t", ",", ";", "|")}
    best = max(counts, key=counts.get)
    if counts[best] == 0:                                    # one column only
        return "," if ".csv" in path.name.lower() else "\t"
    return "\t" if counts["\t"] else best                    # names may hold commas, not tabs


def _clean_name(name: object, position: int) -> str:
    text = str(name).strip()
    # R's write.csv leaves the row-name column unnamed; pandas calls it "Unnamed: 0"
    return "id" if position == 0 and (not text or text.startswith("Unnamed: ")) else text


def _format_of(columns: pd.Index, meta: list[str], sep: str) -> str:
    if meta and {"PATIENT_ID", "SAMPLE_ID"} & set(columns):
        return "cbioportal"
    if sep == "\t" and columns[0] in ("sample", "sampleID", "submitter_id.samples"):
        return "xena"
    if {"case_submitter_id", "cases.submitter_id"} & set(columns):
        return "gdc"
    return "table"


def _cbioportal_meta(meta: list[str], sep: str, columns: pd.Index) -> dict:
    """Display names and datatypes from cBioPortal's four '#' header lines, when they fit."""
    rows = [line[1:].split(sep) for line in meta]
    if len(rows) < 4 or any(len(r) != len(columns) for r in rows[:3]):
        return {"display_names": {}}
    return {"display_names": dict(zip(columns, (s.strip() for s in rows[0]))),
            "descriptions": dict(zip(columns, (s.strip() for s in rows[1]))),
            "datatypes": dict(zip(columns, (s.strip().upper() for s in rows[2])))}


def _id_column(columns: pd.Index, wanted: str | None, path: Path) -> str:
    if wanted is not None:
        if wanted in columns:
            return wanted
        folded = [c for c in columns if c.lower() == wanted.lower()]
        if len(folded) == 1:
            return folded[0]
        raise InputError(f"{path.name}: no column '{wanted}' to use as sample id; the columns are "
                         f"{_listing(columns)}. Pass one of them as sample_column.")
    lower = {c.lower(): c for c in reversed(columns)}        # first spelling wins
    return next((lower[c.lower()] for c in ID_COLUMNS if c.lower() in lower), columns[0])


def _missing_mask(text: pd.Series, tokens: frozenset[str]) -> pd.Series:
    """Cells meaning "not measured"; each distinct value is tested once (clinical text repeats)."""
    distinct = pd.Series(text.dropna().unique(), dtype=object)
    lowered = distinct.astype(str).str.strip().str.lower()
    tokens_here = distinct[lowered.isin(tokens) | lowered.str.fullmatch(_BRACKETED, na=False)]
    return text.isna() | text.isin(tokens_here)


def _typed(table: pd.DataFrame, datatypes: dict[str, str]) -> pd.DataFrame:
    """Blank missing tokens and turn columns that wholly parse into numbers; strip the rest."""
    # ids stay text so "007" keeps its zeros; cBioPortal says which columns are STRING
    id_like = table.columns.str.contains(r"(?:^|_)(?:id|patient|barcode)$", case=False)
    declared_text = [datatypes.get(c, "NUMBER") != "NUMBER" for c in table.columns]
    out = table.astype(object)
    for name, keep_text in zip(table.columns, id_like | np.asarray(declared_text, dtype=bool)):
        numeric = pd.to_numeric(table[name], errors="coerce")
        unparsed = numeric.isna()
        missing = unparsed & _missing_mask(table[name].where(unparsed), _MISSING)
        if not keep_text and (numeric.notna() | missing).all() and not missing.all():
            out[name] = numeric
        else:
            out[name] = table[name].str.strip().mask(missing)
    return out


def _listing(columns: Sequence[object], limit: int = 20) -> str:
    names = [f"'{c}'" for c in list(columns)[:limit]]
    more = f" (+{len(columns) - limit} more)" if len(columns) > limit else ""
    return ", ".join(names) + more


# --------------------------------------------------------------------------------- survival

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


def _source(clinical: pd.DataFrame) -> str:
    return str(clinical.attrs.get("source", "clinical table"))


def _row(clinical: pd.DataFrame, i: int) -> str:
    return f"row {i + 1} (id '{clinical.index[i]}')"


# ------------------------------------------------------------------------------------- join

@dataclass(frozen=True)
class JoinReport:
    """How expression sample ids were matched to clinical rows."""

    n_samples: int
    n_matched: int
    match_level: MatchLevel
    unmatched_samples: tuple[str, ...] = ()             # first 10
    unused_clinical_ids: tuple[str, ...] = ()           # first 10
    n_unused_clinical: int = 0

    @property
    def n_unmatched(self) -> int:
        return self.n_samples - self.n_matched

    def summary(self) -> str:
        """One line, e.g. '187 of 189 samples matched clinical rows (exact ids); unmatched: a'."""
        text = (f"{self.n_matched} of {self.n_samples} samples matched clinical rows "
                f"({_LEVEL_TEXT[self.match_level]})")
        if self.n_unmatched:
            more = ", ..." if self.n_unmatched > len(self.unmatched_samples) else ""
            text += f"; unmatched: {', '.join(self.unmatched_samples)}{more}"
        if self.n_unused_clinical:
            text += f"; {self.n_unused_clinical} clinical row(s) unused"
        return text

    def as_dict(self) -> dict:
        """Plain values for `uns` / JSON."""
        out = asdict(self)
        out.update(unmatched_samples=list(self.unmatched_samples),
                   unused_clinical_ids=list(self.unused_clinical_ids), summary=self.summary())
        return out


def join_clinical(sample_ids: Sequence[str],
                  clinical: pd.DataFrame) -> tuple[pd.DataFrame, JoinReport]:
    """Clinical rows aligned to `sample_ids` (NaN rows where unmatched), and how they matched.

    Ids compare upper-cased with '.' read as '-'; TCGA barcodes also match at sample (15 chars)
    or patient (12 chars) level, whichever matches most. Adds column `clinical_id`.
    """
    samples = pd.Index([str(s) for s in sample_ids])
    sample_norm, clinical_norm = _norm_ids(samples), _norm_ids(clinical.index)
    rows = {level: _match(_id_keys(sample_norm, level), _id_keys(clinical_norm, level))
            for level in ("exact", "sample", "patient")}
    counts = {level: int((r >= 0).sum()) for level, r in rows.items()}
    level = max(counts, key=counts.get)                      # ties keep the finer level
    if counts[level] == 0:
        raise InputError(
            f"{_source(clinical)}: none of the {len(samples)} expression sample ids matched the "
            f"{len(clinical)} clinical ids (tried exact ids, then TCGA sample and patient "
            f"barcodes). Samples look like {_listing(samples[:3])}; clinical ids (column "
            f"'{clinical.index.name}') look like {_listing(clinical.index[:3])}. Is the id column "
            "right? Use sample_column=... to pick another.")
    picked = rows[level]
    obs = clinical.reset_index(drop=True).reindex(picked).set_axis(samples)
    obs.insert(0, "clinical_id", pd.Series(clinical.index, dtype=object).reindex(picked).values)
    unused = np.flatnonzero(~np.isin(np.arange(len(clinical)), picked))
    report = JoinReport(
        n_samples=len(samples), n_matched=counts[level], match_level=level,
        unmatched_samples=tuple(samples[picked < 0][:10]),
        unused_clinical_ids=tuple(str(i) for i in clinical.index[unused[:10]]),
        n_unused_clinical=len(unused))
    logger.info("%s", report.summary())
    return obs, report


def patient_ids(sample_ids: Sequence[str]) -> pd.Series:
    """Patient id per sample: the first 12 characters of TCGA barcodes, else the id itself."""
    samples = pd.Index([str(s) for s in sample_ids])
    patient = _norm_ids(samples).str.extract(_BARCODE, expand=True)[0]
    return pd.Series(patient.fillna(pd.Series(samples)).to_numpy(), index=samples,
                     name=keys.OBS_PATIENT)


def _norm_ids(ids: pd.Index) -> pd.Series:
    # R's make.names turns the dashes of TCGA barcodes into dots
    return pd.Series(ids.astype(str)).str.strip().str.upper().str.replace(".", "-", regex=False)


def _id_keys(norm: pd.Series, level: MatchLevel) -> pd.Series:
    if level == "exact":
        return norm
    parts = norm.str.extract(_BARCODE, expand=True)
    if level == "patient":
        return parts[0].fillna(norm)
    return (parts[0] + "-" + parts[1]).fillna(norm)


def _match(sample_keys: pd.Series, clinical_keys: pd.Series) -> np.ndarray:
    """Position of each sample's clinical row (first one per key), -1 where none."""
    first = np.flatnonzero(~clinical_keys.duplicated().to_numpy())
    found = pd.Index(clinical_keys.iloc[first]).get_indexer(sample_keys)
    return np.append(first, -1)[found]                      # -1 (not found) picks the -1
