"""Plain expression tables (CSV/TSV/TXT, gzip, Parquet) in either orientation -> ParsedMatrix."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gexcore.data._limits import FOOTPRINTS, check_labels, memory_budget
from gexcore.data._numeric import flat_numeric_table, numeric_table
from gexcore.data._source import (
    MISSING_TOKENS,
    ParsedMatrix,
    check_field_counts,
    missing_token_variants,
    numeric_columns,
    read_text,
    table_from_text,
    to_float_matrix,
)
from gexcore.data.genes import looks_like_ensembl
from gexcore.errors import InputError

__all__ = ["Orientation", "orient_table", "read_delimited", "read_parquet_table"]

Orientation = Literal["auto", "genes_by_samples", "samples_by_genes"]

# Non-numeric columns that annotate genes in public matrices (cBioPortal, GDC, Affymetrix).
_GENE_ANNOTATION = {"hugo_symbol", "entrez_gene_id", "description", "gene_name", "gene_type",
                    "gene_symbol", "symbol", "gene", "gene_id", "ensembl_id", "id_ref", "name"}
# Linear time: "a letter, later a digit" is anchored (`^[^A-Za-z]*[A-Za-z]`), so a failing
# label is scanned once, not once per start position (40,000 characters once took 43 s).
_SAMPLE_LIKE = re.compile(r"^(?:TCGA-|SIMU-|GSM\d|SRR\d|ERR\d|SAMN)|^[^A-Za-z]*[A-Za-z].*\d|"
                          r"^\D*\d.*[A-Za-z]|_\d+$", re.IGNORECASE)
_FOOTPRINT = FOOTPRINTS["table"]
_HEAD_ROWS = 200                # rows looked at to decide which columns are text annotation
_GENE_LIKE = re.compile(r"^(?:[A-Z][A-Z0-9]{0,7}(?:-[A-Z0-9]+|\.\d+)?|\d+_(?:s_|x_|a_|i_)?at|"
                        r"[A-Z0-9]+_(?:s_|x_|a_|i_)?at|ILMN_\d+|LOC\d+|LINC\d+|MIR\d+.*|C\d+orf\d+)$")


def read_delimited(path: Path, *, orientation: Orientation = "auto",
                   max_bytes: int | None = None) -> ParsedMatrix:
    """Read a delimited text matrix (ids in the first column), detecting its orientation.

    `max_bytes` is the memory the read may use (default: half of what is available).
    """
    budget = memory_budget(max_bytes)
    text = read_text(path, max_bytes=_FOOTPRINT.text_limit(budget))
    end = text.find("\n")
    if end < 0 or not text[end:].strip():
        raise InputError(f"{path.name}: has a header but no data rows.")
    sep = _detect_separator(text[:end], path)
    text = _fix_r_rownames(text, sep, text[:end].count(sep) + 1)
    n_lines = check_field_counts(text, sep, path)
    # Header parsed apart so pandas cannot rename duplicated ids ("S1" -> "S1.1") behind our back.
    columns = next(csv.reader([text[:text.find("\n")].rstrip("\r")], delimiter=sep))
    check_labels(columns[1:], path, "column name", where="the header line")
    n_rows = max(n_lines - 1, 0)
    frame = None
    if _values_only(text, sep, columns):       # the common case, fast at any width
        _FOOTPRINT.check(path, budget, n_bytes=len(text), n_cells=n_rows * len(columns),
                         n_text_cells=n_rows, n_columns=len(columns))
        frame = flat_numeric_table(text, sep, columns)
    if frame is None:                          # annotation columns: parse column by column
        text_cols, head_ids = _text_columns(text, sep, path, columns)
        _FOOTPRINT.check(path, budget, n_bytes=len(text), n_cells=n_rows * len(columns),
                         n_text_cells=n_rows * len(text_cols), n_columns=len(columns))
        rows, cols = _names_for(orientation, head_ids, columns[1:])
        frame = numeric_table(text, sep, path, names=columns, text_columns=text_cols,
                              rows=rows, cols=cols, header=None, skiprows=1)
    del text
    frame.columns = columns
    if frame.shape[0] == 0:
        raise InputError(f"{path.name}: has a header but no data rows.")
    return orient_table(frame, path, orientation=orientation, fmt=f"delimited ({_SEP_NAME[sep]})")


def _values_only(text: str, sep: str, columns: list[str]) -> bool:
    """True when no column is named as annotation and the first data row is all numbers."""
    if any(str(c).strip().lower() in _GENE_ANNOTATION for c in columns[1:]):
        return False
    start = text.find("\n") + 1
    end = text.find("\n", start)
    cells = pd.Series(text[start:end if end >= 0 else len(text)].rstrip("\r").split(sep)[1:],
                      dtype=object).str.strip().str.strip('"')
    numbers = pd.to_numeric(cells, errors="coerce").notna()
    return bool((numbers | cells.isin(missing_token_variants())).all())


def _text_columns(text: str, sep: str, path: Path,
                  columns: list[str]) -> tuple[set[int], pd.Index]:
    """(Positions of the columns to parse as text, the first rows' ids): the id column and what
    looks like annotation in the first rows. Everything else is read as float64, so the
    memory the parse takes is known before it starts."""
    cut = 0
    for _ in range(_HEAD_ROWS + 1):
        nxt = text.find("\n", cut)
        if nxt < 0:
            cut = len(text)
            break
        cut = nxt + 1
    head = table_from_text(text[:cut], sep, path, header=None, skiprows=1,
                           na_values=missing_token_variants(), converters={0: str})
    ids = pd.Index(head.iloc[:, 0].astype(str)) if head.shape[1] else pd.Index([])
    if head.shape[1] != len(columns):
        return {0}, ids
    head.columns = [str(c).strip() for c in columns]
    mask = _annotation_mask(head.iloc[:, 1:])
    return {0, *(int(i) + 1 for i in np.flatnonzero(mask))}, ids


def _names_for(orientation: Orientation, ids: pd.Index, columns: list[str]) -> tuple[str, str]:
    """("gene", "sample") or the reverse, for messages written before the orientation is final."""
    check = orientation
    if check == "auto":
        check = _guess_orientation(ids, pd.Index(columns)) if len(ids) else "genes_by_samples"
    return ("gene", "sample") if check == "genes_by_samples" else ("sample", "gene")


def read_parquet_table(path: Path, *, orientation: Orientation = "auto",
                       max_bytes: int | None = None) -> ParsedMatrix:
    """Read a Parquet matrix; ids come from the index or, failing that, the first column.

    The footer's row count, column types and uncompressed sizes are checked against the memory
    budget `max_bytes` before any data page is read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(path, "rb") as fh:
        if fh.read(4) != b"PAR1":
            raise InputError(f"{path.name}: not a Parquet file (no PAR1 signature).")
    budget = memory_budget(max_bytes)
    try:
        meta = pq.ParquetFile(path).metadata
        schema = meta.schema.to_arrow_schema()
        n_text = sum(1 for t in schema.types if not pa.types.is_floating(t)
                     and not pa.types.is_integer(t))
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        FOOTPRINTS["parquet"].check(path, budget, n_bytes=size,
                                    n_cells=meta.num_rows * meta.num_columns,
                                    n_text_cells=meta.num_rows * n_text,
                                    n_columns=meta.num_columns,
                                    what=f"{meta.num_rows:,} rows x {meta.num_columns:,} columns")
        # One thread, no pre-buffering: pd.read_parquet with a one-thread pool held ~90 KB
        # per column (1.8 GB for 200 x 20,000), this path ~17 KB.
        frame = pq.read_table(path, use_threads=False, pre_buffer=False
                              ).to_pandas(use_threads=False)
    except InputError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError, IndexError) as err:
        detail = str(err).split("\n")[0][:200]
        raise InputError(f"{path.name}: could not read Parquet ({type(err).__name__}: {detail}); "
                         "the file is damaged or not a table: re-export it.") from err
    if isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index(drop=True)
    else:
        frame = frame.reset_index()
    return orient_table(frame, path, orientation=orientation, fmt="parquet")


