"""Survival heads: Cox loss vs lifelines and a slow loop, CoxHead, risk groups, KM summary."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from lifelines import CoxPHFitter, KaplanMeierFitter
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from gexcore.errors import InputError
from gexcore.tasks.survival import (
    CoxHead,
    KMResult,
    RiskGroups,
    cox_loss,
    km_summary,
    survival_target,
)

BETA = np.array([1.0, -0.6, 0.0, 0.3])


def _tied_data(seed: int, n: int = 120, p: int = 3):
    """Features and integer survival times, so many event times are tied."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    time = rng.integers(1, 15, n).astype(float)
    event = rng.random(n) < 0.7
    return X, time, event


def _cox_data(seed: int, n: int = 400):
    """Exponential times with hazard exp(X @ BETA), uniform censoring (~30%)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(BETA)))
    event_time = rng.exponential(1.0 / np.exp(X @ BETA))
    censor = rng.uniform(0, 3, n)
    return X, np.minimum(event_time, censor), event_time <= censor


def _slow_cox_loss(eta: torch.Tensor, time: np.ndarray, event: np.ndarray, ties: str):
    """Textbook loop over event times; the reference for values and gradients."""
    ll = eta.new_zeros(())
    for t in np.unique(time[event]):
        tied, at_risk = torch.from_numpy((time == t) & event), torch.from_numpy(time >= t)
        d = int(tied.sum())
        s, e = torch.exp(eta[at_risk]).sum(), torch.exp(eta[tied]).sum()
        ll = ll + eta[tied].sum()
        for j in range(d):
            ll = ll - torch.log(s - (j / d) * e if ties == "efron" else s)
    return -ll / event.sum()


# ------------------------------------------------------------------------------------ cox_loss

@pytest.mark.parametrize("seed", range(3))
def test_cox_loss_efron_matches_lifelines(seed):
    X, time, event = _tied_data(seed)
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(T=time, E=event)
    cph = CoxPHFitter().fit(frame, "T", "E")                      # Efron ties
    # lifelines centres X; the partial likelihood is invariant to that shift
    risk = torch.from_numpy(X @ cph.params_.to_numpy())
    np.testing.assert_allclose(float(cox_loss(risk, time, event)),
                               -cph.log_likelihood_ / event.sum(), rtol=1e-10)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_loss_and_gradient_match_slow_loop(ties):
    _, time, event = _tied_data(1, n=80)
    eta = torch.randn(80, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    fast = eta.clone().requires_grad_(True)
    slow = eta.clone().requires_grad_(True)
    loss_fast = cox_loss(fast, torch.from_numpy(time), torch.from_numpy(event), ties)
    loss_slow = _slow_cox_loss(slow, time, event, ties)
    loss_fast.backward()
    loss_slow.backward()
    np.testing.assert_allclose(loss_fast.item(), loss_slow.item(), rtol=1e-12)
    np.testing.assert_allclose(fast.grad.numpy(), slow.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_cox_loss_breslow_optimum_matches_sksurv():
    """At scikit-survival's unpenalised Breslow fit our Breslow loss has zero gradient."""
    X, time, event = _tied_data(2, n=150)
    sk = CoxPHSurvivalAnalysis(alpha=0.0, ties="breslow").fit(X, Surv.from_arrays(event, time))
    coef = torch.tensor(sk.coef_, requires_grad=True)
    cox_loss(torch.from_numpy(X) @ coef, time, event, "breslow").backward()
    np.testing.assert_allclose(coef.grad.numpy(), 0.0, atol=1e-6)
    head = CoxHead(penalizer=0.0, ties="breslow").fit(X, survival_target(time, event))
    np.testing.assert_allclose(head.coef_ / head.scale_, sk.coef_, atol=1e-5)


def test_cox_loss_no_ties_efron_equals_breslow():
    rng = np.random.default_rng(0)
    time, event = rng.permutation(50).astype(float) + 1, rng.random(50) < 0.6
    risk = torch.from_numpy(rng.normal(size=(50, 1)))                 # (n, 1) is accepted
    assert cox_loss(risk, time, event, "efron").item() == pytest.approx(
        cox_loss(risk, time, event, "breslow").item(), rel=1e-12)


def test_cox_loss_edge_cases():
    risk = torch.zeros(4, requires_grad=True)
    loss = cox_loss(risk, np.arange(4.0), np.zeros(4))                # no events: zero, graph kept
    loss.backward()
    assert loss.item() == 0.0 and risk.grad is not None
    # four tied deaths, equal risk: Efron terms log(4 - l) for l = 0..3, divided by 4 events
    loss = cox_loss(torch.zeros(4), np.ones(4), np.ones(4))
    assert loss.item() == pytest.approx(np.mean(np.log([4, 3, 2, 1])))
    big = cox_loss(torch.tensor([800.0, 0.0, -800.0]), np.array([1.0, 2, 3]), np.ones(3))
    assert torch.isfinite(big)                                        # stable for huge risks
    with pytest.raises(ValueError, match="ties"):
        cox_loss(torch.zeros(2), np.ones(2), np.ones(2), ties="exact")


