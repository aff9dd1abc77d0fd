"""GCT 1.2 and 1.3 expression files (GenePattern, CMap, GTEx, CCLE): genes x samples."""

from __future__ import annotations

import logging
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
    table_from_text,
    to_float_matrix,
)
from gexcore.data.genes import looks_like_ensembl
from gexcore.errors import InputError

__all__ = ["is_gct", "read_gct"]

logger = logging.getLogger(__name__)

_FOOTPRINT = FOOTPRINTS["gct"]
_DIMENSIONS = {"#1.2": ("rows", "columns"),
               "#1.3": ("rows", "columns", "row-metadata fields", "column-metadata fields")}
_SYMBOL_COLUMNS = ("gene_symbol", "pr_gene_symbol", "symbol", "hugo_symbol", "gene_name")
_ENSEMBL_COLUMNS = ("ensembl_id", "ensembl", "gene_id", "pr_gene_id")
_SYMBOL_LIKE = r"[A-Za-z0-9][A-Za-z0-9._\-/@]*"
# GCT and CMap spellings of "not given" in metadata; they become NaN.
_NOT_GIVEN = ["", "na", "NA", "-666", "nan", "NaN"]


def is_gct(path: str | Path) -> bool:
    """True when the first line is the GCT version line '#1.2' or '#1.3' (plain or gzip)."""
    first = read_head_text(Path(path)).split("\n", 1)[0]
    return first.rstrip("\r\t ") in _DIMENSIONS


def read_gct(path: str | Path, *, max_bytes: int | None = None) -> ParsedMatrix:
    """GCT 1.2/1.3 -> samples x genes; row metadata -> `genes`, column metadata -> `sample_info`.

    A 1.2 file's Description is kept as `genes["Description"]`; `gene_symbol` / `ensembl_id`
    are added when the ids or metadata clearly hold them. Metadata 'na' / '-666' become NaN.
    """
    path = Path(path)
    budget = memory_budget(max_bytes)
    text = read_text(path, max_bytes=_FOOTPRINT.text_limit(budget))
    version, dims, body = _preamble(text, path)
    del text
    n_rows, n_cols = dims[0], dims[1]
    n_row_meta, n_col_meta = (dims[2], dims[3]) if version == "#1.3" else (1, 0)
    header = _check_header(body, path, n_cols, n_row_meta)
    n_lines = check_field_counts(body, "\t", path, first_line=3)
    n_data = max(n_lines - 1 - n_col_meta, 0)
    _FOOTPRINT.check(path, budget, n_bytes=len(body), n_cells=n_data * len(header),
                     n_text_cells=n_data * (1 + n_row_meta) + n_col_meta * len(header),
                     n_columns=len(header))
    meta = range(1 + n_row_meta)
    frame = numeric_table(body, "\t", path, names=header, text_columns=meta, rows="gene",
                          cols="sample", first_data_line=1 + n_col_meta,
                          skiprows=range(1, 1 + n_col_meta),
                          converters=dict.fromkeys(meta, str)).set_index(header[0])
    check_labels(frame.index, path, "gene id", where="the first column", allow_empty=True)
    if len(frame) != n_rows:
        fix = ("the file looks truncated, so download it again" if len(frame) < n_rows
               else "correct the row count on line 2")
        raise InputError(f"{path.name}: line 2 declares {n_rows} rows (genes) but {len(frame)} "
                         f"data rows were found; {fix}.")
    values = to_float_matrix(frame.iloc[:, n_row_meta:], path, rows="gene", cols="sample")
    genes, symbol_note = _gene_table(frame.iloc[:, :n_row_meta].rename_axis(header[0]))
    info = _column_meta(body, path, header, n_row_meta, n_col_meta) if n_col_meta else None
    notes = [f"GCT {version[1:]}: {n_rows} genes x {n_cols} samples"
             + (f", {n_row_meta} row- and {n_col_meta} column-metadata fields."
                if version == "#1.3" else ".")] + symbol_note
    logger.info("read GCT %s: %d genes x %d samples", path.name, n_rows, n_cols)
    return ParsedMatrix(values=np.ascontiguousarray(values.T),
                        samples=pd.Index(header[1 + n_row_meta:]), genes=genes, format="gct",
                        sample_info=info, notes=notes, orientation="genes x samples")


