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
from tests.app.conftest import keyed, run_page, unescaped

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGE = "views/predictions.py"


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


# -- score new patients (issue 14, item 5) and the report's curves -----------------------------

def _demo_part(rows: slice, *, shift: float = 0.0, rare: bool = False):
    """Rows of the demo cohort as a new cohort (new sample ids); `shift` adds to every value."""
    from gexcore.data.demo import load_demo

    part = load_demo("simulated_pancancer")[rows].copy()
    part.obs_names = [f"NEW-{i:03d}" for i in range(part.n_obs)]
    part.X = part.X + shift
    if rare:                                   # one sample of a class of its own
        types = part.obs["cancer_type"].astype(str).to_numpy()
        types[0] = "RARE"
        part.obs["cancer_type"] = types
    return part


def test_save_a_model_and_score_stored_cohorts(page, workspace_dir):
    ws = open_workspace(workspace_dir, "default")
    assert any(h.value == "Score new patients" for h in page.header)
    assert any("No saved model yet" in i.value for i in page.info)
    new_id = ws.add_cohort(_demo_part(slice(0, 60)), "new patients")
    shifted_id = ws.add_cohort(_demo_part(slice(60, 100), shift=4.0), "shifted")
    page.text_input(key="save_name").input("cancer type model")
    (save,) = [b for b in page.button if b.label == "Save model"]
    save.click()
    run(page)
    assert any("Saved model" in s.value for s in page.success)
    (model,) = [r for r in ws.runs(kind="predictor")]
    assert model.name == "cancer type model" and model.params["label"] == "cancer_type"
    assert page.selectbox(key="score_model").value == model.id
    page.selectbox(key="score_cohort").set_value(new_id)
    run(page)
    m = metrics(page)
    assert m["Samples scored"] == "60" and m["Flagged"] == "0"
    (table,) = [d.value for d in page.dataframe if "flag" in d.value.columns]
    truth = ws.load_cohort(new_id).obs["cancer_type"].astype(str).to_numpy()
    assert (table["predicted"].to_numpy() == truth).mean() > 0.9
    assert {f"p_{c}" for c in set(truth)} <= set(table.columns)
    assert any("Missing genes:" in c.value for c in page.caption)
    assert "Predictions (CSV)" in {b.proto.label for b in page.get("download_button")}
    page.selectbox(key="score_cohort").set_value(shifted_id)
    run(page)
    assert metrics(page)["Flagged"] == "40"
    assert any("40 of 40 samples lie outside what the model saw" in w.value
               for w in page.warning)
    # a Cox risk model: risk and a risk group cut at the training risks
    page.selectbox(key="save_target").set_value("__survival__")
    page.text_input(key="save_name").input("risk model")
    (save,) = [b for b in page.button if b.label == "Save model"]
    save.click()
    run(page)
    assert page.selectbox(key="score_model").value == ws.runs(kind="predictor")[0].id
    page.selectbox(key="score_cohort").set_value(new_id)
    run(page)
    (table,) = [d.value for d in page.dataframe if "flag" in d.value.columns]
    assert {"risk", "risk_group"} <= set(table.columns) and table["risk"].notna().all()
    assert table["risk_group"].nunique() == 2
    assert any(k.startswith("In the ") for k in metrics(page))


def test_a_one_sample_class_is_reported(open_page, workspace_dir):
    """Regression: a class with one sample was left out of the probe silently (128 -> 127)."""
    ws = open_workspace(workspace_dir, "default")
    cohort_id = ws.add_cohort(_demo_part(slice(0, 200), rare=True), "rare class")
    at = open_page(PAGE, cohort_id=cohort_id)
    assert any("1 sample of class RARE left out: a class needs at least 2 samples" in
               unescaped(i.value) for i in at.info)


def test_report_curves_are_distinct_and_the_legend_is_below(page):
    (report,) = [s for s in page.selectbox
                 if str(s.key).startswith("report_") and not str(s.key).startswith("report_cm")]
    shipped = next(o for o in report.options if "shipped with the demo" in o)
    report.set_value(shipped.rsplit("(", 1)[1].rstrip(")"))      # options show "name (id)"
    run(page)
    fig = chart(page, "report_curves_")
    lines = [t for t in fig.data if t.fill != "toself"]
    styles = {(t.line.color, t.line.dash) for t in lines}
    assert len(lines) >= 11 and len(styles) == len(lines)       # no two curves look alike
    assert all(t.line.dash == "dash" for t in lines if t.name.endswith("(baseline)"))
    assert all(t.line.dash != "dash" for t in lines if not t.name.endswith("(baseline)"))
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0
