"""Imputation benchmark: MCAR masks, baselines, encoder imputers, leakage, the curve table."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from gexcore.data.normalize import NormalizeConfig, Normalizer
from gexcore.data.simulate import SimulationConfig, simulate_cohort
from gexcore.errors import GeneMismatchError
from gexcore.models.encoder import pretrain
from gexcore.models.gene_transformer import GeneTransformerConfig
from gexcore.models.mlp import MLPConfig
from gexcore.tasks.imputation import (
    EncoderImputer,
    KNNImputer,
    MeanImputer,
    imputation_curve,
    mask_genes,
    mask_mcar,
    summarize_curve,
)
from gexcore.tasks.restore import impute_cohort
from gexcore.train.config import TrainConfig


@pytest.fixture(scope="module")
def split():
    """250 x 60 simulated cohort with co-expression modules; 200 train, 50 test rows."""
    ad = simulate_cohort(SimulationConfig(n_samples=250, n_genes=60, n_cancer_types=4,
                                          n_shared_modules=4, module_size=12, n_batches=2,
                                          n_prognostic_modules=1, seed=1))
    order = np.random.default_rng(0).permutation(ad.n_obs)
    return ad[order[:200]].copy(), ad[order[200:]].copy()


@pytest.fixture(scope="module")
def encoders(split):
    train, _ = split
    tc = TrainConfig(epochs=15, batch_size=32, seed=0, device="cpu", patience=None)
    tr = pretrain(train, method="transformer", config=tc,
                  model_config=GeneTransformerConfig(d_model=32, n_heads=2, n_layers=1,
                                                     dropout=0.0, genes_per_sample=60))
    vi = pretrain(train, method="vime", config=tc,
                  model_config=MLPConfig(n_layers=2, hidden=64, dropout=0.0))
    return {"transformer": tr, "vime": vi}


@pytest.fixture(scope="module")
def spaces(split, encoders):
    """(X_train, X_test) in the shared normalised space; NaN = missing."""
    norm = encoders["transformer"].normalizer
    return norm.transform(split[0]).X, norm.transform(split[1]).X


def _rmse(X, pred, hide):
    return float(np.sqrt(np.mean((pred[hide] - X[hide]) ** 2)))


def test_mask_mcar_hides_the_rate_of_observed_cells_only():
    missing = np.random.default_rng(1).random((50, 40)) < 0.2
    n_obs = (~missing).sum()
    for rate in (0.0, 0.1, 0.5, 0.9, 1.0):
        hide = mask_mcar(missing, rate, seed=3)
        assert hide.sum() == round(rate * n_obs)
        assert not (hide & missing).any()
    np.testing.assert_array_equal(mask_mcar(missing, 0.3, seed=3), mask_mcar(missing, 0.3, seed=3))
    assert (mask_mcar(missing, 0.3, seed=3) != mask_mcar(missing, 0.3, seed=4)).any()
    low, high = mask_mcar(missing, 0.3, seed=3), mask_mcar(missing, 0.7, seed=3)
    assert not (low & ~high).any()                           # nested over rates
    with pytest.raises(ValueError, match="rate"):
        mask_mcar(missing, 1.5, seed=0)


def test_mask_genes_hides_whole_observed_genes_nested_over_rates():
    missing = np.zeros((30, 20), bool)
    missing[:, 3] = True                                     # never measured: never drawn
    missing[5, 7] = True
    low, high = mask_genes(missing, 0.3, seed=2), mask_genes(missing, 0.6, seed=2)
    hidden = high.any(axis=0)
    assert low.any(axis=0).sum() == round(0.3 * 19) and hidden.sum() == round(0.6 * 19)
    assert not hidden[3] and not (high & missing).any()
    np.testing.assert_array_equal(high[:, hidden] | missing[:, hidden], True)   # whole genes
    assert not (low & ~high).any()
    assert (mask_genes(missing, 0.3, seed=3) != low).any()


def test_mask_mcar_is_uniform_over_genes():
    hide = mask_mcar(np.zeros((10_000, 10), bool), 0.3, seed=0)
    np.testing.assert_allclose(hide.mean(axis=0), 0.3, atol=0.02)     # sd 0.005


def test_mean_imputer_uses_training_means_only():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(30, 8)).astype(np.float32), rng.normal(size=(10, 8))
    train[0, 0] = np.nan
    hide = mask_mcar(np.isnan(test), 0.5, seed=0)
    imp = MeanImputer().fit(train)
    np.testing.assert_allclose(imp.mean_, np.nanmean(train, axis=0), rtol=1e-6)
    pred = imp.predict(test, hide)
    np.testing.assert_allclose(pred[hide], np.broadcast_to(imp.mean_, test.shape)[hide])
    np.testing.assert_array_equal(pred[~hide], test[~hide].astype(np.float32))
    leaked = np.where(hide, test + 100.0, test)              # test values at hidden cells: no say
    np.testing.assert_array_equal(imp.predict(leaked, hide)[hide], pred[hide])
    assert not np.allclose(MeanImputer().fit(train + 1.0).predict(test, hide)[hide], pred[hide])


def test_predict_keeps_visible_cells_and_unhidden_missing_nan():
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    X[0, 1] = np.nan
    hide = np.zeros_like(X, bool)
    hide[1, 2] = True
    out = MeanImputer().fit(X).predict(X, hide)
    assert np.isnan(out[0, 1]) and out[1, 2] == pytest.approx(np.nanmean(X[:, 2]))
    np.testing.assert_array_equal(out[~hide & ~np.isnan(X)], X[~hide & ~np.isnan(X)])


def test_imputers_are_sklearn_estimators():
    for imp in (MeanImputer(), KNNImputer(n_neighbors=3)):
        with pytest.raises(NotFittedError):
            imp.predict(np.zeros((2, 3)), np.zeros((2, 3), bool))
        assert clone(imp).get_params() == imp.get_params()


def test_knn_beats_mean_on_correlated_data(spaces):
    X_train, X_test = spaces
    hide = mask_mcar(np.isnan(X_test), 0.3, seed=0)
    mean = _rmse(X_test, MeanImputer().fit(X_train).predict(X_test, hide), hide)
    knn = _rmse(X_test, KNNImputer().fit(X_train).predict(X_test, hide), hide)
    assert knn < 0.9 * mean


def test_pretrained_transformer_beats_mean_at_30_percent(spaces, encoders):
    X_train, X_test = spaces
    hide = mask_mcar(np.isnan(X_test), 0.3, seed=0)
    mean = _rmse(X_test, MeanImputer().fit(X_train).predict(X_test, hide), hide)
    for name, enc in encoders.items():
        pred = EncoderImputer(enc).fit(X_train).predict(X_test, hide)
        assert _rmse(X_test, pred, hide) < 0.8 * mean, name     # ~0.65 and ~0.72 of it


_IMPUTERS = {
    "mean": lambda enc: MeanImputer(),
    "knn": lambda enc: KNNImputer(),
    "transformer": lambda enc: EncoderImputer(enc["transformer"]),
    "vime": lambda enc: EncoderImputer(enc["vime"]),
    "vime-marginal": lambda enc: EncoderImputer(enc["vime"], fill="marginal", n_draws=3),
}


@pytest.mark.parametrize("name", list(_IMPUTERS))
def test_predictions_never_read_hidden_true_values(spaces, encoders, name):
    X_train, X_test = spaces
    imp = _IMPUTERS[name](encoders).fit(X_train)
    hide = mask_mcar(np.isnan(X_test), 0.3, seed=1)
    pred = imp.predict(X_test, hide)
    np.testing.assert_array_equal(imp.predict(np.where(hide, 1e6, X_test), hide), pred)
    assert np.isfinite(pred[hide]).all()


def test_encoder_imputer_refuses_methods_without_decoder_and_wrong_genes(spaces, split,
                                                                        encoders):
    X_train, _ = spaces
    scarf = pretrain(split[0], method="scarf", config=TrainConfig(epochs=1, device="cpu"),
                     model_config=MLPConfig(n_layers=1, hidden=8))
    with pytest.raises(ValueError, match="no value decoder"):
        EncoderImputer(scarf).fit(X_train)
    with pytest.raises(GeneMismatchError, match="60 genes but X has 5"):
        EncoderImputer(encoders["vime"]).fit(X_train[:, :5])


def test_imputation_curve_covers_rates_seeds_methods(split, encoders):
    train, test = split
    df = imputation_curve(train, test, encoders=encoders, rates=(0.1, 0.5, 0.9), seeds=(0, 1))
    assert len(df) == 3 * 2 * 4
    assert set(df.method) == {"mean", "knn", "transformer", "vime"}
    assert df.groupby("method").size().eq(6).all()
    assert np.isfinite(df.rmse).all() and (df.n_masked > 0).all()
    # The mean imputer is constant per gene in z-space: no correlation, by definition.
    assert df.query("method == 'mean'")[["pearson_r", "per_gene_r"]].isna().all().all()
    assert np.isfinite(df.query("method != 'mean'")[["pearson_r", "per_gene_r"]]).all().all()
    summary = summarize_curve(df)
    assert list(summary.columns) == ["method", "missing_rate", "rmse_mean", "rmse_sd", "r_mean",
                                     "r_sd"]
    assert len(summary) == 4 * 3
    row = summary.query("method == 'knn' and missing_rate == 0.5").iloc[0]
    assert row.rmse_mean == pytest.approx(df.query("method == 'knn' and missing_rate == 0.5")
                                          .rmse.mean())


def test_imputation_curve_refuses_encoders_with_another_normaliser(split, encoders):
    train, test = split
    other = Normalizer(NormalizeConfig(n_top_genes=30)).fit(train)
    with pytest.raises(GeneMismatchError, match="another normaliser"):
        imputation_curve(train, test, encoders=encoders, normalizer=other, seeds=(0,))


@pytest.mark.parametrize("method", ["transformer", "vime"])
def test_impute_cohort_fills_a_smaller_panel_in_its_own_units(split, encoders, method):
    """A test panel lacking 10 of the model's genes, plus some empty cells: the filled
    genes track the truth better than the training mean, measured cells stay as they were."""
    train, test = split
    dropped = list(test.var_names[::6])                            # 10 of 60
    panel = test[:, ~test.var_names.isin(dropped)].copy()
    rng = np.random.default_rng(0)
    empty = rng.random(panel.shape) < 0.02
    panel.X = np.where(empty, np.nan, panel.X)

    out = impute_cohort(encoders[method], panel)
    assert list(out.var_names) == [*panel.var_names, *dropped]
    assert out.var["observed"].tolist() == [True] * panel.n_vars + [False] * len(dropped)
    filled = out.layers["imputed"]
    measured = ~np.isnan(panel.X)                   # the simulator leaves some cells empty too
    np.testing.assert_array_equal(filled[:, : panel.n_vars], ~measured)
    assert filled[:, panel.n_vars:].all() and np.isfinite(out.X).all()
    assert np.nanmin(panel.X) >= 0 and out.X.min() >= 0       # log2(x+1) input: no negatives
    np.testing.assert_array_equal(out.X[:, : panel.n_vars][measured], panel.X[measured])
    assert out.uns["imputation"] == {"method": method, "n_cells": int(filled.sum()),
                                     "n_genes_added": 10, "units": "log", "model_genes": 60}

    truth = test[:, dropped].X                         # scored where the simulator kept a value
    guess = out[:, dropped].X
    baseline = np.broadcast_to(np.nanmean(train[:, dropped].X, axis=0), truth.shape)
    rmse, base = (float(np.sqrt(np.nanmean((p - truth) ** 2))) for p in (guess, baseline))
    assert rmse < 0.85 * base, (rmse, base)


def test_impute_cohort_refuses_encoders_without_a_decoder(split):
    scarf = pretrain(split[0], method="scarf", config=TrainConfig(epochs=1, device="cpu"),
                     model_config=MLPConfig(n_layers=1, hidden=16))
    with pytest.raises(ValueError, match="no value decoder"):
        impute_cohort(scarf, split[1])


def test_shipped_encoder_fills_a_demo_panel_without_negative_log_values():
    """The shipped VIME decoder predicts below 0 for some low genes (-0.68 before the clip);
    log2(x+1) values cannot be negative, so the filled cohort keeps the input's scale."""
    from gexcore.data.demo import assets_dir, load_demo
    from gexcore.models.encoder import Encoder

    panel = load_demo("simulated_pancancer")[:40, 300:].copy()
    out = impute_cohort(Encoder.load(assets_dir() / "models" / "demo_vime"), panel)
    assert out.n_vars == 2000 and out.uns["imputation"]["n_genes_added"] == 300
    assert out.X.min() >= 0 and (out.X[out.layers["imputed"]] == 0).any()
    assert out.uns["validation"]["scale"] == panel.uns["validation"]["scale"] == "log"
