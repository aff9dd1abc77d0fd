"""GDC "STAR - Counts" files (`*.augmented_star_gene_counts.tsv`) plus the GDC sample sheet."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from gexcore.data._limits import FOOTPRINTS, check_labels, memory_budget
from gexcore.data._source import (
    ParsedMatrix,
    check_field_counts,
    read_head_text,
    read_text,
    table_from_text,
    to_float_matrix,
)
from gexcore.errors import InputError

__all__ = [
    "StarFile",
    "StarValue",
    "find_sample_sheet",
    "is_gdc_star_file",
    "parse_star_file",
    "read_gdc_star",
]

logger = logging.getLogger(__name__)

StarValue = Literal["unstranded", "stranded_first", "stranded_second", "tpm_unstranded",
                    "fpkm_unstranded", "fpkm_uq_unstranded"]
_FOOTPRINT = FOOTPRINTS["gdc_star"]
_COUNT_COLUMNS = ("unstranded", "stranded_first", "stranded_second")
_HEADER_START = "gene_id\tgene_name\tgene_type\t"
_STAR_NAME = re.compile(r"\.rna_seq\.augmented_star_gene_counts\.tsv(?:\.gz)?$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Sheet columns that describe the file, not the sample; never comma-separated lists.
_FILE_COLUMNS = ("file_id", "file_name", "data_category", "data_type")


class StarFile(NamedTuple):
    """One parsed STAR file: values per gene (float32, indexed by gene_id) and gene annotation."""

    values: pd.Series
    genes: pd.DataFrame          # gene_symbol, ensembl_id (as written), gene_type
    gene_model: str | None       # from the '# gene-model: GENCODE v36' line


def is_gdc_star_file(path: str | Path) -> bool:
    """True when the first lines look like a GDC STAR gene-count file (plain or gzip)."""
    lines = read_head_text(Path(path)).splitlines()[:3]
    return any(line.startswith(_HEADER_START) and "unstranded" in line for line in lines)


def find_sample_sheet(folder: str | Path) -> Path | None:
    """The newest `gdc_sample_sheet*.tsv` directly in `folder` (names carry the date), or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    sheets = sorted(p for p in folder.glob("gdc_sample_sheet*.tsv") if p.is_file())
    return sheets[-1] if sheets else None


def parse_star_file(path: str | Path, *, value: StarValue = "unstranded",
                    max_bytes: int | None = None) -> StarFile:
    """Read one STAR counts file; the `N_*` summary rows are dropped, negative values refused."""
    path = Path(path)
    table, values, gene_model = _read_star(path, value, memory_budget(max_bytes), annotate=True)
    genes = pd.DataFrame({"gene_symbol": table["gene_name"].replace("", np.nan),
                          "ensembl_id": table.index, "gene_type": table["gene_type"]},
                         index=table.index)
    return StarFile(pd.Series(values, index=table.index, name=path.name), genes, gene_model)


def _read_star(path: Path, value: str, budget: int, *,
               annotate: bool) -> tuple[pd.DataFrame, np.ndarray, str | None]:
    """(rows indexed by gene_id, float32 values, gene model); gene names only if `annotate`."""
    text = read_text(path, max_bytes=_FOOTPRINT.text_limit(budget))
    n_comments, header, gene_model = _star_header(text, path)
    if value not in header[3:]:
        raise InputError(
            f"{path.name}: no column '{value}'; the file has {', '.join(header[3:])}. Choose one "
            "of those (raw counts are 'unstranded')."
        )
    body = text.split("\n", n_comments)[-1] if n_comments else text
    n_lines = check_field_counts(body, "\t", path, first_line=n_comments + 1)
    _FOOTPRINT.check(path, budget, n_bytes=len(body), n_cells=n_lines * len(header),
                     n_text_cells=n_lines * 4)
    # Skipping the name columns makes every file after the first ~30% faster to parse, and
    # skipping the N_* rows (blank TPM cells) keeps the value column numeric.
    columns = ["gene_id", "gene_name", "gene_type", value] if annotate else ["gene_id", value]
    top = body[:4096].split("\n")[1:]
    n_summary = next((i for i, line in enumerate(top) if not line.startswith("N_")), 0)
    table = table_from_text(body, "\t", path, usecols=columns,
                            skiprows=range(1, 1 + n_summary))
    table = table.set_index(table["gene_id"].astype(str))
    check_labels(table.index, path, "gene id", where="the gene_id column")
    # Any summary rows placed elsewhere. Not `.str`: its accessor is a reference cycle that
    # kept each file's table alive until a garbage collection (+5 MB a file).
    summary = np.fromiter((g.startswith("N_") for g in table.index), dtype=bool,
                          count=len(table))
    table = table[~summary]
    values = to_float_matrix(table[[value]], path, rows="gene", cols="column")[:, 0]
    negative = np.flatnonzero(values < 0)
    if len(negative):
        i = int(negative[0])
        raise InputError(
            f"{path.name}: gene '{table.index[i]}' has {value} = {values[i]:g}, but "
            f"{value} cannot be negative ({len(negative)} such gene(s)); the file was altered "
            "after GDC produced it, so re-download it."
        )
    return table, values, gene_model


