"""The protocol end to end on a tiny cohort, and the leakage guards."""

from __future__ import annotations

import numpy as np
import pytest

from gexcore.data.normalize import Normalizer
from gexcore.errors import InputError
from gexcore.evaluate import ClassificationTask, EvalConfig, SurvivalTask, evaluate_cohort
from gexcore.models.encoder import Encoder

FAST = dict(methods=("scarf",), fractions=(0.5, 1.0), seeds=2, pretrain_epochs=1,
            finetune_epochs=1)


def _spy(monkeypatch, cls, name, seen):
    original = getattr(cls, name)

    def wrapped(self, adata, *args, **kwargs):
        seen.append(set(adata.obs_names))
        return original(self, adata, *args, **kwargs)
    monkeypatch.setattr(cls, name, wrapped)


def test_classification_rows_models_and_metrics(tiny_cohort):
    result = evaluate_cohort(tiny_cohort, ClassificationTask("cancer_type"), EvalConfig(**FAST))
    s = result.scores
    assert len(s) == 2 * 2 * 6          # seeds x fractions x (4 baselines + frozen + tuned)
    assert set(s["model"]) == {"PCA + linear", "raw-feature linear", "MLP from scratch",
                               "random-init MLP", "scarf"}
    assert set(s.loc[s["model"] == "scarf", "regime"]) == {"frozen", "fine-tuned"}
    assert ((s[["accuracy", "macro_f1"]] >= 0) & (s[["accuracy", "macro_f1"]] <= 1)).all().all()
    # the simulated types separate well: a linear model on the genes must see it
    assert s.loc[s["model"] == "raw-feature linear", "accuracy"].mean() > 0.8
    assert result.info["pretraining_saw_test"] is False
    assert set(result.predictions["model"]) >= {"scarf", "PCA + linear"}
    assert "scarf | fine-tuned" in result.extras


def test_pretraining_and_scalers_never_see_test_samples(tiny_cohort, monkeypatch):
    pretrained, normalised = [], []
    _spy(monkeypatch, Encoder, "pretrain", pretrained)
    _spy(monkeypatch, Normalizer, "fit", normalised)
    result = evaluate_cohort(tiny_cohort, ClassificationTask("cancer_type"),
                             EvalConfig(**{**FAST, "seeds": 1, "finetune": False}))
    test_ids = set(result.predictions["sample"])
    assert pretrained and normalised
    for seen in pretrained + normalised:
        assert not seen & test_ids, "a test sample reached pretraining or normaliser fitting"


def test_transductive_mode_is_explicit_and_reported(tiny_cohort, monkeypatch):
    pretrained = []
    _spy(monkeypatch, Encoder, "pretrain", pretrained)
    result = evaluate_cohort(tiny_cohort, ClassificationTask("cancer_type"),
                             EvalConfig(**{**FAST, "seeds": 1, "finetune": False,
                                           "transductive": True}))
    assert set(result.predictions["sample"]) <= pretrained[0]
    assert result.info["pretraining_saw_test"] is True


def test_survival_scores_and_risk_groups(tiny_cohort):
    result = evaluate_cohort(tiny_cohort, SurvivalTask("time", "event"),
                             EvalConfig(**{**FAST, "seeds": 1}))
    s = result.scores
    assert s[["c_harrell", "c_uno"]].notna().all().all()
    assert s["c_harrell"].between(0, 1).all()
    extra = result.extras["raw-feature linear | baseline"]
    assert len(extra["thresholds"]) == 1 and 0 <= extra["logrank_p"] <= 1


def test_bad_label_column_lists_the_columns(tiny_cohort):
    with pytest.raises(InputError, match="'tumour'.*columns are: .*cancer_type"):
        evaluate_cohort(tiny_cohort, ClassificationTask("tumour"), EvalConfig(**FAST))


def test_survival_without_events_is_refused(tiny_cohort):
    tiny_cohort.obs["event"] = 0
    with pytest.raises(InputError, match="2 events"):
        evaluate_cohort(tiny_cohort, SurvivalTask("time", "event"), EvalConfig(**FAST))


def test_singleton_classes_are_dropped_not_crashing(tiny_cohort):
    tiny_cohort.obs["cancer_type"] = tiny_cohort.obs["cancer_type"].astype(str)
    tiny_cohort.obs.iloc[0, tiny_cohort.obs.columns.get_loc("cancer_type")] = "RARE"
    result = evaluate_cohort(tiny_cohort, ClassificationTask("cancer_type"),
                             EvalConfig(**{**FAST, "seeds": 1, "finetune": False}))
    assert "RARE" not in result.info["classes"]
    assert np.isfinite(result.scores["accuracy"]).all()
