"""Gene-set scores: mean z-score of the measured genes, a planted module scores its own type."""

from __future__ import annotations

import numpy as np
import pytest
from anndata import AnnData

from gexcore import keys
from gexcore.data.simulate import SimulationConfig, simulate_cohort
from gexcore.errors import InputError
from gexcore.explore.de import log2_expression
from gexcore.explore.genesets import gene_set_score
from gexcore.explore.planted import planted_genes


def test_score_is_the_mean_z_score_of_the_measured_genes():
    rng = np.random.default_rng(0)
    X = rng.normal(6, 1, (20, 5)).astype(np.float32)
    X[3, 1] = np.nan
    X[:, 4] = 2.0                                            # no variance: left out
    adata = AnnData(X=X)
    adata.var_names = ["G0", "G1", "G2", "G3", "G4"]
    adata.var[keys.VAR_SYMBOL] = ["tp53", "EGFR", "MYC", "KRAS", "FLAT"]
    scores, n = gene_set_score(adata, ["TP53", "G1", "G4", "NOT_HERE"])
    assert n == 2
    X = X.astype(np.float64)
    z = (X[:, :2] - np.nanmean(X[:, :2], axis=0)) / np.nanstd(X[:, :2], axis=0)
    assert scores == pytest.approx(np.nanmean(z, axis=1), abs=1e-6)
    assert scores[3] == pytest.approx(z[3, 0], rel=1e-5)     # only its measured gene
    with pytest.raises(InputError, match="none of the 2 genes of 'flat'"):
        gene_set_score(adata, ["FLAT", "NOPE"], name="flat")


def test_a_planted_module_scores_highest_in_its_own_type():
    adata = simulate_cohort(SimulationConfig(n_samples=300, n_genes=200, n_cancer_types=3,
                                             n_shared_modules=2, module_size=12, n_batches=2,
                                             n_prognostic_modules=1, seed=5))
    expr = log2_expression(adata)
    for cancer_type in ("BRCA", "LUAD"):
        scores, _ = gene_set_score(expr, planted_genes(adata, cancer_type))
        by_label = adata.obs.assign(score=scores).groupby("label", observed=True)["score"]
        assert by_label.mean().idxmax() == cancer_type
