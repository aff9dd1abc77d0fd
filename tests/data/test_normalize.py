"""Normalisation: fit on training samples, apply to new ones, save and load."""

from __future__ import annotations

import numpy as np
import pytest
from anndata import AnnData
from sklearn.exceptions import NotFittedError

from gexcore.data.normalize import NormalizeConfig, Normalizer, log_cpm
from gexcore.errors import InputError


def _counts(n=40, g=30, seed=0) -> AnnData:
    rng = np.random.default_rng(seed)
    X = rng.poisson(rng.gamma(2.0, 50.0, size=g), size=(n, g)).astype(np.float32)
    adata = AnnData(X)
    adata.var_names = [f"G{i}" for i in range(g)]
    return adata


def test_log_cpm_matches_direct_formula():
    X = np.array([[1, 3], [0, 10]], np.float32)
    expected = np.log1p(X / X.sum(1, keepdims=True) * 1e6)
    np.testing.assert_allclose(log_cpm(X), expected, rtol=1e-6)


def test_auto_picks_log_cpm_for_counts_and_zscores_on_training_stats():
    train, test = _counts(seed=0), _counts(seed=1)
    norm = Normalizer().fit(train)
    assert norm.transform_ == "log_cpm"
    out = norm.transform(train)
    np.testing.assert_allclose(out.X.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(out.X.std(0), 1, atol=1e-3)
    # New samples use the training mean/sd, not their own.
    manual = (log_cpm(test.X) - norm.mean_) / norm.std_
    np.testing.assert_allclose(norm.transform(test).X, manual, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", ["counts", "linear", "log"])
def test_inverse_transform_returns_the_input_units(scale):
    adata = _counts(seed=2)
    if scale == "linear":                                   # TPM-like: non-integer, positive
        adata.X = adata.X * 1.37 + 0.5
    elif scale == "log":
        adata.X = np.log2(adata.X + 1.0)
    norm = Normalizer(NormalizeConfig(n_top_genes=20)).fit(adata)
    assert norm.transform_ == {"counts": "log_cpm", "linear": "log2p1", "log": "none"}[scale]
    back = norm.inverse_transform(norm.transform(adata).X, library_size=adata.X.sum(1))
    expected = adata[:, norm.genes_].X
    np.testing.assert_allclose(back, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())
    if scale == "counts":
        with pytest.raises(ValueError, match="library_size"):
            norm.inverse_transform(norm.transform(adata).X)


def test_top_genes_selected_by_training_variance():
    adata = _counts()
    adata.X[:, 7] = adata.X[:, 7] * np.tile([0.01, 100], 20)    # make G7 wildly variable
    norm = Normalizer(NormalizeConfig(n_top_genes=5)).fit(adata)
    assert len(norm.genes_) == 5 and "G7" in norm.genes_


def test_save_load_round_trip(tmp_path):
    train, test = _counts(seed=0), _counts(seed=2)
    norm = Normalizer(NormalizeConfig(n_top_genes=10)).fit(train)
    norm.save(tmp_path / "normalizer.json")
    again = Normalizer.load(tmp_path / "normalizer.json")
    np.testing.assert_array_equal(norm.transform(test).X, again.transform(test).X)


def test_missing_genes_are_nan_and_flagged():
    train = _counts()
    norm = Normalizer().fit(train)
    partial = train[:, 5:].copy()
    out = norm.transform(partial)
    assert out.n_vars == train.n_vars
    assert np.isnan(out.X[:, :5]).all() and not np.isnan(out.X[:, 5:]).any()
    assert out.var["observed"].sum() == train.n_vars - 5


def test_log_transform_refuses_negative_values():
    adata = _counts()
    norm = Normalizer(NormalizeConfig(transform="log2p1")).fit(adata)
    adata.X[3, 4] = -1.0
    with pytest.raises(InputError, match="gene 'G4' of sample 4 is negative"):
        norm.transform(adata)


def test_unfitted_and_bad_config():
    with pytest.raises(NotFittedError):
        Normalizer().transform(_counts())
    with pytest.raises(ValueError, match="transform must be one of"):
        NormalizeConfig(transform="vst")
    with pytest.raises(ValueError, match="unknown NormalizeConfig key"):
        NormalizeConfig.from_dict({"zscore": True, "center": 1})


def test_simulated_log_cohort_with_missing_values(tiny_cohort):
    """Log-scale input is not re-logged; statistics come from training rows only, NaNs ignored."""
    train, test = tiny_cohort[:40].copy(), tiny_cohort[40:].copy()
    norm = Normalizer().fit(train)
    assert norm.transform_ == "none" and norm.n_samples_fit_ == 40
    np.testing.assert_allclose(norm.mean_, np.nan_to_num(np.nanmean(train.X, axis=0)), rtol=1e-5)
    out = norm.transform(test)
    np.testing.assert_array_equal(np.isnan(out.X), np.isnan(test.X))   # missing stays missing
    assert out.obs_names.equals(test.obs_names)


def test_read_h5ad_keeps_simulated_survival(tiny_cohort, tmp_path):
    from gexcore.data import read_cohort

    tiny_cohort.write_h5ad(tmp_path / "tiny.h5ad")
    again = read_cohort(tmp_path / "tiny.h5ad")
    np.testing.assert_array_equal(again.X, tiny_cohort.X)
    n_events = int(np.nansum(tiny_cohort.obs["event"]))
    assert again.uns["validation"]["survival"]["n_events"] == n_events
