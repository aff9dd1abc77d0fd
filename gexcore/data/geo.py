"""GEO series matrix files (`GSExxxx_series_matrix.txt.gz`): probe table plus sample annotation."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from gexcore.data._limits import FOOTPRINTS, check_labels, memory_budget
from gexcore.data._numeric import numeric_table
from gexcore.data._source import (
    ParsedMatrix,
    check_field_counts,
    read_head_text,
    read_text,
    to_float_matrix,
)
from gexcore.errors import InputError

__all__ = ["is_geo_series_matrix", "read_geo_series_matrix"]

logger = logging.getLogger(__name__)

_FOOTPRINT = FOOTPRINTS["geo"]
_BEGIN = "!series_matrix_table_begin"
_END = "!series_matrix_table_end"
_CHARACTERISTICS = r"^characteristics_ch(\d+)$"
# A series matrix puts a tab after the key; SOFT files write '!Series_title = ...' instead.
_FIRST_LINE = re.compile(r"^!(Series|Sample)_\w+\t")


def is_geo_series_matrix(path: str | Path) -> bool:
    """True when the first line is a tab-separated `!Series_` / `!Sample_` field (gzip or not)."""
    lines = [ln for ln in read_head_text(Path(path)).splitlines() if ln.strip()]
    return bool(lines) and _FIRST_LINE.match(lines[0]) is not None


def read_geo_series_matrix(path: str | Path, *, max_bytes: int | None = None) -> ParsedMatrix:
    """Probes x GSM table -> samples x probes; `!Sample_*` lines -> `sample_info`, one row per GSM.

    `sample_info.attrs["series"]` holds the `!Series_*` fields (title, geo_accession, ...).
    """
    path = Path(path)
    budget = memory_budget(max_bytes)
    text = read_text(path, max_bytes=_FOOTPRINT.text_limit(budget))
    header, table_text, first_line = _split_blocks(text, path)
    del text
    # The !Sample_ lines become one Python string per cell; the table's values are floats.
    _FOOTPRINT.check(path, budget, n_bytes=len(header) + len(table_text),
                     n_text_cells=header.count("\t"), n_columns=0)
    series = _series_fields(header)
    info = _sample_info(header, path)
    frame = _expression_table(table_text, path, first_line, budget)
    info = _match_samples(info, frame.columns, path)
    values = np.ascontiguousarray(to_float_matrix(frame, path, rows="probe", cols="sample").T)
    info.attrs["series"] = series
    logger.info("read GEO %s: %d samples x %d probes", series.get("geo_accession", path.name),
                *values.shape)
    return ParsedMatrix(values=values, samples=pd.Index(frame.columns.astype(str)),
                        genes=pd.DataFrame(index=frame.index), format="geo", sample_info=info,
                        notes=_notes(series, values), orientation="genes x samples")


def _line_start(text: str, marker: str, start: int = 0) -> int:
    """Offset of the first line at or after `start` that begins with `marker`, or -1."""
    if text.startswith(marker, start):
        return start
    i = text.find("\n" + marker, start)
    return i + 1 if i >= 0 else -1


def _split_blocks(text: str, path: Path) -> tuple[str, str, int]:
    """(header lines, table text from its ID_REF line, 1-based line number of that line)."""
    begin = _line_start(text, _BEGIN)
    if begin < 0:
        raise InputError(
            f"{path.name}: no '{_BEGIN}' line, so this is not a GEO series matrix; download "
            "GSExxxx_series_matrix.txt.gz from the series' 'Series Matrix File(s)' link (SOFT "
            "and MINiML files are different formats)."
        )
    start = text.find("\n", begin) + 1 or len(text)
    end = _line_start(text, _END, start)
    if end < 0:
        raise InputError(
            f"{path.name}: the expression table has no '{_END}' line, so the file is truncated; "
            "download it again."
        )
    return text[:begin], text[start:end], text.count("\n", 0, start) + 1


def _cells(line: str) -> list[str]:
    return [c.strip().strip('"').strip() for c in line.rstrip("\r").split("\t")]


def _series_fields(header: str) -> dict[str, str]:
    """`!Series_*` lines -> {field: value}; repeated lines and multiple cells join with '; '."""
    series: dict[str, str] = {}
    for line in header.split("\n"):            # header lines, a few dozen; not genes or samples
        if line.startswith("!Series_"):
            key, *cells = _cells(line)
            value = "; ".join(c for c in cells if c)
            key = key[len("!Series_"):]
            series[key] = f"{series[key]}; {value}" if key in series else value
    return series


def _sample_info(header: str, path: Path) -> pd.DataFrame:
    """`!Sample_*` lines (one cell per GSM) -> a frame indexed by GSM accession."""
    lines = pd.Series([ln.rstrip("\r") for ln in header.split("\n") if ln.startswith("!Sample_")],
                      dtype=object)
    fields = lines.str.split("\t").str[0].str.slice(len("!Sample_"))
    where = np.flatnonzero(fields == "geo_accession")
    if not len(where):
        raise InputError(f"{path.name}: no '!Sample_geo_accession' line before the table, so the "
                         "samples cannot be named; download the series matrix again.")
    n_cells = lines.str.count("\t").to_numpy()
    bad = np.flatnonzero(n_cells != n_cells[where[0]])
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"{path.name}: '!Sample_{fields[i]}' has {n_cells[i]} values but "
            f"'!Sample_geo_accession' has {n_cells[where[0]]}; the file was edited or is "
            "damaged, so download it again."
        )
    # Drop each cell's surrounding quotes line by line, before splitting into samples.
    unquoted = lines.str.replace(r'(^|\t)"|"(?=\t|$)', r"\1", regex=True)
    cells = unquoted.str.split("\t", expand=True).iloc[:, 1:]
    accessions = pd.Index(cells.iloc[where[0]].str.strip().to_numpy(), dtype=object)
    check_labels(accessions, path, "sample id", where="'!Sample_geo_accession'")
    if accessions.has_duplicates:
        raise InputError(f"{path.name}: '!Sample_geo_accession' lists "
                         f"'{accessions[accessions.duplicated()][0]}' twice; download it again.")
    return _pivot_fields(fields, cells.set_axis(accessions, axis=1), accessions)


def _pivot_fields(fields: pd.Series, cells: pd.DataFrame, accessions: pd.Index) -> pd.DataFrame:
    """One column per field; characteristics cells 'key: value' get a column per key."""
    long = cells.assign(_field=fields.to_numpy()).melt(id_vars="_field", var_name="sample",
                                                        value_name="text")
    text = long["text"].str.strip()
    channel = long["_field"].str.extract(_CHARACTERISTICS, expand=False)
    parts = text.str.partition(":")
    before, colon, after = parts[0].str.strip(), parts[1], parts[2].str.strip()
    keyed = channel.notna() & (colon == ":") & (before != "")
    key = long["_field"].where(~keyed, before)
    # Keys from channel 2, or clashing with a plain field such as 'title', keep their channel.
    clash = keyed & ((channel != "1") | key.isin(set(long.loc[channel.isna(), "_field"])))
    key = key.where(~clash, key + "_ch" + channel)
    line = np.tile(np.arange(len(fields)), cells.shape[1])     # melt stacks sample by sample
    long = pd.DataFrame({"sample": long["sample"], "key": key, "line": line,
                         "text": text.where(~keyed, after)})
    long = long[(long["text"] != "") & (long["key"] != "geo_accession")]
    repeated = long.duplicated(["sample", "key"], keep=False)
    joined = (long[repeated].groupby(["sample", "key"], sort=False)["text"]
              .agg("; ".join).reset_index())
    wide = pd.concat([long[~repeated], joined]).pivot(index="sample", columns="key", values="text")
    order = long.sort_values("line", kind="stable")["key"].drop_duplicates()
    return wide.reindex(index=accessions, columns=order).rename_axis(index=None, columns=None)


def _expression_table(table_text: str, path: Path, first_line: int,
                      budget: int) -> pd.DataFrame:
    """The ID_REF x GSM table as floats, indexed by probe id (text)."""
    if not table_text.strip():
        raise InputError(f"{path.name}: nothing between '{_BEGIN}' and '{_END}'; download the "
                         "series matrix again.")
    n_lines = check_field_counts(table_text, "\t", path, first_line=first_line)
    names = _cells(table_text[:table_text.find("\n")])
    check_labels(names[1:], path, "sample id", where=f"the table header on line {first_line}")
    n_rows = max(n_lines - 1, 0)
    _FOOTPRINT.check(path, budget, n_bytes=len(table_text), n_cells=n_rows * len(names),
                     n_text_cells=n_rows, n_columns=len(names))
    frame = numeric_table(table_text, "\t", path, names=names, rows="probe", cols="sample")
    frame = frame.set_index(frame.columns[0])
    check_labels(frame.index, path, "probe id", where="the ID_REF column", allow_empty=True)
    if frame.empty:
        raise InputError(
            f"{path.name}: the series matrix table has a header but no probe rows; RNA-seq series "
            "usually keep their values in supplementary files (see !Series_supplementary_file), "
            "so read those instead."
        )
    return frame


def _match_samples(info: pd.DataFrame, columns: pd.Index, path: Path) -> pd.DataFrame:
    """Put sample_info in table order; refuse table columns that are not the listed GSMs."""
    columns = pd.Index(columns.astype(str))
    extra = columns.difference(info.index, sort=False)
    missing = info.index.difference(columns, sort=False)
    if len(extra) or len(missing):             # pandas renames a repeated column 'GSM1.1'
        first = extra[0] if len(extra) else missing[0]
        raise InputError(
            f"{path.name}: the table's sample columns do not match '!Sample_geo_accession': "
            f"{len(extra)} column(s) are not among the accessions and {len(missing)} "
            f"accession(s) have no column (first: '{first}'); the file was edited or is "
            "damaged, so download it again."
        )
    return info.loc[columns]


def _notes(series: dict[str, str], values: np.ndarray) -> list[str]:
    accession, title = series.get("geo_accession", "unknown accession"), series.get("title", "")
    platform = series.get("platform_id")
    on = f" on {platform}" if platform else ""
    notes = [f"GEO series {accession}: {title}" if title else f"GEO series {accession}",
             f"Genes are the platform's probe ids (ID_REF){on}; they need the platform "
             "annotation (GPL table) to become gene symbols."]
    n_missing = int(np.isnan(values).sum())
    if n_missing:
        notes.append(f"{n_missing} cell(s) were null or empty and are kept as missing values.")
    return notes
