"""AppTest of the Gene importance page on the demo: attention and integrated gradients with no
clicks; per class the planted module genes must rank at the top; stored attention; samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import gexcore.explain
from gexcore.explore.features import EXPRESSION
from gexcore.explore.planted import planted_genes
from gexcore.workspace import open_workspace
from tests.app.conftest import keyed

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGE = "views/importance.py"


@pytest.fixture(scope="module")
def workspace_dir(shared_workspace_dir):
    """One workspace for the module: the demo is added once, attention is stored once."""
    return shared_workspace_dir


@pytest.fixture(scope="module")
def demo(workspace_dir):
    """(workspace, demo cohort id, demo run id, the demo cohort as stored)."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    ws = open_workspace(workspace_dir, "default")
    cohort_id = next(c.id for c in ws.cohorts())
    run_id = next(r.id for r in ws.runs(kind="pretrain") if r.params.get("method") == "transformer")
    return ws, cohort_id, run_id, ws.load_cohort(cohort_id)


def open_page(state: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.switch_page(PAGE)
    return run(at)


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


TABS = {"imp_ig_table": "Integrated gradients", "imp_attention_table": "Attention"}


def table(at: AppTest, key: str):
    """The top-gene table in its tab (AppTest gives dataframes no ids)."""
    (tab,) = [t for t in at.tabs if t.label == TABS[key]]
    return tab.dataframe[0].value


def planted_captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("Planted truth")]


def test_demo_shows_attention_and_gradients_without_clicks(demo):
    ws, _, run_id, _ = demo
    at = open_page()
    assert at.title[0].value == "Gene importance"
    assert any("Simulated data" in w.value for w in at.warning)
    assert at.radio(key="imp_mode").value == "rollout"
    ig = table(at, "imp_ig_table")
    attention = table(at, "imp_attention_table")
    assert {"gene", "rank", "importance", "BRCA", "OV"} <= set(ig.columns)
    assert len(attention) == 200 and attention["importance"].is_monotonic_decreasing
    assert np.isfinite(attention["importance"]).all()
    assert {b.proto.label for b in at.get("download_button")} == {"All genes (CSV)"}
    assert len([c for c in at.get("plotly_chart") if "imp_" in c.proto.id]) == 2
    ig_caption = [c.value for c in at.caption if c.value.startswith("Method:")]
    assert "logistic regression" in ig_caption[0] and "fallback" in ig_caption[0]
    demo_root, local_run = ws.locate("run", run_id)           # the demo's: stored once for all
    stored = list((demo_root / "arrays" / local_run).glob("attention-*.npy"))
    assert len(stored) == 1                                   # rollout of 240 samples
    assert not (ws.root / "arrays" / run_id).exists()
    assert np.load(stored[0]).shape == (240, 500)


def test_planted_module_genes_rank_at_the_top_for_every_class(demo):
    """Integrated gradients toward each sample's class: per class, the top 20 genes are that
    cancer type's planted module genes (20 of 20 for every type of the demo, seed 0)."""
    *_, adata = demo
    at = open_page()
    hits = {}
    for cls in adata.obs["cancer_type"].cat.categories:
        keyed(at, "selectbox", "imp_class_").set_value(cls)
        run(at)
        top = table(at, "imp_ig_table").sort_values(cls, ascending=False)["gene"].head(20)
        hits[cls] = int(np.isin(top, planted_genes(adata, cls)).sum())
        assert f"**{hits[cls]} of the top 20** genes are in the planted {cls} module" in \
            planted_captions(at)[-1]
    assert min(hits.values()) >= 18, hits
    assert len(planted_genes(adata, "BRCA")) / adata.n_vars < 0.03      # vs ~2% by chance


def test_cls_mode_is_stored_and_reruns_never_recompute(demo, monkeypatch):
    ws, _, run_id, _ = demo
    at = open_page()
    keyed(at, "select_slider", "imp_size_").set_value(60)
    at.radio(key="imp_mode").set_value("cls")
    run(at)
    assert len(table(at, "imp_attention_table")) == 200
    demo_root, local_run = ws.locate("run", run_id)
    assert len(list((demo_root / "arrays" / local_run).glob("attention-*.npy"))) >= 2

    def boom(*args, **kwargs):
        raise AssertionError("attention was recomputed")

    monkeypatch.setattr(gexcore.explain, "attention_importance", boom)
    again = open_page()                                # a new session: the stored arrays serve
    keyed(again, "select_slider", "imp_size_").set_value(60)
    again.radio(key="imp_mode").set_value("cls")
    run(again)
    assert len(table(again, "imp_attention_table")) == 200


def test_chosen_samples_from_the_embeddings_selection(demo):
    *_, adata = demo
    chosen = list(adata.obs_names[adata.obs["cancer_type"] == "GBM"][:12])
    at = open_page({"selected_samples": chosen})
    at.radio(key="imp_which").set_value("Chosen samples")
    run(at)
    assert sorted(keyed(at, "multiselect", "imp_samples_").value) == sorted(chosen)
    assert any(c.value.startswith("12 samples (1 classes") for c in at.caption)
    assert any("chosen" in c.value and "12 samples explained" in c.value for c in at.caption)
    top = table(at, "imp_ig_table")["gene"].head(20)
    assert np.isin(top, planted_genes(adata, "GBM")).sum() >= 15


def test_no_encoder_shows_gradients_on_expression_only(demo):
    at = open_page()
    keyed(at, "selectbox", "imp_run_").set_value(EXPRESSION)
    run(at)
    assert any("needs a transformer encoder" in i.value for i in at.info)
    caption = next(c.value for c in at.caption if c.value.startswith("Method:"))
    assert "logistic regression" in caption and "fallback" not in caption
    assert len(table(at, "imp_ig_table")) == 200


def test_real_cohort_without_an_encoder_or_planted_truth(demo, workspace_dir):
    from gexcore.data.demo import load_demo

    ws, *_ = demo
    cohort_id = ws.add_cohort(load_demo("tissue"), "Tissues")
    at = open_page({"cohort_id": cohort_id})
    assert not any("Simulated data" in w.value for w in at.warning)
    assert any("needs a transformer encoder" in i.value for i in at.info)
    assert not planted_captions(at)
    assert keyed(at, "select_slider", "imp_size_").value == 189        # never more than it has
    assert any(c.value.startswith("189 samples (7 classes") for c in at.caption)
    keyed(at, "selectbox", "imp_class_").set_value("liver")
    run(at)
    ig = table(at, "imp_ig_table")
    assert len(ig) == 200 and ig["liver"].is_monotonic_decreasing
    assert ig["liver"].iloc[0] > 0
