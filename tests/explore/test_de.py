"""Differential expression of a selection: planted modules found, statistics against scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy import stats

from gexcore.data.simulate import SimulationConfig, simulate_cohort
from gexcore.errors import InputError
from gexcore.explore.de import DE_COLUMNS, differential_expression, log2_expression
from gexcore.explore.planted import planted_genes

MODULE = 15


@pytest.fixture(scope="module")
def cohort() -> AnnData:
    """400 x 300 simulated log-scale cohort, 4 cancer types with one planted module each."""
    return simulate_cohort(SimulationConfig(n_samples=400, n_genes=300, n_cancer_types=4,
                                            n_shared_modules=3, module_size=MODULE,
                                            n_batches=2, n_prognostic_modules=1, seed=3))


def _cohort(X: np.ndarray) -> AnnData:
    adata = AnnData(X=np.asarray(X, dtype=np.float32))
    adata.var_names = [f"G{i}" for i in range(adata.n_vars)]
    return adata


@pytest.mark.parametrize("cancer_type", ["BRCA", "LUAD", "COAD", "LUSC"])
def test_one_type_against_the_rest_finds_its_planted_module(cohort, cancer_type):
    selected = (cohort.obs["label"] == cancer_type).to_numpy()
    table = differential_expression(cohort, selected)
    planted = planted_genes(cohort, cancer_type)
    assert len(planted) == MODULE
    top = table.index[:MODULE]
    assert np.isin(top, planted).sum() >= 0.8 * MODULE, table.head(MODULE)
    assert table.attrs["n_selected"] == selected.sum()
    assert table.attrs["n_reference"] == cohort.n_obs - selected.sum()


def test_t_p_means_and_q_match_scipy_gene_by_gene(cohort):
    """Vectorised over genes against scipy's own ttest_ind, one gene at a time, NaN omitted."""
    expr = log2_expression(cohort)
    assert np.isnan(expr.values).any()                    # the simulator blanks cells
    selected = np.flatnonzero(cohort.obs["label"] == "LUAD")
    reference = np.flatnonzero(cohort.obs["label"] == "Normal")
    table = differential_expression(expr, selected, reference)
    assert list(table.columns) == list(DE_COLUMNS)
    genes = list(table.index[:3]) + list(table.index[100:103]) + [str(cohort.var_names[7])]
    for gene in genes:
        j = expr.genes.get_loc(gene)
        a = expr.values[selected, j].astype(np.float64)
        b = expr.values[reference, j].astype(np.float64)
        want = stats.ttest_ind(a, b, equal_var=False, nan_policy="omit")
        row = table.loc[gene]
        assert row["t"] == pytest.approx(float(want.statistic), rel=1e-6)
        assert row["p"] == pytest.approx(float(want.pvalue), rel=1e-5, abs=1e-300)
        assert row["mean_selected"] == pytest.approx(np.nanmean(a), rel=1e-5)
        assert row["log2_fc"] == pytest.approx(np.nanmean(a) - np.nanmean(b), rel=1e-5)
    tested = table["p"].notna()
    assert np.allclose(table.loc[tested, "q"],
                       stats.false_discovery_control(table.loc[tested, "p"]), rtol=1e-9)
    assert (np.diff(table.loc[tested, "p"].to_numpy()) >= 0).all()     # sorted by p


def test_missing_values_are_dropped_per_gene_and_untestable_genes_go_last():
    rng = np.random.default_rng(0)
    X = rng.normal(5, 1, (12, 4))
    X[:6, 0] += 3                         # G0 higher in the selection
    X[:6, 1] = np.nan                     # G1: no values in the selection
    X[1:6, 2] = np.nan                    # G2: one value in the selection
    X[0, 3] = np.nan                      # G3: one missing cell, still tested
    table = differential_expression(_cohort(X), np.arange(6))
    assert table.index[0] == "G0" and table.loc["G0", "t"] > 0
    assert set(table.index[-2:]) == {"G1", "G2"}
    assert table.loc[["G1", "G2"], ["t", "p", "q"]].isna().all().all()
    a, b = X[1:6, 3], X[6:, 3]
    assert table.loc["G3", "t"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False)
                                                 .statistic, rel=1e-5)


def test_groups_too_small_or_overlapping_are_refused():
    adata = _cohort(np.random.default_rng(0).normal(5, 1, (10, 3)))
    with pytest.raises(InputError, match="the selection has 1 sample"):
        differential_expression(adata, [4])
    with pytest.raises(InputError, match="reference group has 1 sample"):
        differential_expression(adata, np.arange(9))
    with pytest.raises(InputError, match="share 1 sample"):
        differential_expression(adata, [0, 1, 2], [2, 3, 4])
    with pytest.raises(InputError, match="outside"):
        differential_expression(adata, [0, 1, 10])


def test_counts_become_log2_cpm_and_pct_expressed_reads_the_raw_counts():
    rng = np.random.default_rng(1)
    counts = rng.poisson(50, (20, 5)).astype(float) * 10 + 60
    counts[:10, 0] *= 4                         # 4x in the selection
    counts[:10, 1] = 0                          # not expressed in the selection
    counts[15:, 1] = 0
    adata = _cohort(counts)
    table = differential_expression(adata, np.arange(10))
    assert table.attrs["scale"] == "log_cpm"
    cpm = counts / counts.sum(axis=1, keepdims=True) * 1e6
    want = np.log2(1 + cpm[:10, 0]).mean() - np.log2(1 + cpm[10:, 0]).mean()
    assert table.loc["G0", "log2_fc"] == pytest.approx(want, rel=1e-4)
    assert table.loc["G1", ["pct_selected", "pct_reference"]].tolist() == [0.0, 50.0]


def test_z_scored_values_have_no_pct_expressed_and_say_so():
    X = np.random.default_rng(2).normal(0, 1, (30, 40))
    X = (X - X.mean(0)) / X.std(0)
    table = differential_expression(_cohort(X), np.arange(10), np.arange(10, 30))
    assert table.attrs["scale"] == "z-scored"
    assert "not a log2 ratio" in table.attrs["scale_note"]
    assert table["pct_selected"].isna().all()
    assert isinstance(table, pd.DataFrame) and len(table) == 40
