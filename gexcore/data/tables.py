"""Plain expression tables (CSV/TSV/TXT, gzip, Parquet) in either orientation -> ParsedMatrix."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gexcore.data._source import (
    MISSING_TOKENS,
    ParsedMatrix,
    check_field_counts,
    missing_token_variants,
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
_SAMPLE_LIKE = re.compile(r"^(?:TCGA-|SIMU-|GSM\d|SRR\d|ERR\d|SAMN)|[a-z].*\d|\d.*[a-z]|_\d+$",
                          re.IGNORECASE)
_GENE_LIKE = re.compile(r"^(?:[A-Z][A-Z0-9]{0,7}(?:-[A-Z0-9]+|\.\d+)?|\d+_(?:s_|x_|a_|i_)?at|"
                        r"[A-Z0-9]+_(?:s_|x_|a_|i_)?at|ILMN_\d+|LOC\d+|LINC\d+|MIR\d+.*|C\d+orf\d+)$")


def read_delimited(path: Path, *, orientation: Orientation = "auto",
                   max_bytes: int | None = None) -> ParsedMatrix:
    """Read a delimited text matrix (ids in the first column), detecting its orientation."""
    text = read_text(path, max_bytes=max_bytes)
    header, _, rest = text.partition("\n")
    if not rest.strip():
        raise InputError(f"{path.name}: has a header but no data rows.")
    sep = _detect_separator(header, path)
    n_header_fields = header.count(sep) + 1
    text = _fix_r_rownames(text, sep, n_header_fields)
    check_field_counts(text, sep, path)
    # Header parsed apart so pandas cannot rename duplicated ids ("S1" -> "S1.1") behind our back.
    columns = next(csv.reader([text.split("\n", 1)[0].rstrip("\r")], delimiter=sep))
    # Missing tokens parse as NaN in value columns (keeping them numeric and fast), never in ids.
    tokens = missing_token_variants()
    frame = table_from_text(text, sep, path, header=None, skiprows=1,
                            na_values={i: tokens for i in range(1, len(columns))})
    frame.columns = columns
    if frame.shape[0] == 0:
        raise InputError(f"{path.name}: has a header but no data rows.")
    return orient_table(frame, path, orientation=orientation, fmt=f"delimited ({_SEP_NAME[sep]})")


def read_parquet_table(path: Path, *, orientation: Orientation = "auto") -> ParsedMatrix:
    """Read a Parquet matrix; ids come from the index or, failing that, the first column."""
    with open(path, "rb") as fh:
        if fh.read(4) != b"PAR1":
            raise InputError(f"{path.name}: not a Parquet file (no PAR1 signature).")
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise InputError(f"{path.name}: could not read Parquet ({err}).") from err
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
    second = text.split("\n", 2)[1] if text.count("\n") >= 1 else ""
    if second and second.count(sep) + 1 == n_header + 1:
        return "id" + sep + text
    return text


def orient_table(frame: pd.DataFrame, path: Path, *, orientation: Orientation = "auto",
                 fmt: str = "table") -> ParsedMatrix:
    """Split ids, annotation columns and the numeric block, then put samples on rows."""
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    id_col = frame.columns[0]
    ids = frame[id_col].astype(str).str.strip()
    body = frame.drop(columns=id_col)
    body.index = pd.Index(ids, name=id_col)
    is_annotation = np.array([_is_annotation(body.iloc[:, i], c) for i, c in enumerate(body.columns)],
                             dtype=bool)
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


def _is_annotation(col: pd.Series, name: str) -> bool:
    """A column is annotation if it is a known annotation name or mostly text."""
    if name.lower() in _GENE_ANNOTATION:
        return True
    if pd.api.types.is_numeric_dtype(col):
        return False
    text = col.astype(str).str.strip()
    present = ~text.str.lower().isin(MISSING_TOKENS)
    number = pd.to_numeric(text[present], errors="coerce").notna()
    return bool(present.any()) and number.mean() < 0.5


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
