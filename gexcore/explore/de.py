"""Differential expression of a selection of samples against the rest or a second selection.

Per gene: Welch's t-test (`scipy.stats.ttest_ind_from_stats`, vectorised over genes on per-gene
NaN-aware means and standard deviations, so a missing cell only leaves its own gene's test),
Benjamini-Hochberg q (`scipy.stats.false_discovery_control`), log2 fold change, the two group
means and the share of samples expressing the gene.

Scale: expression is put on a log2 scale first, with the dashboard's normaliser
(`gexcore.data.normalize`, no z-score, every gene): counts -> log2(1 + CPM), linear values
(TPM, FPKM) -> log2(1 + x), values already on a log scale as stored (taken to be log2, as
microarray and most RNA-seq tables are). The log2 fold change is then the difference of the
two group means. Z-scored or centred cohorts have no log scale to recover: their "log2 fold
change" is the difference of means in the stored units (`result.attrs["scale"]` says which).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gexcore.errors import InputError

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["DE_COLUMNS", "MIN_GROUP_SIZE", "Log2Expression", "differential_expression",
           "group_rows", "log2_expression"]

MIN_GROUP_SIZE = 2               # a variance needs two samples per group
DE_COLUMNS = ("symbol", "log2_fc", "mean_selected", "mean_reference", "pct_selected",
              "pct_reference", "t", "p", "q")
_SCALE_NOTES = {
    "log_cpm": "log2(1 + CPM) of the counts",
    "log2p1": "log2(1 + value) of the linear values",
    "log": "the stored log values (taken as log2)",
    "z-scored": "the stored z-scores (no log scale: a difference of means, not a log2 ratio)",
    "centred": "the stored centred values (no log scale: a difference of means)",
}


@dataclass(frozen=True)
class Log2Expression:
    """A cohort's expression prepared for differential expression.

    `values` (n_samples, n_genes) float32 on the log2 scale (NaN = missing); `expressed` the
    same shape, True where the stored value is above 0 (None where the stored values have no
    zero, i.e. z-scored or centred cohorts); `scale` a key of the notes on the scale used.
    """

    values: np.ndarray
    expressed: np.ndarray | None
    scale: str
    genes: pd.Index
    symbols: pd.Series

    @property
    def note(self) -> str:
        return _SCALE_NOTES.get(self.scale, f"the stored values ({self.scale})")


def log2_expression(adata: AnnData) -> Log2Expression:
    """`adata.X` on a log2 scale for every gene (see the module docstring for the rule)."""
    from gexcore.data.normalize import NormalizeConfig, Normalizer
    from gexcore.explore.maps import gene_symbols

    norm = Normalizer(NormalizeConfig(zscore=False)).fit(adata)
    values = np.asarray(norm.transform(adata).X, dtype=np.float32)
    if norm.transform_ == "log_cpm":                    # natural log1p -> log2(1 + CPM)
        values = values / np.float32(math.log(2.0))
    scale = norm.transform_ if norm.transform_ != "none" else norm.input_scale_
    raw = np.asarray(adata.X, dtype=np.float32)
    # "Expressed" needs a true zero: counts, linear and log(1 + x) values have one.
    expressed = None if scale in ("z-scored", "centred") else np.where(np.isnan(raw), False,
                                                                       raw > 0)
    return Log2Expression(values, expressed, scale, pd.Index(norm.genes_),
                          gene_symbols(adata).reindex(norm.genes_))


def group_rows(n_obs: int, selected, reference=None) -> tuple[np.ndarray, np.ndarray]:
    """(selected, reference) row indices: `reference` None means every other sample.

    Both accept row indices or a boolean mask of length `n_obs`. InputError for a group of
    fewer than `MIN_GROUP_SIZE` samples or groups that share samples.
    """
    a = _as_rows(selected, n_obs, "selection")
    b = (np.setdiff1d(np.arange(n_obs), a) if reference is None
         else _as_rows(reference, n_obs, "reference selection"))
    for rows, what in ((a, "the selection"), (b, "the reference group")):
        if len(rows) < MIN_GROUP_SIZE:
            raise InputError(f"{what} has {len(rows)} sample(s); differential expression needs "
                             f"at least {MIN_GROUP_SIZE} in each group.")
    if shared := len(np.intersect1d(a, b)):
        raise InputError(f"the two selections share {shared:,} sample(s); a sample can be in "
                         "one group only. Select again or compare with the rest.")
    return a, b


def differential_expression(data: AnnData | Log2Expression, selected, reference=None
                            ) -> pd.DataFrame:
    """Genes ranked by how differently `selected` rows express them than `reference` rows.

    `data` is a cohort or its `log2_expression` (pass that when comparing many selections).
    Returns one row per gene (index: gene id), columns `DE_COLUMNS`: `log2_fc` = mean(selected)
    - mean(reference) on the log2 scale, `pct_*` the % of non-missing samples above 0 (NaN
    without a zero), Welch `t` (positive = higher in the selection), two-sided `p`, BH `q`.
    Sorted by p, then |t|; genes without a test (under 2 non-missing values in a group, or no
    variance in either) have NaN t, p, q and come last. `attrs`: scale, n_selected,
    n_reference.
    """
    expr = data if isinstance(data, Log2Expression) else log2_expression(data)
    a, b = group_rows(len(expr.values), selected, reference)
    stats_a, stats_b = _group_stats(expr.values[a]), _group_stats(expr.values[b])
    t, p = _welch(stats_a, stats_b)
    table = pd.DataFrame({
        "symbol": expr.symbols.to_numpy(), "log2_fc": stats_a[0] - stats_b[0],
        "mean_selected": stats_a[0], "mean_reference": stats_b[0],
        "pct_selected": _pct_expressed(expr, a), "pct_reference": _pct_expressed(expr, b),
        "t": t, "p": p, "q": _bh(p)}, index=pd.Index(expr.genes, name="gene"))
    order = np.lexsort((-np.abs(np.nan_to_num(t)), np.nan_to_num(p, nan=np.inf)))
    table = table.iloc[order]
    table.attrs.update(scale=expr.scale, scale_note=expr.note, n_selected=len(a),
                       n_reference=len(b))
    return table


def _as_rows(rows, n_obs: int, what: str) -> np.ndarray:
    arr = np.asarray(rows)
    if arr.dtype == bool:
        if arr.shape != (n_obs,):
            raise InputError(f"the {what} mask has {arr.size} values for {n_obs} samples.")
        return np.flatnonzero(arr)
    arr = np.unique(arr.astype(np.int64).ravel())
    if arr.size and (arr[0] < 0 or arr[-1] >= n_obs):
        raise InputError(f"the {what} names rows outside 0-{n_obs - 1}.")
    return arr


def _group_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-gene (mean, sample sd with ddof=1, non-missing count) of one group's rows."""
    n = np.sum(~np.isnan(X), axis=0)
    with warnings.catch_warnings():          # all-missing genes: NaN on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(X.astype(np.float64), axis=0)
        sd = np.nanstd(X.astype(np.float64), axis=0, ddof=1)
    return mean, sd, n


