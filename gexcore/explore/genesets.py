"""Gene-set scores per sample, to colour a map by a pathway or a marker list.

Score = the mean, over the set's genes that the cohort measures, of each gene's z-score across
the cohort's samples on the log2 scale of `gexcore.explore.de` (missing cells skipped, genes
without variance left out). Unlike scanpy's `score_genes` no control-gene average is
subtracted: the z-scores already centre every gene, so 0 is the cohort's average sample.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from gexcore.errors import InputError
from gexcore.explore.de import Log2Expression, log2_expression

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["gene_set_score", "match_genes"]


def match_genes(expr: Log2Expression, genes) -> np.ndarray:
    """Column indices of `genes` in the cohort: by gene id, else by symbol (any case)."""
    by_id = {str(g): i for i, g in enumerate(expr.genes)}
    by_symbol = {str(s).casefold(): i for i, s in enumerate(expr.symbols)}
    found = [by_id.get(str(g), by_symbol.get(str(g).casefold())) for g in genes]
    return np.unique([i for i in found if i is not None]).astype(int)


def gene_set_score(data: AnnData | Log2Expression, genes, *, name: str = "gene set"
                   ) -> tuple[np.ndarray, int]:
    """(per-sample score (n,) float64, genes of the set that were scored).

    InputError when none of the set's genes is measured with some variance here; a sample
    with no measured gene of the set scores NaN.
    """
    genes = list(genes)
    expr = data if isinstance(data, Log2Expression) else log2_expression(data)
    cols = match_genes(expr, genes)
    X = expr.values[:, cols].astype(np.float64)
    with warnings.catch_warnings():            # all-missing columns: NaN on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, sd = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
        usable = np.isfinite(sd) & (sd > 0)
        if not usable.any():
            raise InputError(f"none of the {len(genes):,} genes of {name!r} is measured "
                             "(with any variation) in this cohort; check the gene ids or "
                             "symbols.")
        z = (X[:, usable] - mean[usable]) / sd[usable]
        return np.nanmean(z, axis=1), int(usable.sum())