_SEP_NAME = {"\t": "tab", ",": "comma", ";": "semicolon", " ": "space"}


def _detect_separator(header: str, path: Path) -> str:
    for sep in ("\t", ",", ";"):
        if sep in header:
            return sep
    if " " in header.strip():
        raise InputError(f"{path.name}: columns look space-separated; save it as CSV or TSV.")
    raise InputError(f"{path.name}: the header line has a single column; expected an id column "
                     "followed by sample (or gene) columns, separated by tabs or commas.")


def _fix_r_rownames(text: str, sep: str, n_header: int) -> str:
    """R's write.table omits the row-name header cell; give it one so the columns line up."""
    start = text.find("\n") + 1
    end = text.find("\n", start)
    second = text[start:end if end >= 0 else len(text)] if start else ""
    if second and second.count(sep) + 1 == n_header + 1:
        return "id" + sep + text
    return text


def orient_table(frame: pd.DataFrame, path: Path, *, orientation: Orientation = "auto",
                 fmt: str = "table") -> ParsedMatrix:
    """Split ids, annotation columns and the numeric block, then put samples on rows.

    Relabels `frame`'s columns in place (stripped strings) rather than copying the table.
    """
    if frame.shape[1] < 2:
        raise InputError(f"{path.name}: only {frame.shape[1]} column(s); expected an id column "
                         "followed by sample (or gene) columns.")
    frame.columns = [str(c).strip() for c in frame.columns]
    id_col = frame.columns[0]
    ids = frame[id_col].astype(str).str.strip()
    check_labels(ids, path, "row id", where="the first column", allow_empty=True)
    check_labels(frame.columns[1:], path, "column name", where="the header")
    body = frame.iloc[:, 1:]
    body.index = pd.Index(ids, name=id_col)
    is_annotation = _annotation_mask(body)
    annotation = list(body.columns[is_annotation])
    numeric = body.loc[:, ~is_annotation]
    if numeric.shape[1] == 0:
        raise InputError(f"{path.name}: no numeric columns found after the id column "
                         f"(columns: {', '.join(map(str, body.columns[:8]))}).")
    if orientation == "auto":
        orientation = _guess_orientation(numeric.index, numeric.columns)
    notes = []
    if orientation == "genes_by_samples":
        values = to_float_matrix(numeric, path, rows="gene", cols="sample").T
        genes = _gene_frame(numeric.index, body.loc[:, is_annotation])
        samples, sample_info = pd.Index(numeric.columns, name="sample"), None
    else:
        values = to_float_matrix(numeric, path, rows="sample", cols="gene")
        genes = pd.DataFrame(index=pd.Index(numeric.columns, name="gene"))
        samples = pd.Index(numeric.index, name="sample")
        sample_info = body.loc[:, is_annotation].set_axis(samples) if annotation else None
        if annotation:
            notes.append(f"kept non-numeric column(s) as sample annotation: {', '.join(annotation)}")
    _check_unique(samples, path, "sample")
    return ParsedMatrix(values=np.ascontiguousarray(values), samples=samples, genes=genes,
                        format=fmt, sample_info=sample_info, notes=notes,
                        orientation=orientation.replace("_by_", " x ").replace("_", " "))


