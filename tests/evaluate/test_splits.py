"""Splits: patients never straddle train and test; label fractions are nested and stratified."""

from __future__ import annotations

import numpy as np
import pytest

from gexcore.evaluate.splits import nested_fractions, patient_groups, train_test_split


def test_split_keeps_each_patient_on_one_side(tiny_cohort):
    # three samples per patient: a sample-level split would put some patients on both sides
    tiny_cohort.obs["patient_id"] = [f"P{i // 3}" for i in range(tiny_cohort.n_obs)]
    for seed in range(5):
        split = train_test_split(tiny_cohort, stratify=tiny_cohort.obs["label"].to_numpy(),
                                 seed=seed, test_size=0.25)
        train_p = set(tiny_cohort.obs["patient_id"].iloc[split.train])
        test_p = set(tiny_cohort.obs["patient_id"].iloc[split.test])
        assert not train_p & test_p
        assert len(split.train) + len(split.test) == tiny_cohort.n_obs
        assert 0.15 < len(split.test) / tiny_cohort.n_obs < 0.4


def test_split_is_stratified_and_seeded(tiny_cohort):
    y = tiny_cohort.obs["label"].astype(str).to_numpy()
    a = train_test_split(tiny_cohort, stratify=y, seed=3)
    b = train_test_split(tiny_cohort, stratify=y, seed=3)
    c = train_test_split(tiny_cohort, stratify=y, seed=4)
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)
    assert set(y[a.test]) == set(y)                      # every class reaches the test set


def test_check_disjoint_catches_a_shared_patient():
    from gexcore.evaluate.splits import Split
    groups = np.array(["A", "A", "B", "C"])
    with pytest.raises(AssertionError, match="both train and test"):
        Split(np.array([0, 2]), np.array([1, 3]), "patient").check_disjoint(groups)


def test_tcga_barcodes_group_by_patient(tiny_cohort):
    del tiny_cohort.obs["patient_id"]
    bar = [f"TCGA-AB-{i // 2:04d}-{'01' if i % 2 else '11'}A" for i in range(tiny_cohort.n_obs)]
    tiny_cohort.obs_names = bar
    groups, how = patient_groups(tiny_cohort)
    assert "barcode" in how and len(set(groups)) == tiny_cohort.n_obs // 2


def test_nested_fractions_are_nested_stratified_and_nonempty():
    labels = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 4)
    subsets = nested_fractions(labels, (0.01, 0.1, 0.5, 1.0), seed=0)
    fracs = sorted(subsets)
    for small, big in zip(fracs, fracs[1:]):
        assert set(subsets[small]) <= set(subsets[big])
    assert set(labels[subsets[0.01]]) == {"a", "b", "c"}      # at least one of each class
    assert (labels[subsets[0.5]] == "a").sum() == 25
    assert len(subsets[1.0]) == len(labels)
    with pytest.raises(ValueError, match="fractions"):
        nested_fractions(labels, (0.0,))
