"""Out-of-fold predictions: every sample predicted once, never by a model that saw it or its
patient; informative features predict well, and risk percentiles rank survival."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from gexcore.data.simulate import SimulationConfig, simulate_cohort
from gexcore.errors import InputError
from gexcore.explore.crossfit import out_of_fold_classes, out_of_fold_risk
from gexcore.explore.features import EXPRESSION
from gexcore.tasks.metrics import harrell_c


@pytest.fixture(scope="module")
def cohort():
    """600 x 300, 4 types, 10% matched normals that share a patient id with their tumour."""
    return simulate_cohort(SimulationConfig(n_samples=600, n_genes=300, n_cancer_types=4,
                                            n_shared_modules=4, module_size=20,
                                            normal_fraction=0.1, seed=3))


def test_every_labelled_sample_is_predicted_from_the_other_folds(cohort):
    out = out_of_fold_classes(cohort, EXPRESSION, "cancer_type")
    assert list(out.index) == list(cohort.obs_names)
    assert out["predicted"].notna().all() and out["confidence"].between(0, 1).all()
    assert set(out["predicted"]) <= set(cohort.obs["cancer_type"].astype(str))
    assert out["correct"].mean() > 0.9                          # types are learnable


def _memorisable(n_patients: int, seed: int = 0) -> tuple[AnnData, np.ndarray]:
    """Two identical samples per patient, a random label per patient and a one-hot feature per
    patient: a model that saw a sample (or its twin) predicts it; one that did not, guesses."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n_patients), 2)
    labels = rng.choice(["a", "b"], n_patients)[patients]
    obs = pd.DataFrame({"label": labels, "patient_id": [f"p{p}" for p in patients]},
                       index=[f"s{i}" for i in range(2 * n_patients)])
    adata = AnnData(X=np.zeros((2 * n_patients, 3), np.float32), obs=obs)
    return adata, np.eye(n_patients)[patients] * 10.0


def test_no_sample_or_patient_twin_is_in_its_own_fitting_folds():
    adata, onehot = _memorisable(120)
    out = out_of_fold_classes(adata, onehot, "label")
    assert 0.3 < out["correct"].mean() < 0.7                    # chance, not memory
    shuffled = adata.copy()
    shuffled.obs["patient_id"] = [f"q{i}" for i in range(adata.n_obs)]   # twins split apart
    leaky = out_of_fold_classes(shuffled, onehot, "label")
    assert leaky["correct"].mean() > 0.75                       # the test can fail


def test_unlabelled_rows_stay_missing_and_tiny_classes_are_refused(cohort):
    adata = cohort[:200].copy()
    adata.obs["partial"] = adata.obs["cancer_type"].astype(object)
    adata.obs.iloc[:10, adata.obs.columns.get_loc("partial")] = None
    out = out_of_fold_classes(adata, EXPRESSION, "partial")
    assert out["predicted"].iloc[:10].isna().all() and out["predicted"].iloc[10:].notna().all()
    adata.obs["two"] = ["x", "y"] + ["x"] * (adata.n_obs - 2)
    with pytest.raises(InputError):
        out_of_fold_classes(adata, EXPRESSION, "two")


def test_risk_percentiles_rank_survival(cohort):
    risk = out_of_fold_risk(cohort, EXPRESSION)
    keep = risk.notna().to_numpy()
    assert keep.sum() > 0.8 * cohort.n_obs and risk[keep].between(0, 100).all()
    t, e = cohort.obs["time"].to_numpy()[keep], cohort.obs["event"].to_numpy()[keep]
    assert harrell_c(t, e, risk[keep].to_numpy()) > 0.6
