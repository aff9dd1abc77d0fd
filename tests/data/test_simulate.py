"""Tests for the seeded pan-cancer cohort simulator: structure, planted biology, I/O, checks."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gexcore import keys
from gexcore.data.simulate import NORMAL_LABEL, SimulationConfig, simulate_cohort

SMALL = {"n_samples": 600, "n_genes": 400, "module_size": 15}
OBS_COLUMNS = [keys.OBS_PATIENT, "cancer_type", "sample_type", keys.OBS_LABEL, "batch", "age",
               "sex", keys.OBS_TIME, keys.OBS_EVENT]


@pytest.fixture(scope="module")
def small() -> ad.AnnData:
    return simulate_cohort(**SMALL)


@pytest.fixture(scope="module")
def small_counts() -> ad.AnnData:
    return simulate_cohort(**SMALL, values="counts")


def _tumours(adata: ad.AnnData) -> ad.AnnData:
    return adata[(adata.obs["sample_type"] == "tumour").to_numpy()]


def _filled(X: np.ndarray) -> np.ndarray:
    """NaN cells replaced by their gene's mean, so PCA and scores see complete data."""
    return np.where(np.isnan(X), np.nanmean(X, axis=0), X)


def test_same_seed_is_bit_identical_and_other_seed_differs(small):
    again = simulate_cohort(SimulationConfig(**SMALL))
    np.testing.assert_array_equal(small.X, again.X)           # NaNs in the same cells too
    pd.testing.assert_frame_equal(small.obs, again.obs)
    other = simulate_cohort(**SMALL, seed=1)
    assert not np.array_equal(np.nan_to_num(small.X), np.nan_to_num(other.X))
    assert not small.obs_names.equals(other.obs_names)


def test_default_size_shape_and_dtype():
    adata = simulate_cohort()
    assert adata.shape == (3000, 2000)
    assert adata.X.dtype == np.float32
    assert adata.var_names[0] == "SIMG00001" and adata.var_names[-1] == "SIMG02000"
    assert (adata.var["module"] != "none").sum() == 20 * 40       # 8 shared + 12 type, disjoint


def test_obs_columns_ids_and_labels(small):
    obs = small.obs
    assert list(obs.columns) == OBS_COLUMNS
    assert obs.index.is_unique
    assert obs.index.str.fullmatch(r"SIMU-[0-9A-Z]{2}-[0-9A-Z]{4}-(01|11)A").all()
    assert (obs[keys.OBS_PATIENT].str.len() == 12).all()
    assert (obs.index.str[:12] == obs[keys.OBS_PATIENT]).all()
    normal = (obs["sample_type"] == "normal").to_numpy()
    assert (obs.index[normal].str.endswith("-11A")).all()
    assert (obs.index[~normal].str.endswith("-01A")).all()
    assert (obs[keys.OBS_LABEL][normal] == NORMAL_LABEL).all()
    tumour_labels = obs[keys.OBS_LABEL][~normal].astype(str)
    assert (tumour_labels == obs["cancer_type"][~normal].astype(str)).all()
    assert obs[keys.OBS_TIME].dtype == np.float32 and obs[keys.OBS_EVENT].dtype == np.float32
    assert set(obs["batch"].cat.categories) == {"batch1", "batch2", "batch3"}
    assert obs["age"].between(18, 90).all()
    assert obs["cancer_type"].nunique() == 12


def test_var_modules_and_prognostic_flags(small):
    var, truth = small.var, small.uns["simulation"]
    assert list(var.columns) == ["module", "prognostic"]
    module_genes = truth["module_genes"]
    prognostic_genes = set().union(*(module_genes[m] for m in truth["prognostic_modules"]))
    assert set(var.index[var["prognostic"]]) == prognostic_genes
    assert (var["module"] == "none").sum() == 400 - 20 * 15
    loadings = small.varm["simulation_loadings"]
    assert loadings.shape == (400, 20)
    assert ((loadings != 0).sum(axis=0) == 15).all()
    assert (loadings < 0).any()                                # some anti-correlated genes