def _welch(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Welch t and two-sided p per gene; NaN where a group has under 2 values or neither has
    any variance."""
    from scipy.stats import ttest_ind_from_stats

    (m1, s1, n1), (m2, s2, n2) = a, b
    ok = (n1 >= MIN_GROUP_SIZE) & (n2 >= MIN_GROUP_SIZE) & ((s1 > 0) | (s2 > 0))
    t, p = np.full(len(m1), np.nan), np.full(len(m1), np.nan)
    if ok.any():
        res = ttest_ind_from_stats(m1[ok], s1[ok], n1[ok], m2[ok], s2[ok], n2[ok],
                                   equal_var=False)
        t[ok], p[ok] = res.statistic, res.pvalue
    return t, p


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q over the genes that have a test."""
    from scipy.stats import false_discovery_control

    q = np.full(len(p), np.nan)
    tested = np.isfinite(p)
    if tested.any():
        q[tested] = false_discovery_control(p[tested], method="bh")
    return q


def _pct_expressed(expr: Log2Expression, rows: np.ndarray) -> np.ndarray:
    """% of the rows' non-missing values above 0 per gene; NaN without a zero or any value."""
    if expr.expressed is None:
        return np.full(expr.values.shape[1], np.nan)
    measured = np.sum(~np.isnan(expr.values[rows]), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * expr.expressed[rows].sum(axis=0) / np.where(measured, measured, np.nan)
