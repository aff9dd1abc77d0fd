"""Survival by any grouping: groups from a gene, a clinical column or predicted risk; hazard
ratios, log-rank p and medians checked against lifelines called directly; landmark filtering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import median_survival_times

from gexcore.errors import InputError
from gexcore.explore.holdout import RiskResult
from gexcore.explore.survival import (
    MIN_GROUP_SIZE,
    clinical_groups,
    compare_groups,
    gene_groups,
    grouping_columns,
    landmark,
    risk_groups,
    risk_label,
)

N = 240


@pytest.fixture(scope="module")
def cohort() -> AnnData:
    """240 patients; GENE_B raises the hazard, stage I < II < III, rare levels 'IV' (4
    patients) and 'IVB' (3), a few missing stages and gene values, 20 rows without survival."""
    rng = np.random.default_rng(7)
    driver = rng.normal(6.0, 1.0, N)
    stage = rng.choice(["I", "II", "III"], N, p=[0.4, 0.35, 0.25]).astype(object)
    stage[:4] = "IV"
    stage[4:10] = None
    stage[200:203] = "IVB"
    hazard = np.exp(0.8 * (driver - 6) + np.select([stage == "II", stage == "III"], [0.5, 1.0]))
    time = rng.exponential(30 / hazard)
    censor = rng.uniform(10, 120, N)
    obs = pd.DataFrame({"time": np.minimum(time, censor), "event": (time <= censor).astype(float),
                        "stage": stage, "age": rng.integers(30, 85, N).astype(float)},
                       index=[f"P{i:03d}" for i in range(N)])
    obs.loc[obs.index[-20:], "time"] = np.nan                       # no survival
    X = np.column_stack([rng.normal(5, 1, N), driver, rng.normal(0, 1, N)]).astype(np.float32)
    X[10:15, 1] = np.nan                                            # unmeasured
    return AnnData(X, obs=obs, var=pd.DataFrame(index=["GENE_A", "GENE_B", "GENE_C"]))


def _direct_hazard_ratios(time, event, labels, reference) -> pd.DataFrame:
    """lifelines called directly: Cox on indicators of every level but the reference."""
    levels = [lv for lv in pd.unique(labels) if lv != reference]
    frame = pd.DataFrame({f"is_{lv}": (labels == lv).astype(float) for lv in levels})
    frame["time"], frame["event"] = time, event
    summary = CoxPHFitter().fit(frame, "time", "event").summary
    return summary.rename(index=lambda name: name.removeprefix("is_"))


def test_hazard_ratios_and_logrank_match_lifelines_for_a_chosen_reference(cohort):
    groups = clinical_groups(cohort.obs, "stage")
    result = compare_groups(groups, reference="II")
    labels = np.asarray(groups.names, dtype=object)[groups.group]
    direct = _direct_hazard_ratios(groups.time, groups.event, labels, "II")
    table = result.table
    assert result.reference == "II" and table.loc["II", "hr"] == 1.0
    for level in ("I", "III"):
        assert table.loc[level, "hr"] == pytest.approx(direct.loc[level, "exp(coef)"], rel=1e-6)
        assert table.loc[level, "hr_lower"] == pytest.approx(
            direct.loc[level, "exp(coef) lower 95%"], rel=1e-6)
        assert table.loc[level, "hr_upper"] == pytest.approx(
            direct.loc[level, "exp(coef) upper 95%"], rel=1e-6)
        assert table.loc[level, "p"] == pytest.approx(direct.loc[level, "p"], rel=1e-6)
    assert table.loc["III", "hr"] > 1.2 and table.loc["I", "hr"] < 1      # planted: e^0.5, e^-0.5
    logrank = multivariate_logrank_test(groups.time, labels, groups.event)
    assert result.logrank_p == pytest.approx(logrank.p_value, rel=1e-9)
    # the curves stay in display order (colours stay put) whatever the reference
    assert [g.name for g in result.km.groups] == groups.names


def test_medians_and_their_confidence_intervals_match_lifelines(cohort):
    groups = gene_groups(cohort, "GENE_B", scheme="tertiles")
    result = compare_groups(groups)
    for k, name in enumerate(groups.names):
        in_group = groups.group == k
        kmf = KaplanMeierFitter().fit(groups.time[in_group], groups.event[in_group])
        ci = median_survival_times(kmf.confidence_interval_)
        row = result.table.loc[name]
        assert row["median"] == pytest.approx(kmf.median_survival_time_)
        assert row["median_lower"] == pytest.approx(ci.iloc[0, 0])
        assert row["median_upper"] == pytest.approx(ci.iloc[0, 1])
        assert row["n"] == in_group.sum() and row["events"] == groups.event[in_group].sum()
    medians = result.table["median"].to_numpy()
    assert medians[0] > medians[-1]                      # high GENE_B: shorter survival


def test_gene_cuts_give_the_expected_group_sizes(cohort):
    n = 220 - 5                                          # with survival, GENE_B measured
    median = gene_groups(cohort, "GENE_B")
    assert median.names == ["low", "high"] and len(median.ids) == n
    assert np.bincount(median.group).tolist() == [108, 107]
    assert "5 patient(s) with survival but no value" in median.note
    quartiles = gene_groups(cohort, "gene_b", scheme="quartiles")      # case-insensitive
    assert np.bincount(quartiles.group).tolist() == [54, 54, 53, 54]
    assert quartiles.title == "GENE_B expression"
    values = np.asarray(cohort[median.ids, "GENE_B"].X).ravel()
    custom = gene_groups(cohort, "GENE_B", scheme="custom", cuts=(6.5, 5.0))
    assert np.bincount(custom.group).tolist() == [
        int((values <= 5.0).sum()), int(((values > 5.0) & (values <= 6.5)).sum()),
        int((values > 6.5).sum())]
    assert custom.names == ["<= 5", "> 5 and <= 6.5", "> 6.5"]
    with pytest.raises(InputError, match="GENE_Z"):
        gene_groups(cohort, "GENE_Z")
    with pytest.raises(InputError, match="cut value"):
        gene_groups(cohort, "GENE_B", scheme="custom", cuts=())


def test_a_gene_is_found_by_id_or_symbol_and_titled_by_its_symbol(cohort):
    named = cohort.copy()
    named.var["gene_symbol"] = ["TP53", "MYC", "EGFR"]
    by_symbol, by_id = gene_groups(named, "myc"), gene_groups(named, "GENE_B")
    assert by_symbol.title == by_id.title == "MYC expression"
    assert np.array_equal(by_symbol.group, by_id.group) and len(by_id.ids) == 215


def test_a_patient_with_two_samples_counts_once_by_the_tumour(cohort):
    twice = cohort.copy()
    twice.obs["patient_id"] = [f"pt{i}" for i in range(N)]
    twice.obs["sample_type"] = "tumour"
    twice.obs.loc[["P020", "P021"], "patient_id"] = "pt_shared"        # both with survival
    twice.obs.loc["P020", "sample_type"] = "Solid Tissue Normal"
    for groups in (gene_groups(twice, "GENE_B"), clinical_groups(twice.obs, "stage")):
        assert "P020" not in groups.ids and "P021" in groups.ids
        assert "1 further sample(s) of the same patients left out" in groups.note
    assert len(gene_groups(twice, "GENE_B").ids) == 215 - 1


def test_rare_levels_are_pooled_and_missing_left_out(cohort):
    groups = clinical_groups(cohort.obs, "stage", min_level=5)
    assert groups.names[-1] == "other (2 levels)" and len(groups.names) == 4
    assert "pooled as 'other (2 levels)': IV, IVB" in groups.note
    counts = cohort.obs["stage"].value_counts()
    assert groups.names[:3] == list(counts.index[:3])                   # largest first
    assert np.bincount(groups.group)[-1] == 7
    assert len(groups.ids) == 220 - 6                    # 6 missing stages left out
    assert "6 patient(s) with survival but no value in stage" in groups.note
    capped = clinical_groups(cohort.obs, "stage", min_level=2, max_levels=3)
    assert capped.names == [*counts.index[:2], "other (3 levels)"]      # 3 groups at most
    # one rare level stays itself; the comparison warns that it is small
    obs = cohort.obs.assign(stage=cohort.obs["stage"].replace("IVB", "III"))
    kept = compare_groups(clinical_groups(obs, "stage", min_level=5))
    assert kept.small_groups == ["IV"] and MIN_GROUP_SIZE == 10
    assert kept.table.loc["IV", "n"] == 4


def test_a_numeric_column_is_cut_like_a_gene(cohort):
    groups = clinical_groups(cohort.obs, "age", scheme="median")
    assert groups.names == ["low", "high"] and groups.ranges[0].startswith("<= ")
    assert grouping_columns(cohort.obs, exclude=("time", "event")) == ["stage", "age"]


def test_landmark_keeps_patients_at_risk_and_shifts_time(cohort):
    groups = gene_groups(cohort, "GENE_B")
    t0 = 20.0
    later = landmark(groups, t0)
    assert len(later.ids) == int((groups.time > t0).sum()) and (later.time > 0).all()
    assert np.allclose(later.time + t0, groups.time[groups.time > t0])
    result = compare_groups(groups, landmark_time=t0)
    assert result.n_excluded == int((groups.time <= t0).sum()) and result.landmark == t0
    assert result.km.at_risk["low"][0] == int((later.group == 0).sum())
    labels = np.where(later.group == 0, "low", "high")
    direct = _direct_hazard_ratios(later.time, later.event, labels, "low")
    assert result.table.loc["high", "hr"] == pytest.approx(direct.loc["high", "exp(coef)"])
    with pytest.raises(InputError, match="still at risk"):
        landmark(groups, 1e6)


def test_risk_groups_are_cut_on_training_risks_and_named_low_and_high_risk():
    rng = np.random.default_rng(0)
    test = pd.DataFrame({"time": rng.uniform(1, 50, 60), "event": rng.integers(0, 2, 60),
                         "risk": np.linspace(-1, 3, 60)}, index=[f"T{i}" for i in range(60)])
    train = np.linspace(-1, 1, 41)                       # training median 0: 15 test rows below
    result = RiskResult(train, test, 0.7, 0.7, "patient_id", 1.0)
    groups = risk_groups(result)
    assert groups.names == ["low risk", "high risk"]
    assert np.bincount(groups.group).tolist() == [int((test["risk"] <= 0).sum()), 45]
    assert "training risks (50% -> 0)" in groups.note
    assert risk_groups(result, "quartiles").names[::3] == ["Q1 (low risk)", "Q4 (high risk)"]
    assert risk_label("intermediate") == "intermediate risk"


def test_display_table_reads_as_a_clinician_expects(cohort):
    shown = compare_groups(clinical_groups(cohort.obs, "stage"), reference="I").display_table()
    assert shown.loc["I", "HR (95% CI)"] == "1 (reference)" and shown.loc["I", "p"] == ""
    hr = shown.loc["III", "HR (95% CI)"]
    assert hr.count("(") == 1 and "-" in hr and float(hr.split()[0]) > 1.5
    assert shown.loc["III", "p"] == "< 0.001"            # never 1.8e-30
    assert list(shown.columns) == ["patients", "events", "median survival (95% CI)",
                                   "HR (95% CI)", "p"]                 # levels: no ranges
    cut = compare_groups(gene_groups(cohort, "GENE_B")).display_table()
    assert cut.columns[0] == "values" and cut["values"].iloc[0].startswith("<= ")
    assert cut["median survival (95% CI)"].str.fullmatch(r"[\d.]+ \([\d.]+-([\d.]+|NR)\)").all()
