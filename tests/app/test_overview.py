"""AppTest of the Overview landing page: the demo at a glance without a click (map, survival by
predicted risk, marker genes, evaluation headline with its baseline), and a bare cohort."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gexcore.data import load_demo
from gexcore.explore.planted import planted_genes
from gexcore.data.demo import assets_dir
from tests.app.conftest import unescaped

PAGE = "views/overview.py"


@pytest.fixture(scope="module")
def workspace_dir(shared_workspace_dir):
    return shared_workspace_dir


def test_the_app_opens_on_the_overview_of_the_demo_with_its_four_panels(open_page):
    at = open_page()                                          # the app's default page
    assert at.title[0].value == "Overview"
    assert [m.value for m in at.markdown if m.value.startswith("**")][:4] == [
        "**Map**", "**Survival by predicted risk**", "**Marker genes of each cancer\\_type**",
        "**Evaluation**"]
    charts = [c.proto.id for c in at.get("plotly_chart")]
    assert any("overview_map" in c for c in charts) and any("overview_km" in c for c in charts)
    survival = next(unescaped(c.value) for c in at.caption if c.value.startswith("Held-out"))
    assert "p < 0.001 (log-rank)" in survival and "high risk vs low risk" in survival
    links = {p.proto.page for p in at.get("page_link")}
    assert {"embeddings", "survival", "importance", "predictions"} <= links, links


def test_marker_genes_of_each_type_are_its_planted_module(open_page):
    at = open_page()
    markers = at.dataframe[0].value
    adata = load_demo("simulated_pancancer")
    assert len(markers) == adata.obs["cancer_type"].nunique()
    for row in markers.itertuples():
        top = row._3.split(", ")
        assert np.isin(top, planted_genes(adata, row.cancer_type)).sum() == len(top) == 3, row


def test_the_evaluation_headline_is_the_shipped_reports_best_model_beside_its_baseline(
        open_page):
    at = open_page()
    results = json.loads((assets_dir() / "reports" / "simulated_pancancer_classification" / "results.json").read_text())
    rows = [r for r in results["summary"]["macro_f1"] if r["fraction"] == 0.01]
    best = max((r for r in rows if r["regime"] != "baseline"), key=lambda r: r["mean"])
    base = max((r for r in rows if r["regime"] == "baseline"), key=lambda r: r["mean"])
    metric = at.metric[0]
    assert metric.label == f"1% of labels: {best['model']} ({best['regime']})"
    assert metric.value == f"{best['mean']:.3f} ± {best['sd']:.3f}"
    assert f"{base['model']} {base['mean']:.3f}" in unescaped(
        next(c.value for c in at.caption if "strongest baseline" in c.value))


def test_a_cohort_with_no_runs_labels_or_survival_says_what_to_do(open_page, tiny_cohort,
                                                                  workspace_dir):
    from gexcore.workspace import open_workspace

    bare = tiny_cohort[:, :20].copy()
    bare.obs = bare.obs[["age"]]                              # a number, no classes
    cohort_id = open_workspace(workspace_dir, "default").add_cohort(bare, "bare panel")
    at = open_page(PAGE, cohort_id=cohort_id)
    infos = " ".join(i.value for i in at.info)
    assert "no survival columns" in infos and "no label column" in infos
    assert "No evaluation of this cohort yet" in infos
    assert any("overview_map" in c.proto.id for c in at.get("plotly_chart"))