def _preamble(text: str, path: Path) -> tuple[str, list[int], str]:
    """Version line, dimension numbers, and the text from the header line on."""
    lines = text.split("\n", 2)
    version = lines[0].rstrip("\r\t ")          # spreadsheet exports pad lines with tabs
    if version not in _DIMENSIONS:
        raise InputError(
            f"{path.name}: line 1 is '{version[:40]}', but a GCT file starts with '#1.2' or "
            "'#1.3'; fix the version line, or read the file as a plain table."
        )
    if len(lines) < 3 or not lines[2].strip():
        raise InputError(f"{path.name}: ends after line {min(len(lines), 2)}; a GCT file needs a "
                         "dimensions line, a header and data rows, so download it again.")
    fields = [f.strip() for f in lines[1].rstrip("\r").split("\t") if f.strip()]
    names = _DIMENSIONS[version]
    if len(fields) != len(names) or not all(f.isdigit() for f in fields):
        raise InputError(
            f"{path.name}: line 2 is '{lines[1].strip()[:60]}', but GCT {version[1:]} expects "
            f"{len(names)} whole numbers separated by tabs: {', '.join(names)}."
        )
    return version, [int(f) for f in fields], lines[2]


def _check_header(body: str, path: Path, n_cols: int, n_row_meta: int) -> list[str]:
    """Header fields; the sample count must match line 2 and sample ids must be unique."""
    header = body.split("\n", 1)[0].rstrip("\r").split("\t")
    found = max(len(header) - 1 - n_row_meta, 0)
    if found != n_cols:
        raise InputError(
            f"{path.name}: line 2 declares {n_cols} columns (samples) but the header on line 3 "
            f"has {found} after the id and {n_row_meta} metadata column(s); correct line 2 or "
            "the header."
        )
    samples = pd.Index(header[1 + n_row_meta:])
    check_labels(samples, path, "sample id", where="the header on line 3")
    if samples.has_duplicates:
        raise InputError(f"{path.name}: sample '{samples[samples.duplicated()][0]}' appears more "
                         "than once in the header on line 3; rename or drop the copies.")
    return header


def _gene_table(meta: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Row metadata as written, plus `gene_symbol` / `ensembl_id` where they are evident."""
    genes = meta.replace(_NOT_GIVEN, np.nan)
    lower = {str(c).lower(): c for c in genes.columns}
    ensembl_ids = looks_like_ensembl(genes.index).mean() > 0.5
    symbol = next((lower[c] for c in _SYMBOL_COLUMNS if c in lower), None)
    if symbol is None and ensembl_ids and "description" in lower:
        described = genes[lower["description"]].dropna()
        # GTEx and CCLE GCTs put the symbol in Description next to an Ensembl Name.
        if len(described) and described.str.fullmatch(_SYMBOL_LIKE).mean() > 0.9:
            symbol = lower["description"]
    notes = []
    if symbol is not None:
        genes["gene_symbol"] = genes[symbol]
        notes.append(f"Gene symbols taken from the '{symbol}' column.")
    if ensembl_ids:
        genes["ensembl_id"] = genes.index
    elif (col := next((lower[c] for c in _ENSEMBL_COLUMNS if c in lower), None)) is not None \
            and looks_like_ensembl(genes[col]).mean() > 0.5:
        genes["ensembl_id"] = genes[col]
    return genes, notes


def _column_meta(body: str, path: Path, header: list[str], n_row_meta: int,
                 n_col_meta: int) -> pd.DataFrame:
    """GCT 1.3 column-metadata lines -> one row per sample, one column per field (text)."""
    meta = table_from_text(body, "\t", path, nrows=n_col_meta,
                           converters={i: str for i in range(len(header))})
    info = meta.set_index(meta.columns[0]).iloc[:, n_row_meta:].T
    return info.replace(_NOT_GIVEN, np.nan).rename_axis(index=None, columns=None)
