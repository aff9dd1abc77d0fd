"""Clinical tables: read plain, cBioPortal, Xena and GDC files; join them to expression samples."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gexcore import keys
from gexcore.data._limits import FOOTPRINTS, check_labels, memory_budget
from gexcore.data._source import MISSING_TOKENS, read_text, table_from_text
from gexcore.errors import InputError

__all__ = ["JoinReport", "MatchLevel", "join_clinical", "patient_ids", "read_clinical"]

logger = logging.getLogger(__name__)

MatchLevel = Literal["exact", "sample", "patient"]

MAX_COLUMNS = 10_000            # clinical exports have hundreds; more is a wrong separator
_FOOTPRINT = FOOTPRINTS["clinical"]

ID_COLUMNS = ("SAMPLE_ID", "sample", "sampleID", "sample_id", "submitter_id", "case_submitter_id",
              "cases.submitter_id", "PATIENT_ID", "patient", "ID")
# GDC writes "'--" for empty fields; cBioPortal writes bracketed tokens such as "[Not Available]".
_MISSING = frozenset(MISSING_TOKENS) | {"'--", "--", "#n/a", "nat"}
_BRACKETED = r"\[[^\]]*\]"
_BARCODE = r"^((?:TCGA|TARGET)-[A-Z0-9]{2}-[A-Z0-9]{4,6})(?:-(\d{2})[A-Z]?(?=-|$))?"
_LEVEL_TEXT = {"exact": "exact ids", "sample": "sample-level barcodes, first 15 characters",
               "patient": "patient-level barcodes, first 12 characters"}


# ---------------------------------------------------------------------------------- reading

def read_clinical(path: str | Path, *, sample_column: str | None = None,
                  max_bytes: int | None = None) -> pd.DataFrame:
    """Read a clinical table (CSV/TSV/TXT, gzip; cBioPortal, Xena, GDC) indexed by sample id.

    Numeric columns become numbers, missing tokens NaN. `attrs` carry source, format, id_column,
    display_names, datatypes, n_duplicates_dropped, duplicate_ids and n_missing_ids.
    `max_bytes` is the memory the read may use (default: half of what is available).
    """
    path = Path(path)
    budget = memory_budget(max_bytes)
    text = read_text(path, max_bytes=_FOOTPRINT.text_limit(budget))
    n_bytes = len(text)
    lines = text.splitlines()
    del text
    while lines and not lines[0].strip():
        lines.pop(0)
    n_meta = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    meta, body = lines[:n_meta], lines[n_meta:]
    if not body:
        raise InputError(f"{path.name}: no header line after the '#' comment lines; "
                         "re-export the clinical table.")
    sep = _detect_sep(body[0], path)
    n_columns = body[0].count(sep) + 1
    if n_columns > MAX_COLUMNS:
        raise InputError(f"{path.name}: the header has {n_columns:,} columns; a clinical table "
                         f"may have at most {MAX_COLUMNS:,}. Keep the columns you need (or check "
                         "the separator).")
    _FOOTPRINT.check(path, budget, n_bytes=n_bytes, n_text_cells=len(body) * n_columns,
                     n_columns=n_columns)
    header = table_from_text(body[0], sep, path, nrows=0).columns
    check_labels(header, path, "column name", where="the header line", allow_empty=True)
    table = table_from_text("\n".join(body), sep, path,
                            converters={i: str for i in range(len(header) + 1)})
    if isinstance(table.index, pd.MultiIndex):               # pandas made the extras an index
        raise InputError(
            f"{path.name}: data rows have {table.index.nlevels} more fields than the header "
            f"line ({len(header)} names); fix the header or the separators, or re-export it.")
    if not isinstance(table.index, pd.RangeIndex):           # R write.table: no header for ids
        table = table.set_axis(table.index.astype(str)).rename_axis("id").reset_index()
    if table.empty:
        raise InputError(f"{path.name}: has a header ({', '.join(map(str, header[:5]))}, ...) "
                         "but no data rows; export the table with its rows.")
    table.columns = [_clean_name(c, i) for i, c in enumerate(table.columns)]
    attrs = {"source": path.name, "format": _format_of(table.columns, meta, sep),
             **_cbioportal_meta(meta, sep, table.columns)}
    id_column = _id_column(table.columns, sample_column, path)
    ids = table[id_column].astype(str).str.strip()
    check_labels(ids, path, "sample id", where=f"column '{id_column}'", allow_empty=True)
    frame = _typed(table.drop(columns=id_column), attrs.get("datatypes", {}))
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


def _source(clinical: pd.DataFrame) -> str:
    return str(clinical.attrs.get("source", "clinical table"))


def _listing(columns: Sequence[object], limit: int = 20) -> str:
    names = [f"'{c}'" for c in list(columns)[:limit]]
    more = f" (+{len(columns) - limit} more)" if len(columns) > limit else ""
    return ", ".join(names) + more


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
