"""AppTest of the Survival page on the demo: KM curves of held-out risk groups with no clicks,
then scheme, custom cuts, one cancer type and expression features; groups from a gene or a
clinical column with hazard ratios and CIs, a chosen reference, a landmark time, p-values as
clinicians read them, escaped user strings and the message for a cohort without survival."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gexcore.explore.features import EXPRESSION
from tests.app.conftest import keyed, run_page, unescaped

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGE = "views/survival.py"


@pytest.fixture(scope="module")
def workspace_dir(shared_workspace_dir):
    """One workspace for the module: the demo is added once and fitted models are cached."""
    return shared_workspace_dir


@pytest.fixture
def page(workspace_dir) -> AppTest:
    return run_page(PAGE)


def metrics(at: AppTest) -> dict[str, str]:
    """Metric label (as the browser shows it) -> value."""
    return {unescaped(m.label): m.value for m in at.metric}


def km_groups(at: AppTest) -> list[str]:
    """Legend names of the KM curves, e.g. 'low risk (n=420, 160 events)'."""
    (chart,) = [c for c in at.get("plotly_chart") if "surv_km" in c.proto.id]
    spec = json.loads(chart.proto.spec)
    return [t["name"] for t in spec["data"] if "(n=" in str(t.get("name", ""))]


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def test_demo_shows_km_curves_and_numbers_without_clicks(page):
    assert page.title[0].value == "Survival"
    assert any("Simulated data" in w.value for w in page.warning)
    m = metrics(page)
    assert 0.6 < float(m["C-index (Harrell)"]) < 0.9, m
    assert 0.55 < float(m["C-index (Uno)"]) < 0.9, m
    assert m["Log-rank p"] == "< 0.001", m
    assert float(m["HR high risk vs low risk"]) > 1.5
    (hr,) = [x for x in page.metric if x.label == "HR high risk vs low risk"]
    assert hr.delta.startswith("95% CI ")
    groups = km_groups(page)
    assert [g.split(" (n=")[0] for g in groups] == ["low risk", "high risk"]
    assert any("months" in c.value for c in page.caption)
    assert any("training risks" in c.value for c in page.caption)
    # the held-out groups mix cancer types: the page says so and offers a filter
    assert any("Baseline survival differs by type" in w.value for w in page.warning)


def test_quartiles_and_custom_cuts_change_the_groups(page):
    page.radio(key="surv_scheme").set_value("quartiles")
    groups = km_groups(run(page))
    assert [g.split(" (n=")[0] for g in groups] == ["Q1 (low risk)", "Q2", "Q3", "Q4 (high risk)"]
    assert "HR Q4 (high risk) vs Q1 (low risk)" in metrics(page)
    page.radio(key="surv_scheme").set_value("custom")
    run(page)
    page.multiselect(key="surv_cuts").set_value([0.2, 0.5, 0.8])
    groups = km_groups(run(page))
    assert [g.split(" (n=")[0] for g in groups] == ["G1 (low risk)", "G2", "G3", "G4 (high risk)"]
    assert any("20% ->" in unescaped(c.value) and "80% ->" in unescaped(c.value)
               for c in page.caption)


def test_one_cancer_type_refits_within_the_type(page):
    before = sum(int(g.split("n=")[1].split(",")[0]) for g in km_groups(page))
    keyed(page, "selectbox", "surv_type_").set_value("BRCA")
    run(page)
    chart = json.loads(next(c for c in page.get("plotly_chart")
                        if "surv_km" in c.proto.id).proto.spec)
    assert "BRCA only" in chart["layout"]["title"]["text"]
    after = sum(int(g.split("n=")[1].split(",")[0]) for g in km_groups(page))
    assert 10 < after < before / 4
    assert "Log-rank p" in metrics(page)


def test_expression_features(page):
    keyed(page, "selectbox", "surv_source_").set_value(EXPRESSION)
    run(page)
    assert float(metrics(page)["C-index (Harrell)"]) > 0.6
    assert len(km_groups(page)) == 2


def test_real_cohort_with_its_own_endpoint_columns(workspace_dir):
    """GSE7390 (198 real breast tumours, no encoder): expression features, days, no type mix."""
    from gexcore.data.demo import load_demo
    from gexcore.workspace import open_workspace

    ws = open_workspace(workspace_dir, "default")
    cohort_id = ws.add_cohort(load_demo("gse7390"), "GSE7390")
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["cohort_id"] = cohort_id
    at.switch_page(PAGE)
    run(at)
    assert not any("Simulated data" in w.value for w in at.warning)
    assert keyed(at, "selectbox", "surv_source_").value == EXPRESSION     # no encoder yet
    assert any("Time unit: **days**" in c.value for c in at.caption)
    assert len(km_groups(at)) == 2 and "Log-rank p" in metrics(at)
    assert 0.4 < float(metrics(at)["C-index (Harrell)"]) < 0.9
    keyed(at, "selectbox", "surv_time_").set_value("tdm_days")
    keyed(at, "selectbox", "surv_event_").set_value("tdm_event")
    run(at)
    assert any("Time unit: **days**" in c.value for c in at.caption)
    assert sum(int(g.split("n=")[1].split(",")[0]) for g in km_groups(at)) < 100


def test_page_shows_the_c_indices_the_evaluation_report_computes(page, workspace_dir):
    """Regression: the page computed Uno's C without the protocol's truncation at the 80th
    percentile of training follow-up, so page and report disagreed for one model and split."""
    import numpy as np

    from gexcore.evaluate.tasks import SurvivalTask
    from gexcore.explore.features import feature_sources, resolve_features
    from gexcore.explore.holdout import holdout_risk
    from gexcore.workspace import open_workspace
    from gexcore.workspace.demo import ensure_demo

    ws = open_workspace(workspace_dir, "default")
    cohort_id, _ = ensure_demo(ws)
    source = keyed(page, "selectbox", "surv_source_").value
    assert source == next(iter(feature_sources(ws, cohort_id)))   # the page's default source
    adata, features = ws.load_cohort(cohort_id), resolve_features(ws, cohort_id, source)
    result = holdout_risk(adata, features, seed=0)
    task = SurvivalTask("time", "event")                # the evaluation's scorer and head
    fit = task.labelled(adata)                          # the rows the evaluation fits on
    F = np.asarray(features, dtype=np.float64)[adata.obs_names.get_indexer(fit.obs_names)]
    test = fit.obs_names.isin(result.test.index)
    model = task.fit_linear(F, fit, np.flatnonzero(~test))
    scores, _ = task.score(model, F[test], fit[~test], fit[test])
    shown = metrics(page)
    assert shown["C-index (Harrell)"] == f"{scores['c_harrell']:.3f}"
    assert shown["C-index (Uno)"] == f"{scores['c_uno']:.3f}"


# ------------------------------------------------------------- groups from a gene or a column

PROGNOSTIC = "SIMG00013"            # a planted prognostic module gene (beta < 0: protective)


def group_table(at: AppTest):
    """The per-group table (index: group names)."""
    (table,) = [d.value for d in at.dataframe if "HR (95% CI)" in d.value.columns]
    return table


def test_km_by_a_gene_shows_hazard_ratio_with_ci(open_page, workspace_dir):
    at = open_page(PAGE, surv_by="gene")
    assert any("Pick a gene" in i.value for i in at.info) and not at.error
    keyed(at, "selectbox", "surv_gene_").set_value(PROGNOSTIC)
    run(at)
    hr = float(metrics(at)["HR high vs low"])
    (shown,) = [m for m in at.metric if m.label == "HR high vs low"]
    lower, upper = map(float, shown.delta.removeprefix("95% CI ").split("-"))
    assert lower < hr < upper < 1                         # high expression: longer survival
    assert [g.split(" (n=")[0] for g in km_groups(at)] == ["low", "high"]
    table = group_table(at)
    assert list(table.index) == ["low", "high"]
    assert table.loc["low", "HR (95% CI)"] == "1 (reference)"
    assert table.loc["high", "HR (95% CI)"] == f"{hr:.2f} ({lower:.2f}-{upper:.2f})"
    assert table.loc["high", "p"] == "< 0.001" and metrics(at)["Log-rank p"] == "< 0.001"
    assert table["patients"].sum() == 2787                # demo: 2,820 with survival, 33 NaN
    assert "median survival (95% CI)" in table.columns
    # quartiles against the top quartile as reference
    at.radio(key="surv_value_scheme").set_value("quartiles")
    run(at)
    keyed(at, "selectbox", "surv_ref_").set_value("Q4 (high)")
    run(at)
    table = group_table(at)
    assert table.loc["Q4 (high)", "HR (95% CI)"] == "1 (reference)"
    assert float(table.loc["Q1 (low)", "HR (95% CI)"].split()[0]) > 2
    assert not any(m.label.startswith("HR ") for m in at.metric)     # 3 HRs: the table has them


def test_grouping_by_a_clinical_column_with_reference_and_landmark(open_page, workspace_dir):
    at = open_page(PAGE, surv_by="clinical")
    assert keyed(at, "selectbox", "surv_column_").value == "cancer_type"
    table = group_table(at)
    assert len(table) == 12 and table["HR (95% CI)"].iloc[0] == "1 (reference)"
    keyed(at, "selectbox", "surv_ref_").set_value("BRCA")
    run(at)
    table = group_table(at)
    assert table.loc["BRCA", "HR (95% CI)"] == "1 (reference)"
    assert table.loc["OV", "p"] == "< 0.001"
    before = table["patients"].sum()
    at.number_input(key="surv_landmark").set_value(24.0)
    run(at)
    assert any("Landmark at 24 months" in unescaped(c.value) for c in at.caption)
    assert group_table(at)["patients"].sum() < before
    chart = json.loads(next(c for c in at.get("plotly_chart")
                            if "surv_km" in c.proto.id).proto.spec)
    assert chart["layout"]["xaxis2"]["title"]["text"] == "months since the landmark"
    # a numeric column is cut like a gene
    keyed(at, "selectbox", "surv_column_").set_value("age")
    run(at)
    assert list(group_table(at).index) == ["low", "high"]


def test_p_values_read_as_clinicians_read_them(open_page, workspace_dir):
    """Regression: the log-rank p showed as '1.8e-30'."""
    at = open_page(PAGE, surv_by="clinical")
    shown = [m.value for m in at.metric] + [m.value for m in at.markdown]
    shown += list(group_table(at)["p"])
    assert not [v for v in shown if "e-" in v], shown
    assert any("log-rank test across 12 groups: p < 0.001" in m.value for m in at.markdown)
    chart = json.loads(next(c for c in at.get("plotly_chart")
                            if "surv_km" in c.proto.id).proto.spec)
    stats = " ".join(a["text"] for a in chart["layout"]["annotations"])
    assert "log-rank p < 0.001" in stats and "e-" not in stats


def test_user_strings_are_escaped_and_small_groups_warned(open_page, ws, tiny_cohort):
    tiny_cohort.obs["**grade**"] = (["[x](http://h/y.png)"] * 6 + ["b"] * 54)
    cohort_id = ws.add_cohort(tiny_cohort, "tiny")
    at = open_page(PAGE, cohort_id=cohort_id, surv_by="clinical")
    keyed(at, "selectbox", "surv_column_").set_value("**grade**")
    run(at)
    assert list(group_table(at).index)[-1] == "[x](http://h/y.png)"
    (small,) = [w.value for w in at.warning if "Fewer than 10 patients" in w.value]
    assert "\\[x\\]\\(http" in small                      # escaped: no link, no fetch
    assert any("Grouped by \\*\\*grade\\*\\*" in c.value for c in at.caption)


def test_a_cohort_without_survival_says_how_to_add_it(open_page, ws, tiny_cohort):
    """Regression: the page said "map them on the Data page", which only re-uploading allows."""
    tiny_cohort.obs = tiny_cohort.obs.drop(columns=["time", "event"])
    cohort_id = ws.add_cohort(tiny_cohort, "no survival")
    at = open_page(PAGE, cohort_id=cohort_id)
    (message,) = [i.value for i in at.info]
    assert "upload the expression and clinical files again" in message
    assert "map them on the Data page" not in message