def read_gdc_star(
    folder_or_files: str | Path | Sequence[str | Path],
    *,
    sample_sheet: str | Path | None = None,
    value: StarValue = "unstranded",
    duplicates: Literal["raise", "first"] = "raise",
    max_bytes: int | None = None,
) -> ParsedMatrix:
    """Stack GDC STAR files (a download folder, searched recursively, or a list): samples x genes.

    With a sample sheet, samples are named by its Sample ID and `sample_info` gets its columns
    (project_id, case_id, patient_id, sample_type, file_id, file_name); else by file name.
    """
    files, folder = _collect_star_files(folder_or_files)
    notes: list[str] = []
    if sample_sheet is None:
        table = _table_without_sheet(files)
        notes.append("No GDC sample sheet was given, so samples are named by file name; add the "
                     "cart's gdc_sample_sheet*.tsv to name them by TCGA sample barcode.")
    else:
        table = _match_sheet(Path(sample_sheet), files, folder, notes,
                             budget=memory_budget(max_bytes))
    source = Path(sample_sheet).name if sample_sheet is not None else str(folder or files[0])
    table = _drop_duplicate_samples(table, duplicates, source, notes)
    first, values = _stack_files(list(table["path"]), value=value,
                                 budget=memory_budget(max_bytes))
    genes = first.genes
    model = first.gene_model or "gene model not stated"
    notes.insert(0, f"GDC STAR - Counts: {len(values)} file(s), column '{value}' ({model}); the "
                    "N_unmapped, N_multimapping, N_noFeature and N_ambiguous rows were dropped.")
    logger.info("read %d GDC STAR files x %d genes", len(values), len(genes))
    return ParsedMatrix(values=values, samples=pd.Index(table.index.astype(str)), genes=genes,
                        format="gdc_star", sample_info=table.drop(columns="path"), notes=notes,
                        count_based=value in _COUNT_COLUMNS, orientation="one file per sample")


def _star_header(text: str, path: Path) -> tuple[int, list[str], str | None]:
    """Count the leading '#' lines, split the header and read the gene model."""
    lines = text[:4096].split("\n")
    n_comments = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    header = lines[n_comments].rstrip("\r").split("\t") if n_comments < len(lines) else []
    if header[:3] != ["gene_id", "gene_name", "gene_type"]:
        raise InputError(
            f"{path.name}: line {n_comments + 1} is not a GDC STAR header (expected gene_id, "
            "gene_name, gene_type, unstranded, ...); give the *.augmented_star_gene_counts.tsv "
            "files from the GDC 'STAR - Counts' workflow."
        )
    model = next((ln.split(":", 1)[1].strip() for ln in lines[:n_comments]
                  if ln.startswith("# gene-model:")), None)
    return n_comments, header, model