# ------------------------------------------------------------------------------------- CoxHead

def test_cox_head_recovers_coefficients_and_matches_lifelines():
    X, time, event = _cox_data(0)
    y = survival_target(time, event)
    head = CoxHead(penalizer=0.01).fit(X, y)
    coef = head.coef_ / head.scale_                                   # per original unit
    assert np.array_equal(np.argsort(coef), np.argsort(BETA))
    assert np.sign(coef[[0, 1, 3]]).tolist() == [1, -1, 1]
    np.testing.assert_allclose(coef, BETA, atol=0.2)
    frame = pd.DataFrame(X).add_prefix("x").assign(T=time, E=event)
    cph = CoxPHFitter(penalizer=0.01).fit(frame, "T", "E")
    lifelines_c = cph.score(frame, scoring_method="concordance_index")
    assert head.score(X, y) == pytest.approx(lifelines_c, abs=0.01)
    assert head.score(X, y) > 0.7                                     # higher risk = dies sooner


def test_cox_head_accepts_sksurv_target_and_penalty_shrinks():
    X, time, event = _cox_data(1, n=200)
    weak = CoxHead(penalizer=0.001).fit(X, Surv.from_arrays(event, time))
    strong = CoxHead(penalizer=10.0).fit(X, Surv.from_arrays(event, time))
    assert np.linalg.norm(strong.coef_) < 0.5 * np.linalg.norm(weak.coef_)
    assert weak.predict_risk(X).shape == (200,)
    assert weak.n_features_in_ == 4


def test_cox_head_clone_unfitted_and_errors():
    X, time, event = _cox_data(2, n=60)
    head = CoxHead(penalizer=0.5, ties="breslow", max_iter=50)
    assert clone(head).get_params() == head.get_params()
    with pytest.raises(NotFittedError):
        head.predict_risk(X)
    with pytest.raises(ValueError, match="none of the 60 samples has an event"):
        head.fit(X, survival_target(time, np.zeros(60)))
    with pytest.raises(InputError, match="structured array"):
        head.fit(X, time)
    head.fit(X, survival_target(time, event))
    with pytest.raises(InputError, match="fitted on 4"):
        head.predict_risk(X[:, :3])


def test_cox_head_constant_feature_is_harmless():
    X, time, event = _cox_data(3, n=100)
    X[:, 2] = 5.0
    head = CoxHead().fit(X, survival_target(time, event))
    assert head.coef_[2] == 0.0 and np.isfinite(head.predict_risk(X)).all()


# ---------------------------------------------------------------------------------- RiskGroups

def test_risk_groups_thresholds_come_from_training_risks():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=1000), rng.normal(loc=1.0, size=1000)   # test shifted up
    groups = RiskGroups().fit(train)
    assert groups.thresholds_ == pytest.approx([np.median(train)])
    assert groups.names_ == ["low", "high"]
    assert groups.assign(test).mean() > 0.75           # test risks are higher: mostly "high"
    assert np.bincount(groups.assign(train)).tolist() == [500, 500]


@pytest.mark.parametrize(("scheme", "cuts", "names"), [
    ("tertiles", None, ["low", "intermediate", "high"]),
    ("quartiles", None, ["Q1 (low)", "Q2", "Q3", "Q4 (high)"]),
    ("custom", (0.2, 0.8), ["G1 (low)", "G2", "G3 (high)"]),
])
def test_risk_groups_schemes(scheme, cuts, names):
    train = np.arange(100.0)
    groups = RiskGroups(scheme=scheme, cuts=cuts).fit(train)
    assert groups.names_ == names
    counts = np.bincount(groups.assign(train), minlength=len(names))
    expected = np.diff(np.r_[0, groups.quantiles_, 1]) * 100
    np.testing.assert_allclose(counts, expected, atol=1)
    assert clone(groups).get_params() == groups.get_params()


def test_risk_groups_ties_and_errors():
    groups = RiskGroups().fit([1.0, 2.0, 3.0])
    assert groups.assign([2.0, 2.0001, -5.0]).tolist() == [0, 1, 0]   # equal to cut -> low
    with pytest.raises(NotFittedError):
        RiskGroups().assign([1.0])
    with pytest.raises(ValueError, match="increasing quantiles"):
        RiskGroups(scheme="custom", cuts=(0.7, 0.3)).fit([1.0, 2.0])
    with pytest.raises(ValueError, match="increasing quantiles"):
        RiskGroups(scheme="custom").fit([1.0, 2.0])
    with pytest.raises(ValueError, match="scheme"):
        RiskGroups(scheme="deciles").fit([1.0, 2.0])
    with pytest.raises(InputError, match="finite"):
        RiskGroups().fit([1.0, np.nan])