def _annotation_mask(body: pd.DataFrame) -> np.ndarray:
    """Per column: a known annotation name, or mostly text. One vectorised pass over the text
    columns together (a loop over 100,000 columns took 7 s)."""
    named = pd.Index([str(c).strip().lower() for c in body.columns]).isin(_GENE_ANNOTATION)
    is_text = ~numeric_columns(body) & ~named
    mask = named.copy()
    if is_text.any():
        block = body.iloc[:, np.flatnonzero(is_text)].to_numpy(dtype=object)
        text = pd.Series(block.ravel(), dtype=object).astype(str).str.strip()
        present = ~text.str.lower().isin(MISSING_TOKENS).to_numpy(dtype=bool)
        number = pd.to_numeric(text.where(present), errors="coerce").notna().to_numpy(bool)
        n_present = present.reshape(block.shape).sum(axis=0)
        n_number = (number & present).reshape(block.shape).sum(axis=0)
        mask[is_text] = (n_present > 0) & (n_number < 0.5 * n_present)
    return mask


def _gene_score(labels: pd.Index) -> float:
    """How gene-like a set of labels is, from -1 (sample ids) to +1 (gene ids)."""
    s = pd.Series(labels.astype(str))
    if len(s) > 2000:
        s = s.sample(2000, random_state=0)
    gene = looks_like_ensembl(s) | s.str.match(_GENE_LIKE).to_numpy(bool)
    sample = s.str.contains(_SAMPLE_LIKE).to_numpy(bool) & ~gene
    return float(gene.mean() - sample.mean())


def _guess_orientation(rows: pd.Index, cols: pd.Index) -> Orientation:
    """Genes on the side whose labels look more like genes; on a tie, on the longer side."""
    diff = _gene_score(rows) - _gene_score(cols)
    if abs(diff) > 0.2:
        return "genes_by_samples" if diff > 0 else "samples_by_genes"
    return "genes_by_samples" if len(rows) >= len(cols) else "samples_by_genes"


def _gene_frame(ids: pd.Index, annotation: pd.DataFrame) -> pd.DataFrame:
    genes = pd.DataFrame(index=pd.Index(ids, name="gene"))
    lower = {c.lower(): c for c in annotation.columns}
    for src, dst in (("hugo_symbol", "gene_symbol"), ("gene_name", "gene_symbol"),
                     ("gene_symbol", "gene_symbol"), ("symbol", "gene_symbol")):
        if src in lower and dst not in genes:
            genes[dst] = annotation[lower[src]].astype(str).to_numpy()
    for c in annotation.columns:
        if c.lower() not in ("hugo_symbol", "gene_name", "gene_symbol", "symbol"):
            genes[c] = annotation[c].astype(str).to_numpy()
    return genes


def _check_unique(samples: pd.Index, path: Path, what: str) -> None:
    dup = samples[samples.duplicated()]
    if len(dup):
        positions = np.flatnonzero(samples == dup[0])[:3] + 1
        raise InputError(
            f"{path.name}: {what} id '{dup[0]}' appears {int((samples == dup[0]).sum())} times "
            f"(positions {', '.join(map(str, positions))}); {len(dup)} duplicated {what} id(s) in "
            f"all. Rename or drop the duplicates."
        )
