"""Single-split facades: real numbers on a simulated cohort, patient-disjoint splits, planted genes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gexcore.data.rules import label_columns, survival_columns
from gexcore.data.simulate import SimulationConfig, simulate_cohort
from gexcore.errors import InputError
from gexcore.evaluate.splits import stratified_subset
from gexcore.explain import importance_table
from gexcore.explore.features import EXPRESSION
from gexcore.explore.holdout import holdout_attributions, holdout_probe, holdout_risk
from gexcore.explore.planted import planted_genes
from gexcore.tasks.survival import RiskGroups


@pytest.fixture(scope="module")
def cohort():
    """600 x 300, 4 types, 10% matched normals that share a patient id with their tumour."""
    return simulate_cohort(SimulationConfig(n_samples=600, n_genes=300, n_cancer_types=4,
                                            n_shared_modules=4, module_size=20,
                                            normal_fraction=0.1, seed=3))


def _pca(adata, k: int = 16) -> np.ndarray:
    X = np.nan_to_num(adata.X - np.nanmean(adata.X, axis=0))
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    return u[:, :k] * s[:k]


def _patients(adata, ids) -> set[str]:
    return set(adata.obs.loc[ids, "patient_id"])


def test_probe_beats_chance_on_expression_and_an_embedding(cohort):
    for features in (EXPRESSION, _pca(cohort)):
        result = holdout_probe(cohort, features, "cancer_type", seed=0)
        assert result.metrics["accuracy"] > 0.9 > 2 * result.chance, result.metrics["accuracy"]
        assert result.metrics["macro_f1"] > 0.85
        assert result.classes == sorted(cohort.obs["cancer_type"].astype(str).unique())
        np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-6)
        assert 0.25 < len(result.true) / cohort.n_obs < 0.35
        assert result.n_train + len(result.true) == cohort.n_obs
        table = result.table()
        assert list(table.columns[:3]) == ["true", "predicted", "confidence"]
        assert (table["predicted"] == result.predicted).all()


def test_probe_test_rows_are_patient_disjoint_from_training_rows(cohort):
    result = holdout_probe(cohort, EXPRESSION, "label", seed=1)
    assert result.grouped_by == "obs['patient_id']"
    test_ids = result.probabilities.index
    train_ids = cohort.obs_names.difference(test_ids)
    assert len(train_ids) == result.n_train
    assert not _patients(cohort, test_ids) & _patients(cohort, train_ids)
    shared = cohort.obs["patient_id"].duplicated(keep=False)
    assert shared.sum() > 50                 # matched normals: the guard is really exercised


def test_random_features_give_chance_level(cohort):
    noise = np.random.default_rng(0).normal(size=(cohort.n_obs, 8))
    result = holdout_probe(cohort, noise, "cancer_type")
    assert result.metrics["accuracy"] < result.chance + 0.15


def test_risk_model_ranks_simulated_survival(cohort):
    for features in (EXPRESSION, _pca(cohort)):
        result = holdout_risk(cohort, features, seed=0)
        assert result.c_harrell > 0.6 and result.c_uno > 0.58, (result.c_harrell, result.c_uno)
        tumours = int(cohort.obs["time"].notna().sum())
        assert result.n_train + len(result.test) == tumours      # normals have no survival
        assert not _patients(cohort, result.test.index) & _patients(
            cohort, cohort.obs_names[cohort.obs["time"].notna()].difference(result.test.index))


def test_risk_groups_are_cut_on_training_risks(cohort):
    result = holdout_risk(cohort, EXPRESSION, seed=0)
    groups, assigned = result.groups("quartiles")
    np.testing.assert_allclose(groups.thresholds_,
                               np.quantile(result.train_risk, [0.25, 0.5, 0.75]))
    ref = RiskGroups(scheme="quartiles").fit(result.train_risk).assign(result.test["risk"])
    assert np.array_equal(assigned, ref)
    km = result.km("quartiles", time_unit="months")
    assert [g.name for g in km.groups] == ["Q1 (low)", "Q2", "Q3", "Q4 (high)"]
    assert km.logrank_p < 0.01 and km.time_unit == "months"
    assert km.hazard_ratios[-1].hr > 1.5                  # highest vs lowest quartile
    custom = result.km("custom", (0.2, 0.5, 0.8))
    assert len(custom.groups) == 4
    assert [g.name for g in result.km("median").groups] == ["low", "high"]


def test_risk_reads_other_endpoint_columns_and_refuses_bad_ones(cohort):
    adata = cohort.copy()
    adata.obs["pfs_months"] = adata.obs["time"] * 0.5
    adata.obs["progressed"] = adata.obs["event"].map({1.0: True, 0.0: False})
    result = holdout_risk(adata, EXPRESSION, time="pfs_months", event="progressed")
    assert result.c_harrell > 0.6
    with pytest.raises(InputError, match="'nope' is not in the clinical data"):
        holdout_risk(adata, EXPRESSION, time="nope")
    with pytest.raises(InputError, match="2 events"):
        adata.obs["never"] = 0.0
        holdout_risk(adata, EXPRESSION, event="never")


def test_features_must_match_the_cohort(cohort):
    with pytest.raises(InputError, match="one row per sample"):
        holdout_probe(cohort, np.zeros((10, 4)), "cancer_type")
    with pytest.raises(InputError, match="'nope' is not in the clinical data"):
        holdout_probe(cohort, EXPRESSION, "nope")


def test_expression_attributions_rank_planted_module_genes_first(cohort):
    result = holdout_attributions(cohort, "cancer_type", max_samples=120)
    assert result.scores.shape == (len(result.rows), len(result.genes)) and len(result.rows) == 120
    assert result.n_in_train == 0 and "logistic regression" in result.method
    table = importance_table(result.scores, result.genes, groups=result.labels)
    for cls in cohort.obs["cancer_type"].cat.categories:
        top = table.sort_values(cls, ascending=False)["gene"].head(10)
        assert np.isin(top, planted_genes(cohort, cls)).mean() >= 0.9, cls


def test_attributions_for_chosen_samples_and_an_mlp_encoder(cohort):
    from gexcore.models.encoder import Encoder

    enc = Encoder("scarf")
    enc.initialize(cohort, seed=0)
    chosen = np.flatnonzero(cohort.obs["sample_type"] == "tumour")[:6]
    result = holdout_attributions(cohort, "cancer_type", encoder=enc, samples=chosen, steps=8)
    assert list(result.rows) == list(chosen) and "scarf encoder" in result.method
    assert result.scores.shape == (6, len(enc.genes))
    assert np.isfinite(result.scores).mean() > 0.9
    assert 0 <= result.n_in_train <= 6
    transformer = Encoder("transformer")
    transformer.initialize(cohort, seed=0)
    fallback = holdout_attributions(cohort, "cancer_type", encoder=transformer, max_samples=20)
    assert "fallback" in fallback.method and "bins its values" in fallback.method


def test_stratified_subset_balances_classes():
    labels = np.array(["a"] * 100 + ["b"] * 10 + ["c"] * 50)
    rows = stratified_subset(labels, 60, seed=0)
    counts = pd.Series(labels[rows]).value_counts()
    assert len(rows) == 60 and counts["b"] == 10 and counts["a"] == counts["c"] == 25
    assert np.array_equal(rows, np.sort(rows))
    assert np.array_equal(stratified_subset(labels, 60, seed=0), rows)
    assert len(stratified_subset(labels, 500)) == 160


def test_column_candidates(cohort):
    labels = label_columns(cohort.obs)
    assert labels[:2] == ["cancer_type", "label"] and "patient_id" not in labels
    assert "age" not in labels
    times, events = survival_columns(cohort.obs)
    assert times[0] == "time" and "age" in times and events == ["event"]


def test_planted_genes(cohort):
    own = planted_genes(cohort, "BRCA")
    assert len(own) == 20 and set(own) <= set(planted_genes(cohort))
    assert planted_genes(cohort, "Normal") == []
    assert planted_genes(cohort, "XYZ") == []
