"""`read_cohort`: one entry point from any supported expression file (+ clinical) to AnnData."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from gexcore import keys
from gexcore.data._limits import check_labels, memory_budget
from gexcore.data._source import ParsedMatrix, read_head, sniff_magic
from gexcore.data.genes import Duplicates, GeneId, harmonize_genes
from gexcore.data.tables import Orientation, read_delimited, read_parquet_table
from gexcore.data.validate import (
    ValidationReport,
    check_counts,
    describe_columns,
    summarize_values,
)
from gexcore.errors import InputError

if TYPE_CHECKING:
    from gexcore.data.archs4 import SampleSelection

__all__ = ["Format", "check_result", "detect_format", "read_cohort"]

logger = logging.getLogger(__name__)

Format = Literal["auto", "table", "parquet", "h5ad", "gct", "geo", "gdc_star", "archs4"]
DeclaredScale = Literal["auto", "counts", "linear", "log", "z-scored"]


def read_cohort(
    expression: str | Path,
    clinical: str | Path | None = None,
    *,
    format: Format = "auto",
    orientation: Orientation = "auto",
    gene_id: GeneId = "auto",
    duplicates: Duplicates = "auto",
    scale: DeclaredScale = "auto",
    star_value: Literal["unstranded", "tpm_unstranded", "fpkm_uq_unstranded"] = "unstranded",
    sample_sheet: str | Path | None = None,
    sample_column: str | None = None,
    time_column: str | None = None,
    event_column: str | None = None,
    allow_missing: bool = True,
    max_memory: int | None = None,
    select: SampleSelection | Mapping | None = None,
) -> AnnData:
    """Read an expression file (or GDC folder) and optional clinical table into AnnData.

    Returns samples x genes float32 `X`, clinical columns in `obs` (survival as `obs['time']`,
    `obs['event']`), gene ids in `var`, and `uns['validation']` / `uns['provenance']`.
    Raises `InputError` naming the file, row or column when the input cannot be used.
    `max_memory` (bytes; default half the available memory) bounds what each file's read may
    use: every reader checks its measured estimate before the large allocations. `select`
    picks the samples of an ARCHS4 file (`gexcore.data.archs4.SampleSelection` or its
    `asdict`); other formats refuse it.
    """
    path = Path(expression)
    if not path.exists():
        raise InputError(f"{path}: file or folder not found.")
    fmt = detect_format(path) if format == "auto" else format
    if select is not None and fmt != "archs4":
        raise InputError(f"{path.name}: sample selection (series, metadata regex, single-cell "
                         f"cut, max samples) applies to ARCHS4 files only; this is read as "
                         f"{fmt}.")
    budget = memory_budget(max_memory)
    parsed, existing = _parse(path, fmt, orientation=orientation, star_value=star_value,
                              sample_sheet=sample_sheet, max_bytes=budget, select=select)
    adata = _assemble(parsed, path, existing_obs=existing, gene_id=gene_id,
                      duplicates=duplicates, scale=scale, allow_missing=allow_missing)
    check_result(adata, path.name)
    if clinical is not None:
        _attach_clinical(adata, Path(clinical), sample_column=sample_column, max_bytes=budget)
    _attach_survival(adata, time_column=time_column, event_column=event_column,
                     source=Path(clinical).name if clinical is not None else path.name)
    report = adata.uns.pop("_report")
    report.columns = describe_columns(adata.obs)
    adata.uns[keys.UNS_VALIDATION] = report.to_dict()
    adata.uns[keys.UNS_PROVENANCE] = {
        "source": str(path), "format": parsed.format, "simulated": False,
        "clinical": str(clinical) if clinical is not None else "",
    }
    logger.info("read %s: %d samples x %d genes", path.name, adata.n_obs, adata.n_vars)
    return adata


def detect_format(path: Path) -> Format:
    """Pick a reader from the path and the first bytes; never trusts the extension alone."""
    if path.is_dir():
        return "gdc_star"
    head = read_head(path)
    kind = sniff_magic(head)
    if kind and kind.startswith("HDF5"):
        from gexcore.data.archs4 import is_archs4
        return "archs4" if is_archs4(path) else "h5ad"
    if kind == "Parquet":
        return "parquet"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    if text.startswith(("#1.2", "#1.3")):
        return "gct"
    if text.startswith(("!Series_", "!Sample_")):
        return "geo"
    if text.startswith("# gene-model"):
        return "gdc_star"
    return "table"


def _parse(path: Path, fmt: str, *, orientation, star_value, sample_sheet, max_bytes,
           select=None):
    """Run the format's parser; h5ad also hands back the obs it already carries."""
    if fmt == "table":
        return read_delimited(path, orientation=orientation, max_bytes=max_bytes), None
    if fmt == "parquet":
        return read_parquet_table(path, orientation=orientation, max_bytes=max_bytes), None
    if fmt == "h5ad":
        from gexcore.data.h5ad import read_h5ad_matrix
        return read_h5ad_matrix(path, max_bytes=max_bytes)
    if fmt == "archs4":
        from gexcore.data.archs4 import read_archs4
        return read_archs4(path, select=select, max_bytes=max_bytes), None
    if fmt == "gct":
        from gexcore.data.gct import read_gct
        return read_gct(path, max_bytes=max_bytes), None
    if fmt == "geo":
        from gexcore.data.geo import read_geo_series_matrix
        return read_geo_series_matrix(path, max_bytes=max_bytes), None
    if fmt == "gdc_star":
        from gexcore.data.gdc import find_sample_sheet, read_gdc_star
        folder = path if path.is_dir() else path.parent
        sheet = sample_sheet if sample_sheet is not None else find_sample_sheet(folder)
        return read_gdc_star(path, sample_sheet=sheet, value=star_value, max_bytes=max_bytes), None
    raise ValueError(f"unknown format {fmt!r}; choose one of {Format.__args__}.")


