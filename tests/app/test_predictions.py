"""AppTest of the Predictions page on the demo: held-out probabilities, confusion matrix and
metrics with no clicks; other features, labels and samples; an evaluation job end to end."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from streamlit.testing.v1 import AppTest

from gexcore.explore.features import EXPRESSION
from gexcore.workspace import open_workspace
from tests.app.conftest import keyed, run_page

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGE = "pages/predictions.py"


@pytest.fixture(scope="module")
def workspace_dir(shared_workspace_dir):
    """One workspace for the module: the demo is added once and fitted probes are cached."""
    return shared_workspace_dir


@pytest.fixture
def page(workspace_dir) -> AppTest:
    return run_page(PAGE)


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def percent(value: str) -> float:
    return float(value.rstrip("%")) / 100


def chart(at: AppTest, key: str) -> go.Figure:
    (found,) = [c for c in at.get("plotly_chart") if key in c.proto.id]
    return pio.from_json(found.proto.spec)


def values(data) -> np.ndarray:
    """A plotly array from a chart spec: a list, or base64 `bdata` (plotly >= 6)."""
    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
    return np.asarray(data)


def test_demo_predicts_held_out_cancer_types_without_clicks(page):
    assert page.title[0].value == "Predictions"
    assert any("Simulated data" in w.value for w in page.warning)
    m = metrics(page)
    accuracy, chance = percent(m["Accuracy"]), percent(m["Chance (majority class)"])
    assert accuracy > 0.75 and chance < 0.2, m           # 12 types; the demo encoder's embedding
    assert float(m["Macro-F1"]) > 0.7
    assert keyed(page, "selectbox", "pred_label_").value == "cancer_type"
    assert "shipped demo model" in keyed(page, "selectbox", "pred_source_").format_func(
        keyed(page, "selectbox", "pred_source_").value)
    confusion = chart(page, "pred_confusion").data[0]
    assert len(confusion.x) == 12 and confusion.type == "heatmap"
    total = sum(sum(int(str(t).split("<br>")[0].replace(",", "")) for t in row)
                for row in confusion.text)
    assert 800 < total < 1000                           # ~30% of 3,000 samples held out
    bars = chart(page, "pred_bars").data[0]
    assert len(bars.y) == 12 and abs(values(bars.x).sum() - 1) < 1e-6
    table = page.dataframe[0].value
    assert len(table) == total and {"true", "predicted", "confidence"} <= set(table.columns)
    assert any("held-out" in c.value and "patient_id" in c.value for c in page.caption)
    # the shipped evaluation report: SSL curves beside the baselines, with no clicks
    names = {t.name for t in chart(page, "report_curves_").data} - {None}
    assert {"transformer (fine-tuned)", "raw-feature linear (baseline)"} <= names


def test_other_sample_label_and_expression_features(page):
    sample = page.selectbox(key="pred_sample")
    second = sample.options[1].split(" · ")[0]       # options are the formatted labels
    sample.set_value(second)
    run(page)
    assert chart(page, "pred_bars").layout.title.text.startswith(second)
    keyed(page, "selectbox", "pred_label_").set_value("label")        # types + Normal
    run(page)
    assert len(chart(page, "pred_confusion").data[0].x) == 13
    keyed(page, "selectbox", "pred_source_").set_value(EXPRESSION)
    run(page)
    assert percent(metrics(page)["Accuracy"]) > 0.9
    assert any("normaliser fitted on the training samples only" in c.value
               for c in page.caption)


def test_evaluation_form_starts_a_job_and_its_report_shows(page, workspace_dir):
    page.multiselect(key="evaluate_methods").set_value([])           # baselines only: fast
    page.multiselect(key="evaluate_fractions").set_value([0.2, 1.0])
    page.number_input(key="evaluate_seeds").set_value(1)
    page.checkbox(key="evaluate_finetune").uncheck()
    (start,) = [b for b in page.button if b.label == "Start evaluation"]
    start.click()
    run(page)
    assert any("Started" in s.value for s in page.success)
    ws = open_workspace(workspace_dir, "default")
    (job,) = [r for r in ws.runs(kind="evaluate") if not r.params.get("demo")]
    deadline = time.monotonic() + 300
    while (job := ws.run(job.id)).active:
        assert time.monotonic() < deadline, ws.read_log(job.id)
        time.sleep(1)
    assert job.status == "done", (job.error, ws.read_log(job.id)[-2000:])
    run(page)
    curves = chart(page, "report_curves_")
    names = {t.name for t in curves.data} - {None}
    assert {"PCA + linear (baseline)", "raw-feature linear (baseline)"} <= names
    assert any("# Classification evaluation" in md.value for md in page.markdown)
    assert chart(page, "report_confusion_").data[0].type == "heatmap"
    assert {"results.json", "predictions.csv", "report.md"} <= {
        b.proto.label for b in page.get("download_button")}


def test_evaluation_form_queues_whole_gene_imputation(page, workspace_dir):
    from gexcore.workspace import cancel

    page.selectbox(key="evaluate_task").set_value("imputation_genes")
    page.multiselect(key="evaluate_methods").set_value(["vime"])
    page.number_input(key="evaluate_seeds").set_value(1)
    (start,) = [b for b in page.button if b.label == "Start evaluation"]
    start.click()
    run(page)
    ws = open_workspace(workspace_dir, "default")
    job = ws.runs(kind="evaluate")[0]
    assert (job.params["task"], job.params["missing"]) == ("imputation", "genes")
    assert job.name.startswith("evaluate imputation of whole genes on ")
    cancel(ws, job.id)                       # the module's later tests need the job slot
    deadline = time.monotonic() + 120
    while ws.run(job.id).active:
        assert time.monotonic() < deadline, ws.read_log(job.id)
        time.sleep(0.5)


def test_real_cohort_without_an_encoder(workspace_dir):
    """The real tissue data (189 samples, 7 tissues): expression features, its own label."""
    from gexcore.data.demo import load_demo

    ws = open_workspace(workspace_dir, "default")
    cohort_id = ws.add_cohort(load_demo("tissue"), "Tissues")
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["cohort_id"] = cohort_id
    at.switch_page(PAGE)
    run(at)
    assert not any("Simulated data" in w.value for w in at.warning)
    assert keyed(at, "selectbox", "pred_source_").value == EXPRESSION
    assert keyed(at, "selectbox", "pred_label_").value == "tissue"
    assert percent(metrics(at)["Accuracy"]) > 0.9
    assert len(chart(at, "pred_confusion").data[0].x) == 7