# ---------------------------------------------------------------------------------- km_summary

def _two_groups(seed: int = 0, n: int = 100):
    rng = np.random.default_rng(seed)
    groups = np.repeat([0, 1], n)
    time = rng.exponential(np.where(groups == 1, 2.0, 8.0))          # high group dies earlier
    censor = rng.uniform(0, 15, 2 * n)
    return np.minimum(time, censor), time <= censor, groups


def test_km_summary_separates_clear_groups():
    time, event, groups = _two_groups()
    result = km_summary(time, event, groups, ["low", "high"], time_unit="months")
    assert isinstance(result, KMResult) and result.time_unit == "months"
    assert [g.name for g in result.groups] == ["low", "high"]
    assert result.logrank_p < 0.01
    (hr,) = result.hazard_ratios
    assert (hr.group, hr.reference) == ("high", "low")
    assert hr.hr > 1 and hr.lower > 1 and hr.upper > hr.hr and hr.p < 0.01
    high = result.groups[1]
    assert high.n == 100 and high.events == int(event[groups == 1].sum())
    assert high.median < result.groups[0].median


def test_km_summary_curves_equal_lifelines():
    time, event, groups = _two_groups(1, n=40)
    result = km_summary(time, event, groups, ["low", "high"])
    for k, curve in enumerate(result.groups):
        kmf = KaplanMeierFitter().fit(time[groups == k], event[groups == k])
        np.testing.assert_allclose(curve.timeline, kmf.survival_function_.index.to_numpy())
        np.testing.assert_allclose(curve.survival, kmf.survival_function_.iloc[:, 0].to_numpy())
        np.testing.assert_allclose(curve.lower, kmf.confidence_interval_.iloc[:, 0].to_numpy())
        assert curve.timeline[0] == 0 and curve.survival[0] == 1
        assert curve.median == kmf.median_survival_time_


def test_km_summary_numbers_at_risk_by_hand():
    time = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    event = np.array([1, 1, 0, 1, 1, 0, 1, 1, 0, 1])
    groups = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0])     # group 0: 2,4,6,8,10; group 1: odd
    result = km_summary(time, event, groups, ["low", "high"], n_ticks=3)
    np.testing.assert_allclose(result.at_risk_times, [0.0, 5.0, 10.0])
    # time >= t: at 0 all 5 each; at 5 low {6,8,10}, high {5,7,9}; at 10 low {10}, high none
    assert result.at_risk == {"low": [5, 3, 1], "high": [5, 3, 0]}


def test_km_summary_three_groups_and_empty_group():
    rng = np.random.default_rng(2)
    groups = np.repeat([0, 1, 2], 60)
    time = rng.exponential(np.array([10.0, 5.0, 2.0])[groups])
    event = np.ones(180, dtype=bool)
    result = km_summary(time, event, groups, ["low", "intermediate", "high"])
    assert [h.group for h in result.hazard_ratios] == ["intermediate", "high"]
    assert result.hazard_ratios[0].hr < result.hazard_ratios[1].hr
    with pytest.warns(UserWarning, match="intermediate"):
        dropped = km_summary(time, event, np.where(groups == 1, 2, groups),
                             ["low", "intermediate", "high"])
    assert [g.name for g in dropped.groups] == ["low", "high"]
    assert list(dropped.at_risk) == ["low", "high"]
    assert [h.group for h in dropped.hazard_ratios] == ["high"]


def test_km_summary_single_group_and_bad_groups():
    time, event, _ = _two_groups(3, n=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = km_summary(time, event, np.zeros(40, dtype=int), ["low", "high"])
    assert np.isnan(result.logrank_p) and result.hazard_ratios == []
    assert len(result.groups) == 1
    with pytest.raises(InputError, match=r"indices in 0\.\.1"):
        km_summary(time, event, np.full(40, 2), ["low", "high"])


def test_group_without_events_gets_nan_hazard_ratio():
    """Regression: a risk group with no events got HR 3e7 from an unconverged Cox fit."""
    time = np.arange(1.0, 21.0)
    event = np.r_[np.zeros(10), np.ones(10)].astype(bool)      # low group: all censored
    groups = np.r_[np.zeros(10), np.ones(10)].astype(int)
    with pytest.warns(UserWarning, match="no events"):
        result = km_summary(time, event, groups, ["low", "high"])
    assert np.isnan(result.hazard_ratios[0].hr) and 0 <= result.logrank_p <= 1
