"""Heads: the linear probe and end-to-end fine-tuning (MLP and transformer bodies)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from gexcore.models.encoder import Encoder
from gexcore.models.gene_transformer import GeneTransformerConfig
from gexcore.tasks.classification import FineTuneClassifier, linear_probe


def _inputs(adata, method="scarf", model_config=None):
    enc = Encoder(method, model_config)
    enc.initialize(adata, seed=0)
    return enc, enc.normalizer.transform(adata).X, adata.obs["cancer_type"].astype(str).to_numpy()


def test_finetune_learns_the_types_and_keeps_the_encoder(tiny_cohort):
    enc, X, y = _inputs(tiny_cohort)
    before = {k: v.clone() for k, v in enc.body.state_dict().items()}
    clf = FineTuneClassifier(encoder=enc, epochs=30, seed=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(y), 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert (clf.predict(X) == y).mean() > 0.9            # training fit on separable types
    after = enc.body.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "fine-tuning a copy only"


def test_finetune_is_seeded(tiny_cohort):
    enc, X, y = _inputs(tiny_cohort)
    a = FineTuneClassifier(encoder=enc, epochs=2, seed=1).fit(X, y).predict_proba(X)
    b = FineTuneClassifier(encoder=enc, epochs=2, seed=1).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_finetune_transformer_body_handles_missing_genes(tiny_cohort):
    cfg = GeneTransformerConfig(d_model=16, n_heads=2, n_layers=1, genes_per_sample=16)
    enc, X, y = _inputs(tiny_cohort, "transformer", cfg)
    assert np.isnan(X).any()                              # the simulator leaves gaps
    clf = FineTuneClassifier(encoder=enc, epochs=2, min_steps=5).fit(X, y)
    assert np.isfinite(clf.predict_proba(X)).all()


def test_estimator_contract(tiny_cohort):
    enc, X, y = _inputs(tiny_cohort)
    clf = clone(FineTuneClassifier(encoder=enc, epochs=1))
    with pytest.raises(NotFittedError):
        clf.predict_proba(X)
    with pytest.raises(ValueError, match="encoder="):
        FineTuneClassifier().fit(X, y)
    with pytest.raises(ValueError, match="2 classes"):
        FineTuneClassifier(encoder=enc).fit(X, np.array(["a"] * len(X)))


def test_linear_probe_standardises_then_fits(tiny_cohort):
    _, X, y = _inputs(tiny_cohort)
    probe = linear_probe().fit(np.nan_to_num(X) * 1000.0, y)    # scale must not matter
    assert (probe.predict(np.nan_to_num(X) * 1000.0) == y).mean() > 0.9
