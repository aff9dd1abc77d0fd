"""AppTest of the Survival page on the demo: KM curves of held-out risk groups with no clicks,
then scheme, custom cuts, one cancer type and expression features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gexcore.explore.features import EXPRESSION
from tests.app.conftest import keyed, run_page

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGE = "pages/survival.py"


@pytest.fixture(scope="module")
def workspace_dir(shared_workspace_dir):
    """One workspace for the module: the demo is added once and fitted models are cached."""
    return shared_workspace_dir


@pytest.fixture
def page(workspace_dir) -> AppTest:
    return run_page(PAGE)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def km_groups(at: AppTest) -> list[str]:
    """Legend names of the KM curves, e.g. 'low (n=420, 160 events)'."""
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
    assert float(m["HR high vs low"]) > 1.5
    (hr,) = [x for x in page.metric if x.label == "HR high vs low"]
    assert hr.delta.startswith("95% CI ")
    groups = km_groups(page)
    assert [g.split(" (n=")[0] for g in groups] == ["low", "high"]
    assert any("months" in c.value for c in page.caption)
    assert any("training risks" in c.value for c in page.caption)
    # the held-out groups mix cancer types: the page says so and offers a filter
    assert any("Baseline survival differs by type" in w.value for w in page.warning)


def test_quartiles_and_custom_cuts_change_the_groups(page):
    page.radio(key="surv_scheme").set_value("quartiles")
    groups = km_groups(run(page))
    assert [g.split(" (n=")[0] for g in groups] == ["Q1 (low)", "Q2", "Q3", "Q4 (high)"]
    assert "HR Q4 (high) vs Q1 (low)" in metrics(page)
    page.radio(key="surv_scheme").set_value("custom")
    run(page)
    page.multiselect(key="surv_cuts").set_value([0.2, 0.5, 0.8])
    groups = km_groups(run(page))
    assert [g.split(" (n=")[0] for g in groups] == ["G1 (low)", "G2", "G3", "G4 (high)"]
    assert any("20% ->" in c.value and "80% ->" in c.value for c in page.caption)


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