def _assemble(parsed: ParsedMatrix, path: Path, *, existing_obs, gene_id, duplicates, scale,
              allow_missing) -> AnnData:
    """Harmonise genes, check values, and build the AnnData with its validation report."""
    _check_shape(*parsed.values.shape, path.name)
    # Every reader's ids, bounded before the gene-id regexes of harmonize_genes see them.
    check_labels(parsed.samples, path, "sample id")
    check_labels(parsed.genes.index, path, "gene id", allow_empty=True)
    counts = parsed.count_based or scale == "counts"
    values, var, gene_summary = harmonize_genes(parsed.values, parsed.genes, gene_id=gene_id,
                                                duplicates=duplicates, count_based=counts)
    if counts:
        check_counts(values, parsed.samples, var.index, path.name)
    if not allow_missing and np.isnan(values).any():
        r, c = np.argwhere(np.isnan(values))[0]
        raise InputError(f"{path.name}: sample '{parsed.samples[r]}', gene '{var.index[c]}' is "
                         "missing, and missing values were not allowed; fill or drop them.")
    obs = existing_obs if existing_obs is not None else pd.DataFrame(index=parsed.samples)
    obs.index = pd.Index(parsed.samples.astype(str), name=None)
    if parsed.sample_info is not None:
        info = parsed.sample_info.set_axis(obs.index)
        obs = obs.join(info[[c for c in info.columns if c not in obs.columns]])
    if keys.OBS_PATIENT not in obs:
        from gexcore.data.clinical import patient_ids
        obs[keys.OBS_PATIENT] = np.asarray(patient_ids(obs.index))
    summary = summarize_values(values)
    if scale != "auto":
        summary["scale"] = f"{scale} (declared; detected {summary['scale']})"
    report = ValidationReport(source=path.name, format=parsed.format, n_samples=len(obs),
                              n_genes=len(var), orientation=parsed.orientation,
                              gene_ids=gene_summary, notes=list(parsed.notes), **summary)
    if gene_summary["n_duplicated_genes"]:
        report.warnings.append(
            f"{gene_summary['n_duplicated_genes']} gene id(s) occurred more than once "
            f"(e.g. {', '.join(gene_summary['duplicated_examples'][:3])}); merged by "
            f"{gene_summary['duplicates_merged_by']}.")
    obs, var = h5ad_safe(obs), h5ad_safe(var)
    # An index name equal to a column name cannot be written to .h5ad; ids need no name.
    obs.index.name = var.index.name = None
    adata = AnnData(X=values, obs=obs, var=var)
    adata.uns["_report"] = report
    return adata


