"""Gene identifiers: Ensembl version stripping, symbol/Ensembl columns, duplicate merging."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from gexcore import keys
from gexcore.errors import GeneMismatchError

__all__ = ["MIN_GENE_OVERLAP", "align_to_genes", "harmonize_genes", "looks_like_ensembl",
           "strip_ensembl_version"]

# A model applied to a cohort needs at least this share of its genes measured there: below it,
# embeddings and filled values come mostly from the missing-gene token, not from data.
MIN_GENE_OVERLAP = 0.5

_ENSEMBL = r"^(ENS[A-Z]*[GTP]\d{11})(?:\.\d+)?(_PAR_Y)?$"

_PROBE = r"_at$|^ILMN_\d+$|^A_\d+_P\d+$"          # Affymetrix, Illumina, Agilent

GeneId = Literal["auto", "symbol", "ensembl", "as_is"]
Duplicates = Literal["auto", "sum", "mean", "first"]


def looks_like_ensembl(ids: pd.Index | pd.Series) -> np.ndarray:
    """Boolean mask of ids shaped like Ensembl gene/transcript/protein ids (versioned or not)."""
    return pd.Series(ids, dtype="string").str.match(_ENSEMBL).fillna(False).to_numpy(bool)


def strip_ensembl_version(ids: pd.Index | pd.Series) -> pd.Index:
    """`ENSG00000000003.15` -> `ENSG00000000003`; `_PAR_Y` copies keep their suffix; others as is."""
    s = pd.Series(ids, dtype="string").str.strip()
    parts = s.str.extract(_ENSEMBL)
    stripped = parts[0] + parts[1].fillna("")
    return pd.Index(stripped.fillna(s).astype(object), name=getattr(ids, "name", None))


def harmonize_genes(
    values: np.ndarray,
    genes: pd.DataFrame,
    *,
    gene_id: GeneId = "auto",
    duplicates: Duplicates = "auto",
    count_based: bool = False,
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Choose gene names, strip Ensembl versions and merge duplicated genes.

    `values` is (n_samples, n_genes). Returns the new values, a `var` frame (index = gene names,
    columns `gene_symbol` / `ensembl_id` where known) and a summary dict for the report.
    `duplicates="auto"` sums counts and averages anything else.
    """
    var = _gene_table(genes)
    names = _choose_names(var, gene_id)
    var.index = pd.Index(names, name=None)
    dup = var.index.duplicated(keep=False)
    summary = {"gene_id": _id_kind(var), "n_input_genes": int(len(var)),
               "n_duplicated_genes": int(var.index[dup].nunique()), "duplicates_merged_by": "none"}
    if dup.any():
        how = ("sum" if count_based else "mean") if duplicates == "auto" else duplicates
        values, var = _merge_duplicates(values, var, how)
        summary["duplicates_merged_by"] = how
        summary["duplicated_examples"] = [str(g) for g in pd.unique(names[dup])[:5]]
    summary["n_genes"] = int(len(var))
    return values, var, summary


def _gene_table(genes: pd.DataFrame) -> pd.DataFrame:
    """Fill `ensembl_id` from Ensembl-shaped ids and `gene_symbol` from the rest, versions stripped."""
    var = genes.copy()
    ids = pd.Index(var.index.astype(str).str.strip())
    is_ens = looks_like_ensembl(ids)
    if keys.VAR_ENSEMBL in var:
        var[keys.VAR_ENSEMBL] = strip_ensembl_version(var[keys.VAR_ENSEMBL].astype(str))
    elif is_ens.mean() > 0.5:
        var[keys.VAR_ENSEMBL] = np.asarray(strip_ensembl_version(ids))
    is_probe = pd.Series(ids, dtype="string").str.contains(_PROBE).to_numpy(bool)
    if keys.VAR_SYMBOL not in var and is_ens.mean() <= 0.5 and is_probe.mean() <= 0.5:
        var[keys.VAR_SYMBOL] = np.asarray(ids)
    var.index = ids
    return var


def _choose_names(var: pd.DataFrame, gene_id: GeneId) -> pd.Index:
    ids = pd.Series(var.index, index=var.index, dtype=object)
    if gene_id == "as_is":
        return pd.Index(ids)
    ens = var.get(keys.VAR_ENSEMBL)
    sym = var.get(keys.VAR_SYMBOL)
    if gene_id == "ensembl" and ens is None:
        raise ValueError("gene_id='ensembl' but the file has no Ensembl ids; use 'symbol' or 'auto'.")
    if gene_id == "symbol" and sym is None:
        raise ValueError("gene_id='symbol' but the file has no gene symbols; use 'ensembl' or 'auto'.")
    if gene_id == "ensembl" or (gene_id == "auto" and sym is None):
        chosen = ens if ens is not None else ids
    else:
        chosen = sym
    # A gene without a symbol keeps its Ensembl id rather than an empty name.
    fallback = ens if ens is not None else ids
    chosen = pd.Series(chosen, dtype=object).where(lambda s: s.notna() & (s.astype(str) != ""),
                                                    fallback)
    return pd.Index(chosen.astype(str).to_numpy())


def _merge_duplicates(values: np.ndarray, var: pd.DataFrame, how: str) -> tuple[np.ndarray, pd.DataFrame]:
    codes, uniques = pd.factorize(var.index)
    frame = pd.DataFrame(values.T, copy=False)
    grouped = frame.groupby(codes, sort=True)
    if how == "sum":
        merged = grouped.sum(min_count=1)
    elif how == "mean":
        merged = grouped.mean()
    elif how == "first":
        merged = grouped.first()
    else:
        raise ValueError(f"duplicates must be 'auto', 'sum', 'mean' or 'first', not {how!r}.")
    first_rows = var[~var.index.duplicated(keep="first")]
    first_rows.index = pd.Index(uniques)
    return merged.to_numpy(np.float32).T.copy(), first_rows.loc[uniques[merged.index]]


def _id_kind(var: pd.DataFrame) -> str:
    has_sym, has_ens = keys.VAR_SYMBOL in var, keys.VAR_ENSEMBL in var
    if has_sym and has_ens:
        return "symbol+ensembl"
    if has_ens:
        return "ensembl"
    if has_sym:
        return "symbol"
    return "microarray probe ids (map them to genes with the platform annotation)"


def align_to_genes(values: np.ndarray, genes: pd.Index, vocabulary: pd.Index | list[str], *,
                   source: str = "cohort", min_overlap: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Reorder (samples, genes) `values` to `vocabulary`; genes the cohort lacks become NaN.

    Returns the aligned matrix and a boolean `observed` mask over the vocabulary. Raises
    `GeneMismatchError` when the overlap is below `min_overlap` (fraction of the vocabulary).
    """
    vocabulary = pd.Index(vocabulary)
    pos = pd.Index(genes).get_indexer(vocabulary)
    observed = pos >= 0
    if observed.mean() < min_overlap or not observed.any():
        missing = vocabulary[~observed]
        unexpected = pd.Index(genes).difference(vocabulary)
        raise GeneMismatchError(
            f"{source}: only {int(observed.sum())} of {len(vocabulary)} expected genes are present "
            f"(need {min_overlap:.0%}); missing e.g. {', '.join(map(str, missing[:5]))}; "
            f"unexpected e.g. {', '.join(map(str, unexpected[:5]))}. Check the gene id type "
            "(symbols vs Ensembl) with `gex info`."
        )
    out = np.full((values.shape[0], len(vocabulary)), np.nan, dtype=np.float32)
    out[:, observed] = values[:, pos[observed]]
    return out, observed
