"""Metrics: hand-worked cases, agreement with scikit-learn, lifelines and scikit-survival."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lifelines.utils import concordance_index
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw
from sksurv.util import Surv

from gexcore.errors import InputError
from gexcore.tasks.metrics import classification_metrics, harrell_c, imputation_metrics, uno_c


def _survival_data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer times and risks, so both time ties and risk ties are common."""
    rng = np.random.default_rng(seed)
    time = rng.integers(1, 20, n).astype(float)
    event = rng.random(n) < 0.6
    risk = (rng.integers(0, 8, n) - time // 4).astype(float)       # informative, with ties
    return time, event, risk


# ---------------------------------------------------------------------------------- Harrell's C

def test_harrell_c_hand_worked():
    # Comparable pairs (earlier time is an event): (0,1) (0,2) (0,3) (2,3); sample 1 is censored.
    # risk 4 > 3, 1, 2: three concordant; pair (2,3) has risk 1 < 2: discordant. C = 3/4.
    time, event = np.array([1.0, 2, 3, 4]), np.array([1, 0, 1, 1])
    assert harrell_c(time, event, np.array([4.0, 3, 1, 2])) == pytest.approx(0.75)
    # Risk ties: (0,1) tie 0.5, (0,2) and (0,3) concordant, (2,3) tie 0.5 -> 3/4.
    assert harrell_c(time, event, np.array([4.0, 4, 1, 1])) == pytest.approx(0.75)
    # Time tie, event vs censored at t=1: comparable, the event counts as earlier.
    # Pairs (0,1) (0,2) (0,3) (2,3) -> risks 3>1, 3>2, 3>0, 2>0: C = 1.
    time, event = np.array([1.0, 1, 2, 3]), np.array([1, 0, 1, 0])
    assert harrell_c(time, event, np.array([3.0, 1, 2, 0])) == pytest.approx(1.0)


def test_harrell_c_sign_convention():
    """Higher risk = shorter survival: risk = -time is perfectly concordant."""
    rng = np.random.default_rng(0)
    time = rng.exponential(10, 200)
    event = rng.random(200) < 0.7
    assert harrell_c(time, event, -time) == pytest.approx(1.0)
    assert harrell_c(time, event, time) == pytest.approx(0.0)


@pytest.mark.parametrize("seed", range(5))
def test_harrell_c_matches_lifelines_and_sksurv(seed):
    time, event, risk = _survival_data(seed, 300)
    ours = harrell_c(time, event, risk)
    np.testing.assert_allclose(ours, concordance_index(time, -risk, event), rtol=1e-12)
    np.testing.assert_allclose(ours, concordance_index_censored(event, time, risk)[0],
                               rtol=1e-12)


def test_harrell_c_blocks_agree(monkeypatch):
    """Blocked evaluation (several event blocks) gives the same number as one block."""
    import gexcore.tasks.metrics as metrics

    time, event, risk = _survival_data(7, 500)
    whole = harrell_c(time, event, risk)
    monkeypatch.setattr(metrics, "_BLOCK_CELLS", 1000)            # two events per block
    assert harrell_c(time, event, risk) == pytest.approx(whole, rel=1e-12)


def test_harrell_c_no_comparable_pair_is_nan():
    assert np.isnan(harrell_c([1.0, 2.0], [0, 0], [1.0, 2.0]))
    assert np.isnan(harrell_c([3.0], [1], [1.0]))


def test_harrell_c_rejects_bad_input():
    with pytest.raises(InputError, match="lengths"):
        harrell_c([1.0, 2.0], [1, 0], [1.0])
    with pytest.raises(InputError, match="time has 1 missing"):
        harrell_c([1.0, np.nan], [1, 0], [1.0, 2.0])
    with pytest.raises(InputError, match="0/1"):
        harrell_c([1.0, 2.0], [1, 2], [1.0, 2.0])


# -------------------------------------------------------------------------------------- Uno's C

def test_uno_c_hand_worked():
    # Training censoring KM (events leave first): G(1) = 1, G(2) = 2/3 (1 of 3 censored),
    # G(3) = 2/3. Test events at 1, 2.5, 3 get weights 1/G^2 = 1, 9/4, 9/4.
    # Pairs (0,1) (0,2) concordant with weight 1; (1,2) discordant with weight 9/4.
    # C = (1 + 1) / (1 + 1 + 9/4) = 8/17; Harrell's C would be 2/3.
    train_time, train_event = np.array([1.0, 2, 3, 4]), np.array([1, 0, 1, 0])
    time, event, risk = np.array([1.0, 2.5, 3]), np.array([1, 1, 1]), np.array([3.0, 1, 2])
    assert uno_c(time, event, risk, train_time, train_event) == pytest.approx(8 / 17)
    assert harrell_c(time, event, risk) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tau", [None, 12.0])
def test_uno_c_matches_sksurv(seed, tau):
    time, event, risk = _survival_data(seed, 250)
    train_time, train_event, _ = _survival_data(seed + 100, 400)
    train_time[0], train_event[0] = 25.0, False                   # test times inside the range
    expected = concordance_index_ipcw(Surv.from_arrays(train_event, train_time),
                                      Surv.from_arrays(event, time), risk, tau=tau)[0]
    np.testing.assert_allclose(uno_c(time, event, risk, train_time, train_event, tau=tau),
                               expected, rtol=1e-12)


def test_uno_c_sign_and_zero_censoring_survival():
    rng = np.random.default_rng(1)
    time, event = rng.uniform(0, 10, 200), rng.random(200) < 0.6       # no ties in time
    train_time, train_event = rng.uniform(0, 12, 300), rng.random(300) < 0.6
    assert uno_c(time, event, -time, train_time, train_event) == pytest.approx(1.0)
    last_censored = np.array([1.0, 2, 3]), np.array([1, 1, 0])    # G = 0 from t = 3 on
    with pytest.raises(InputError, match="smaller tau"):
        uno_c([1.0, 3.0, 4.0], [1, 1, 0], [2.0, 1.0, 0.0], *last_censored)
    assert uno_c([1.0, 3.0, 4.0], [1, 1, 0], [2.0, 1.0, 0.0], *last_censored,
                 tau=2.0) == pytest.approx(1.0)


# ------------------------------------------------------------------------------ classification

def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    classes = ["BRCA", "LUAD", "COAD"]
    y = rng.choice(classes, 200)
    proba = rng.dirichlet(np.ones(3), 200)
    proba[np.arange(200), [classes.index(c) for c in y]] += 0.3        # better than chance
    out = classification_metrics(y, proba, classes)
    pred = np.asarray(classes)[proba.argmax(1)]
    assert out["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert out["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert out["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert out["confusion"] == confusion_matrix(y, pred, labels=classes).tolist()
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=classes)
    assert out["per_class"]["LUAD"] == pytest.approx(
        {"precision": p[1], "recall": r[1], "f1": f[1], "support": s[1]})
    assert out["classes"] == classes
    json.dumps(out)                                                    # JSON-safe


def test_classification_metrics_absent_labels_and_int_labels():
    classes = [0, 1, 2]
    y = np.array([0, 0, 1, 1])                                         # class 2 never occurs
    proba = np.array([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    out = classification_metrics(y, proba, classes)
    assert out["classes"] == ["0", "1", "2"]
    assert out["confusion"] == [[1, 0, 1], [0, 2, 0], [0, 0, 0]]
    assert out["per_class"]["2"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["balanced_accuracy"] == pytest.approx(0.75)             # (1/2 + 1) / 2
    json.dumps(out)


def test_classification_metrics_errors():
    with pytest.raises(InputError, match=r"expected \(2, 2\)"):
        classification_metrics(["a", "b"], np.ones((2, 3)), ["a", "b"])
    with pytest.raises(InputError, match="not in classes"):
        classification_metrics(["a", "z"], np.ones((2, 2)), ["a", "b"])


# ---------------------------------------------------------------------------------- imputation

def test_imputation_metrics_hand_worked():
    true = np.array([[1.0, 2.0], [3.0, 4.0]])
    pred = np.array([[2.0, 0.0], [5.0, 9.0]])
    mask = np.array([[True, False], [True, False]])
    out = imputation_metrics(true, pred, mask)
    # masked cells: (1 -> 2), (3 -> 5): errors 1 and 2, RMSE sqrt(5/2); r of [1,3] vs [2,5] = 1
    assert out["rmse"] == pytest.approx(np.sqrt(2.5))
    assert out["pearson_r"] == pytest.approx(1.0)
    assert out["n"] == 2
    assert np.isnan(out["per_gene_r"])                                 # no gene has 3 cells


def test_imputation_metrics_ignore_unmasked_cells():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(50, 20))
    pred = true + rng.normal(scale=0.5, size=true.shape)
    mask = rng.random(true.shape) < 0.3
    before = imputation_metrics(true, pred, mask)
    changed = np.where(mask, pred, rng.normal(size=true.shape) * 100)
    assert imputation_metrics(true, changed, mask) == before
    assert 0.7 < before["pearson_r"] < 1 and 0.7 < before["per_gene_r"] < 1
    gene_r = [np.corrcoef(true[mask[:, g], g], pred[mask[:, g], g])[0, 1] for g in range(20)]
    assert before["per_gene_r"] == pytest.approx(np.mean(gene_r))
    json.dumps(before)


def test_imputation_metrics_skip_missing_truth():
    true = np.array([[1.0, np.nan, 3.0, 4.0]]).T
    pred = np.array([[1.0, 7.0, 3.0, 5.0]]).T
    out = imputation_metrics(true, pred, np.ones_like(true, dtype=bool))
    assert out["n"] == 3
    assert out["rmse"] == pytest.approx(np.sqrt(1 / 3))
    with pytest.raises(InputError, match="shapes"):
        imputation_metrics(true, pred[:2], np.ones_like(true, dtype=bool))