def _attach_clinical(adata: AnnData, path: Path, *, sample_column: str | None,
                     max_bytes: int) -> None:
    from gexcore.data.clinical import join_clinical, read_clinical

    table = read_clinical(path, sample_column=sample_column, max_bytes=max_bytes)
    joined, join = join_clinical(adata.obs_names, table)
    joined = joined.set_axis(adata.obs_names)
    new = joined[[c for c in joined.columns if c not in (keys.OBS_PATIENT,)]]
    adata.obs = h5ad_safe(adata.obs.drop(columns=[c for c in new.columns if c in adata.obs])
                          .join(new))
    report = adata.uns["_report"]
    report.clinical = {"file": path.name, "n_matched": int(join.n_matched),
                       "n_samples": int(join.n_samples), "match_level": str(join.match_level),
                       "summary": join.summary()}
    if join.n_matched < join.n_samples:
        report.warnings.append(join.summary())
    if dropped := table.attrs.get("n_duplicates_dropped", 0):
        report.warnings.append(
            f"{path.name}: {dropped} duplicated id(s) (e.g. "
            f"{', '.join(map(str, table.attrs.get('duplicate_ids', [])[:3]))}); kept the first row.")


def _attach_survival(adata: AnnData, *, time_column: str | None, event_column: str | None,
                     source: str) -> None:
    """Turn the detected (or named) survival columns into float `obs['time']`, `obs['event']`."""
    from gexcore.data.rules import survival_info
    from gexcore.data.survival import detect_survival, survival_arrays

    frame = adata.obs.astype(object)            # categories back to plain values for parsing
    frame.attrs["source"] = source
    cols = detect_survival(frame, time_column=time_column, event_column=event_column)
    if cols is None or cols.time_column is None:
        return
    time, event = survival_arrays(frame, cols)
    adata.obs[keys.OBS_TIME] = np.asarray(time, dtype=np.float32)
    adata.obs[keys.OBS_EVENT] = np.asarray(event, dtype=np.float32)
    info = survival_info(cols.time_column, cols.event_column, cols.time_unit, cols.endpoint,
                         time, event)
    adata.uns[keys.UNS_SURVIVAL] = info
    adata.uns["_report"].survival = info


def check_result(adata: AnnData, source: str) -> None:
    """The one validity check every read ends with, whatever the format: at least one sample
    and one gene, float32 `X` with no inf and not all missing, unique non-empty ids."""
    n_obs, n_vars = adata.shape
    _check_shape(n_obs, n_vars, source)
    X = adata.X
    if not isinstance(X, np.ndarray) or X.dtype != np.float32:
        raise TypeError(f"a reader returned {type(X).__name__} {getattr(X, 'dtype', '')}; "
                        "expected a float32 ndarray")
    inf = np.isinf(X)
    if inf.any():
        r, c = np.argwhere(inf)[0]
        raise InputError(
            f"{source}: sample '{adata.obs_names[r]}', gene '{adata.var_names[c]}' is infinite "
            f"or beyond float32's range of +-3.4e38 ({int(inf.sum())} such cell(s); summed "
            "duplicated genes can overflow too); rescale those values or give finite ones.")
    if np.isnan(X).all():
        raise InputError(f"{source}: every value is missing ({n_obs} x {n_vars} cells, all empty "
                         "or NA); check the file's separator and value columns.")
    for names, what in ((adata.obs_names, "sample"), (adata.var_names, "gene")):
        if names.has_duplicates:
            dup = names[names.duplicated()]
            raise InputError(f"{source}: {what} id '{dup[0]}' occurs more than once "
                             f"({len(dup)} duplicate(s)); make the {what} ids unique.")
    if (adata.obs_names.str.strip() == "").any():
        raise InputError(f"{source}: a sample has an empty id; give every sample an id.")


def _check_shape(n_obs: int, n_vars: int, source: str) -> None:
    if n_obs == 0 or n_vars == 0:
        what = "samples" if n_obs == 0 else "genes"
        raise InputError(f"{source}: no {what} were read ({n_obs} samples x {n_vars} genes); "
                         "check that the file holds a matrix with ids and values.")


def h5ad_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Make obs/var columns writable to .h5ad: mixed object columns become categorical strings."""
    out = frame.copy()
    out.columns = [str(c) for c in out.columns]
    for name in out.columns:
        col = out[name]
        if col.dtype == object or pd.api.types.is_string_dtype(col):
            numeric = pd.to_numeric(col, errors="coerce")
            if numeric.notna().sum() == col.notna().sum() and col.notna().any():
                out[name] = numeric
            else:
                out[name] = col.astype("string").astype("category")
    return out