def _collect_star_files(source) -> tuple[list[Path], Path | None]:
    """The STAR files to read, and the folder they were found in (None for an explicit list)."""
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        folder = Path(source)
        files = sorted(p for p in folder.rglob("*")
                       if p.is_file() and p.name.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz"))
                       and is_gdc_star_file(p))
        if not files:
            raise InputError(
                f"{folder}: no GDC STAR gene-count files (*.rna_seq.augmented_star_gene_counts"
                ".tsv) in this folder or its subfolders; download the 'STAR - Counts' files."
            )
        return files, folder
    paths = [Path(source)] if isinstance(source, (str, Path)) else [Path(p) for p in source]
    if not paths:
        raise InputError("No GDC STAR files were given.")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: file not found ({len(missing)} of the given files).")
    return paths, None


def _file_key(name: str) -> str:
    return name.removesuffix(".gz")


def _file_stem(path: Path) -> str:
    """'<uuid>.rna_seq.augmented_star_gene_counts.tsv' -> '<uuid>'; other names lose suffixes."""
    stripped = _STAR_NAME.sub("", path.name)
    return stripped if stripped != path.name else _file_key(path.name).rsplit(".", 1)[0]


def _table_without_sheet(files: list[Path]) -> pd.DataFrame:
    """Samples named by file stem; GDC's `<file UUID>/` folder gives the file id when present."""
    parents = pd.Series([p.parent.name for p in files])
    table = pd.DataFrame({
        "file_id": parents.where(parents.str.match(_UUID.pattern)).to_numpy(),
        "file_name": [p.name for p in files],
        "path": files,
    }, index=pd.Index([_file_stem(p) for p in files]))
    return table.dropna(axis=1, how="all")


def _match_sheet(sheet_path: Path, files: list[Path], folder: Path | None,
                 notes: list[str], *, budget: int) -> pd.DataFrame:
    """Pair sheet rows with files by name; a folder must hold every STAR file its sheet lists."""
    sheet = _read_sample_sheet(sheet_path, notes, budget)
    is_star = sheet["file_name"].str.contains(_STAR_NAME)
    if not is_star.any():
        raise InputError(f"{sheet_path.name}: lists no STAR gene-count files (*.augmented_star_"
                         "gene_counts.tsv); use the sample sheet downloaded with these files.")
    if not is_star.all():
        notes.append(f"{sheet_path.name}: {int((~is_star).sum())} row(s) for other file types "
                     f"(e.g. '{sheet.loc[~is_star, 'file_name'].iloc[0]}') were ignored.")
    sheet = sheet[is_star]
    on_disk = pd.Series(files, index=[_file_key(p.name) for p in files])
    on_disk = on_disk[~on_disk.index.duplicated()]          # same file downloaded twice
    names = sheet["file_name"].map(_file_key)
    found = names.isin(on_disk.index).to_numpy()
    if folder is not None and not found.all():
        first = sheet[~found].iloc[0]
        raise InputError(
            f"{sheet_path.name}: {int((~found).sum())} file(s) in the sample sheet are not in "
            f"{folder.name}/ (e.g. '{first['file_name']}', line {first['line']}); download them "
            "again, or delete their rows from the sheet."
        )
    if not found.any():
        raise InputError(f"{sheet_path.name}: none of the given STAR files is listed in this "
                         "sample sheet; use the sheet downloaded with these files.")
    skipped = ~on_disk.index.isin(names)
    if skipped.any():
        notes.append(f"{int(skipped.sum())} STAR file(s) not listed in {sheet_path.name} were "
                     f"skipped (e.g. '{on_disk[skipped].iloc[0].name}').")
    table = sheet[found].assign(path=on_disk.loc[names[found]].to_numpy())
    if "case_id" in table:
        table["patient_id"] = table["case_id"]              # TCGA case id = patient barcode
    first_cols = [c for c in ("project_id", "case_id", "patient_id", "sample_type", "file_id",
                              "file_name") if c in table]
    rest = [c for c in table.columns if c not in first_cols and c not in ("sample_id", "line")]
    return table.set_index("sample_id")[first_cols + rest].rename_axis(None)