def test_types_are_separable_from_expression(small):
    tumours = _tumours(small)
    X, y = _filled(tumours.X), tumours.obs["cancer_type"].astype(str).to_numpy()
    model = make_pipeline(StandardScaler(), PCA(20, random_state=0),
                          LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    accuracy = cross_val_score(model, X, y, cv=folds).mean()
    shuffled = cross_val_score(model, X, np.random.default_rng(0).permutation(y), cv=folds).mean()
    assert accuracy > 0.9
    assert shuffled < 0.3                                      # chance is about 1/12


def test_type_module_is_up_in_its_own_type(small):
    tumours = _tumours(small)
    genes = small.uns["simulation"]["module_genes"]["type_BRCA"]
    column = small.uns["simulation"]["module_names"].index("type_BRCA")
    sign = np.sign(small[:, genes].varm["simulation_loadings"][:, column])
    score = np.nanmean(tumours[:, genes].X * sign, axis=1)
    is_brca = (tumours.obs["cancer_type"] == "BRCA").to_numpy()
    assert score[is_brca].mean() - score[~is_brca].mean() > 1.0


def test_module_genes_are_coexpressed(small):
    tumours = _tumours(small)
    largest = tumours.obs["cancer_type"].value_counts().index[0]
    X = _filled(tumours[tumours.obs["cancer_type"] == largest].X)   # within one type
    corr = np.corrcoef(X, rowvar=False)
    module = small.var["module"].astype(str).to_numpy()
    same = (module[:, None] == module[None, :]) & (module[:, None] != "none")
    np.fill_diagonal(same, False)
    outside = (module[:, None] == "none") & (module[None, :] == "none")
    np.fill_diagonal(outside, False)
    assert np.abs(corr[same]).mean() > 0.5
    assert np.abs(corr[same]).mean() > 2 * np.abs(corr[outside]).mean()


def _module_cox_z(adata: ad.AnnData, genes: list[str]) -> tuple[float, float]:
    """z and p of a Cox fit on a module's mean z-scored expression, stratified by type."""
    X = _filled(adata[:, genes].X)
    z = (X - X.mean(axis=0)) / X.std(axis=0)
    frame = pd.DataFrame({"score": z.mean(axis=1), "time": adata.obs[keys.OBS_TIME].to_numpy(),
                          "event": adata.obs[keys.OBS_EVENT].to_numpy(),
                          "type": adata.obs["cancer_type"].astype(str).to_numpy()})
    cox = CoxPHFitter().fit(frame, "time", "event", strata=["type"])
    return float(cox.summary.loc["score", "z"]), float(cox.summary.loc["score", "p"])


def test_survival_follows_prognostic_modules(small):
    tumours, truth = _tumours(small), small.uns["simulation"]
    module_genes = truth["module_genes"]
    prognostic = [_module_cox_z(tumours, module_genes[m]) for m in truth["prognostic_modules"]]
    for (z, p), beta in zip(prognostic, truth["prognostic_betas"]):
        assert p < 1e-3
        assert np.sign(z) == np.sign(beta)
    others = [m for m in truth["module_names"]
              if m.startswith("shared") and m not in truth["prognostic_modules"]]
    null_z = [abs(_module_cox_z(tumours, module_genes[m])[0]) for m in others]
    assert max(null_z) < 0.5 * min(abs(z) for z, _ in prognostic)


def test_event_rate_and_times(small):
    tumours = _tumours(small).obs
    assert 0.25 <= tumours[keys.OBS_EVENT].mean() <= 0.55    # roughly 30-50% events
    assert set(np.unique(tumours[keys.OBS_EVENT])) == {0.0, 1.0}
    assert (tumours[keys.OBS_TIME] > 0).all()
    assert small.uns[keys.UNS_SURVIVAL]["time_unit"] == "months"


def test_normals_share_patients_and_have_no_survival(small):
    obs = small.obs
    normal = (obs["sample_type"] == "normal").to_numpy()
    assert normal.sum() == round(0.06 * 600)
    tumour_by_patient = obs[~normal].set_index(keys.OBS_PATIENT)
    normals = obs[normal].set_index(keys.OBS_PATIENT)
    assert normals.index.is_unique and normals.index.isin(tumour_by_patient.index).all()
    matched = tumour_by_patient.loc[normals.index]
    for column in ["cancer_type", "age", "sex"]:
        assert (normals[column].astype(str) == matched[column].astype(str)).all()
    assert normals[keys.OBS_TIME].isna().all() and normals[keys.OBS_EVENT].isna().all()
    assert tumour_by_patient[keys.OBS_TIME].notna().all()


def test_log_values_have_mcar_and_panel_gap(small):
    truth = small.uns["simulation"]
    gap_genes = list(truth["panel_gap_genes"])
    assert len(gap_genes) == round(0.05 * 400)
    in_gap_batch = (small.obs["batch"] == truth["panel_gap_batch"]).to_numpy()
    assert 0 < in_gap_batch.sum() < small.n_obs
    assert np.isnan(small[in_gap_batch, gap_genes].X).all()
    elsewhere = np.isnan(small[~in_gap_batch].X)
    assert 0.005 < elsewhere.mean() < 0.015                   # missing_fraction = 0.01
    assert np.nanmin(small.X) >= 0.0
    complete = simulate_cohort(**SMALL, missing_fraction=0.0, panel_gap_fraction=0.0)
    assert not np.isnan(complete.X).any()


def test_batch_shifts_genes_and_is_partly_confounded(small):
    tumours = _tumours(small)
    largest = tumours.obs["cancer_type"].value_counts().index[0]
    one_type = tumours[tumours.obs["cancer_type"] == largest]
    X, batch = _filled(one_type.X), one_type.obs["batch"].astype(str).to_numpy()
    first, second = one_type.obs["batch"].value_counts().index[:2]
    shift = X[batch == first].mean(axis=0) - X[batch == second].mean(axis=0)
    assert shift.std() > 0.4                                   # two N(0, 0.4) shifts apart
    table = pd.crosstab(tumours.obs["cancer_type"], tumours.obs["batch"])
    share = table.div(table.sum(axis=1), axis=0)
    assert (share.max(axis=1) < 1.0).sum() >= 6               # most types span batches
    assert share.max(axis=1).max() - share.max(axis=1).min() > 0.2   # but unevenly


def test_counts_are_nonnegative_integers(small_counts):
    X = small_counts.X
    assert X.dtype == np.float32
    assert not np.isnan(X).any() and (X >= 0).all()
    np.testing.assert_array_equal(X, np.round(X))
    assert 10e6 < np.median(X.sum(axis=1)) < 40e6
    assert len(small_counts.uns["simulation"]["panel_gap_genes"]) == 0


def test_h5ad_round_trip(small, small_counts, tmp_path):
    for adata, name in [(small, "log.h5ad"), (small_counts, "counts.h5ad")]:
        path = tmp_path / name
        adata.copy().write_h5ad(path)
        back = ad.read_h5ad(path)
        np.testing.assert_array_equal(back.X, adata.X)
        assert back.obs_names.equals(adata.obs_names)
        np.testing.assert_array_equal(back.obs[keys.OBS_EVENT], adata.obs[keys.OBS_EVENT])
        provenance = back.uns[keys.UNS_PROVENANCE]
        assert provenance["simulated"] and provenance["source"] == "simulated"
        assert "simulated" in provenance["label"].lower()
        assert provenance["config"]["values"] == adata.uns[keys.UNS_PROVENANCE]["config"]["values"]
        assert list(back.uns["simulation"]["prognostic_modules"]) == list(
            adata.uns["simulation"]["prognostic_modules"])
        assert dict(back.uns[keys.UNS_SURVIVAL]) == dict(adata.uns[keys.UNS_SURVIVAL])


def test_tiny_cohort_builds():
    adata = simulate_cohort(n_samples=60, n_genes=40, seed=3)
    assert adata.shape == (60, 40)
    assert adata.obs["cancer_type"].nunique() == 12           # every type gets tumours


@pytest.mark.parametrize(("field", "value"), [
    ("n_samples", 0), ("n_genes", 5), ("n_cancer_types", 1), ("n_cancer_types", 99),
    ("normal_fraction", 0.8), ("n_batches", 0), ("module_size", 401),
    ("n_prognostic_modules", 9), ("values", "tpm"), ("missing_fraction", -0.1),
    ("panel_gap_fraction", 1.5), ("seed", -1), ("n_samples", 600.5),
])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SimulationConfig(**{**SMALL, field: value})


def test_unknown_override_is_refused():
    with pytest.raises(TypeError, match="n_gens"):
        simulate_cohort(n_gens=10)
