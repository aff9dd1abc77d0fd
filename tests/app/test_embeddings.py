"""Embeddings page: stored maps (never recomputed on a rerun), colouring, embed jobs, selection."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import numpy as np
import pytest

from gexcore.data.simulate import SimulationConfig, simulate_cohort
from gexcore.explore import maps
from gexcore.explore.features import EXPRESSION
from gexcore.tasks.projection import ProjectionParams
from gexcore.train.config import TrainConfig
from gexcore.workspace import PretrainJob, submit
from gexcore.workspace.store import map_name
from tests.app.conftest import wait_for_run
from ui.common import selected_rows

EMBED = "pages/embeddings.py"


def _traces(at) -> list[dict]:
    """The map's traces, with typed arrays (plotly's base64 `bdata`) decoded."""
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    data = json.loads(charts[0].proto.spec)["data"]
    for trace in data:
        for name in ("x", "y", "customdata"):
            if isinstance(trace.get(name), dict):
                raw = base64.b64decode(trace[name]["bdata"])
                trace[name] = np.frombuffer(raw, dtype=trace[name]["dtype"])
    return data


def _source(at):
    return next(s for s in at.selectbox if s.label == "Map of")


def _n_points(at) -> int:
    return sum(len(t["x"]) for t in _traces(at))


@pytest.fixture
def no_projection(monkeypatch):
    """Make any new map computation fail: what is drawn must come from the store."""
    def refuse(*args, **kwargs):
        raise AssertionError("the map was recomputed instead of loaded from the workspace")

    monkeypatch.setattr(maps, "project", refuse)


def test_demo_opens_on_its_stored_umap(open_page, no_projection):
    at = open_page(EMBED)
    source = _source(at)
    assert source.format_func(source.value) == "vime (shipped demo model)"   # newest first
    assert any("Simulated data" in w.value for w in at.warning)
    traces = _traces(at)
    assert sum(len(t["x"]) for t in traces) == 3_000
    assert len(traces) == 13                                    # 12 cancer types + Normal
    assert {t["type"] for t in traces} == {"scattergl"}


def test_pca_of_raw_expression_is_stored_and_reused(open_page, ws, tiny_id, monkeypatch):
    at = open_page(EMBED, cohort_id=tiny_id, emb_method="PCA")
    assert _source(at).value == EXPRESSION     # no encoder yet
    assert _n_points(at) == 60
    stored = ws.load_array(f"cohort-{tiny_id}", map_name(tiny_id, ProjectionParams("pca")))
    assert stored is not None and stored.shape == (60, 2)

    monkeypatch.setattr(maps, "project", lambda *a, **k: pytest.fail("recomputed"))
    at.radio(key="emb_colour_mode").set_value("Nothing").run()     # any rerun
    assert not at.exception, at.exception
    assert _n_points(at) == 60


def test_colour_by_clinical_column_and_gene(open_page, tiny_cohort, tiny_id):
    at = open_page(EMBED, cohort_id=tiny_id, emb_method="PCA")
    at.selectbox(key=f"emb_colour_column_{tiny_id}").set_value("cancer_type").run()
    names = {t["name"] for t in _traces(at)}
    assert names == set(tiny_cohort.obs["cancer_type"].astype(str))
    gene = tiny_cohort.var_names[3]
    at.radio(key="emb_colour_mode").set_value("Gene").run()
    at.selectbox(key=f"emb_gene_{tiny_id}").set_value(gene).run()
    assert not at.exception, at.exception
    trace = _traces(at)[0]
    assert trace["marker"]["showscale"] is True
    assert f"<br>{gene}: " in trace["text"][0]                  # hover shows the value
    assert [b.label for b in at.get("download_button")] == ["Map + clinical (CSV)",
                                                            "Figure (HTML)"]


def test_colour_by_out_of_fold_prediction_on_the_demo(open_page):
    """The shipped VIME embedding: each sample coloured by the type a probe fitted on the
    other folds gives it; the caption reports the agreement; the risk colour is a percentile."""
    at = open_page(EMBED)
    at.radio(key="emb_colour_mode").set_value("Prediction").run()
    (predict,) = [s for s in at.selectbox if str(s.key).startswith("emb_predict_")]
    predict.set_value("cancer_type").run()
    assert not at.exception, at.exception
    traces = _traces(at)
    assert sum(len(t["x"]) for t in traces) == 3_000
    types = {t["name"] for t in traces}
    assert len(types - {"missing"}) >= 10                         # predicted types
    caption = next(c.value for c in at.caption if c.value.startswith("Out-of-fold"))
    agree = int(caption.split("**")[1].rstrip("%"))
    assert agree >= 80, caption                                   # VIME separates the types
    (predict,) = [s for s in at.selectbox if str(s.key).startswith("emb_predict_")]
    predict.set_value("survival risk").run()
    assert not at.exception, at.exception
    trace = _traces(at)[0]
    assert trace["marker"]["showscale"] is True
    assert "risk percentile: " in trace["text"][0]


def test_umap_of_a_trained_encoder_and_the_embed_button(open_page, ws, tiny_id):
    run_id = submit(ws, PretrainJob(cohort=tiny_id, method="scarf", name="enc",
                                    train=TrainConfig(epochs=1)))
    assert wait_for_run(ws, run_id).status == "done"
    other = ws.add_cohort(simulate_cohort(SimulationConfig(
        n_samples=30, n_genes=40, n_cancer_types=3, n_shared_modules=2, module_size=8,
        n_batches=2, n_prognostic_modules=1, seed=1)), "tiny two")

    at = open_page(EMBED, cohort_id=tiny_id)
    assert _source(at).value == run_id   # newest encoder
    assert _n_points(at) == 60                                          # its UMAP

    at = open_page(EMBED, cohort_id=other, emb_method="PCA")     # PCA: quicker than UMAP
    assert _source(at).options == [
        "Expression (no encoder: top 50 PCs)"]
    assert at.selectbox(key=f"embed_run_{other}").value == run_id
    at.button[0].click().run()
    assert not at.exception, at.exception
    embed = ws.runs(kind="embed")[0]
    assert embed.params == {"cohort": other, "run": run_id, "name": ""}
    assert wait_for_run(ws, embed.id).status == "done"
    at.run()
    assert _source(at).value == run_id
    assert _n_points(at) == 30


def test_selected_points_map_back_to_rows():
    event = SimpleNamespace(selection={"points": [{"customdata": 7, "curve_number": 1},
                                                  {"customdata": [2], "curve_number": 0},
                                                  {"customdata": 7, "curve_number": 1}]})
    assert selected_rows(event) == [2, 7]
    assert selected_rows(None) == []