def _read_sample_sheet(path: Path, notes: list[str], budget: int) -> pd.DataFrame:
    """The GDC sample sheet with snake_case columns; list cells ('a, b') keep their first item."""
    sheet_print = FOOTPRINTS["clinical"]
    text = read_text(path, max_bytes=sheet_print.text_limit(budget))
    n_cells = (text.count("\n") + 1) * (text[:text.find("\n")].count("\t") + 1)
    sheet_print.check(path, budget, n_bytes=len(text), n_text_cells=n_cells)
    sheet = table_from_text(text, "\t", path).astype(str)
    del text
    sheet.columns = [re.sub(r"\W+", "_", str(c).strip().lower()) for c in sheet.columns]
    needed = {"file_name": "File Name", "sample_id": "Sample ID"}
    missing = [title for col, title in needed.items() if col not in sheet.columns]
    if missing:
        raise InputError(
            f"{path.name}: no {' or '.join(missing)} column (the header has "
            f"{len(sheet.columns)} columns: {', '.join(sheet.columns)}); download the sample "
            "sheet from the GDC cart ('Sample Sheet' button)."
        )
    listed = sheet["sample_id"].str.contains(",", regex=False)
    if listed.any():
        notes.append(f"{path.name}: {int(listed.sum())} file(s) list several samples (e.g. "
                     f"'{sheet.loc[listed, 'sample_id'].iloc[0]}'); the first one is used.")
    sample_cols = [c for c in sheet.columns if c not in _FILE_COLUMNS]
    sheet[sample_cols] = sheet[sample_cols].apply(lambda s: s.str.split(",").str[0].str.strip())
    for column, what in (("sample_id", "sample id"), ("file_name", "file name")):
        check_labels(sheet[column], path, what, where=f"the {needed[column]} column",
                     allow_empty=True)
    sheet["line"] = np.arange(len(sheet)) + 2                # the header is line 1
    return sheet.drop(columns=[c for c in ("data_category", "data_type") if c in sheet])


def _drop_duplicate_samples(table: pd.DataFrame, duplicates: str, source: str,
                            notes: list[str]) -> pd.DataFrame:
    """Refuse two files for one sample unless `duplicates='first'`; there is no safe average."""
    dup = table.index.duplicated(keep=False)
    if not dup.any():
        return table
    first = table.index[dup][0]
    files = ", ".join(f"{p.parent.name}/{p.name}" for p in table.loc[[first], "path"])
    n = int(pd.Index(table.index[dup]).nunique())
    if duplicates == "raise":
        raise InputError(
            f"{source}: sample '{first}' has more than one STAR file ({files}); {n} sample(s) "
            "do. Delete all but one row per sample from the sample sheet (or the extra files), "
            "or pass duplicates='first' to keep the first one listed."
        )
    if duplicates != "first":
        raise ValueError(f"duplicates must be 'raise' or 'first', not {duplicates!r}.")
    notes.append(f"{n} sample(s) had more than one STAR file (e.g. '{first}': {files}); the "
                 "first one listed was kept.")
    return table[~table.index.duplicated(keep="first")]


def _stack_files(paths: list[Path], *, value: str,
                 budget: int) -> tuple[StarFile, np.ndarray]:
    """(first file, (files, genes) float32); every file must list the first file's genes.

    Only each file's values are kept, so a thousand files do not hold a thousand gene tables.
    """
    first = parse_star_file(paths[0], value=value, max_bytes=budget)
    ref = first.values.index
    _FOOTPRINT.check(paths[0].parent, budget, n_cells=len(paths) * len(ref),
                     what=f"{len(paths):,} files x {len(ref):,} genes")
    out = np.empty((len(paths), len(ref)), dtype=np.float32)
    out[0] = first.values.to_numpy()
    for row, path in enumerate(paths[1:], start=1):        # one iteration per file
        table, values, model = _read_star(path, value, budget, annotate=False)
        if not table.index.equals(ref):
            differ = ref.symmetric_difference(table.index)
            if len(differ):
                raise InputError(
                    f"{paths[0].name} and {path.name} list different genes ({len(differ)} gene "
                    f"id(s) differ, e.g. '{differ[0]}'; gene models: {first.gene_model} vs "
                    f"{model}); read files from one GDC data release together."
                )
            values = pd.Series(values, index=table.index).reindex(ref).to_numpy()
        out[row] = values
    return first, out
