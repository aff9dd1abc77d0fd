"""The Cox head trained end to end: learns a planted risk, higher risk = shorter survival."""

from __future__ import annotations

import numpy as np
import pytest

from gexcore.models.encoder import Encoder
from gexcore.tasks.cox_finetune import FineTuneCox
from gexcore.tasks.metrics import harrell_c
from gexcore.tasks.survival import survival_target


def test_learns_a_planted_risk(tiny_cohort):
    enc = Encoder("scarf")
    enc.initialize(tiny_cohort, seed=0)
    X = enc.normalizer.transform(tiny_cohort).X
    rng = np.random.default_rng(0)
    risk = np.nan_to_num(X[:, :5]).sum(1)                   # the truth: 5 genes drive hazard
    time = rng.exponential(np.exp(-risk))
    event = rng.random(len(time)) < 0.8
    model = FineTuneCox(encoder=enc, epochs=60, seed=0).fit(X, survival_target(time, event))
    c = harrell_c(time, event, model.predict_risk(X))
    assert c > 0.7, f"training C-index {c:.3f}: the head did not learn (or the sign flipped)"


def test_refuses_a_cohort_without_events(tiny_cohort):
    enc = Encoder("scarf")
    enc.initialize(tiny_cohort, seed=0)
    X = enc.normalizer.transform(tiny_cohort).X
    y = survival_target(np.ones(len(X)), np.zeros(len(X), bool))
    with pytest.raises(ValueError, match="without events"):
        FineTuneCox(encoder=enc).fit(X, y)
