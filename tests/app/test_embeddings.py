"""Embeddings page: stored maps (never recomputed on a rerun), colouring, embed jobs, selection,
differential expression of a selection, annotations."""

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
from gexcore.workspace.demo import ensure_demo
from gexcore.workspace.store import map_name
from tests.app.conftest import unescaped, wait_for_run
from ui.common import selected_rows

EMBED = "views/embeddings.py"


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
    (column,) = [s for s in at.selectbox if str(s.key).startswith("emb_colour_column_")]
    column.set_value("cancer_type").run()
    by_column = {t["name"]: t["marker"]["color"] for t in _traces(at)}
    assert len(by_column) == 12 and "missing" not in by_column      # no sample lacks a type
    at.radio(key="emb_colour_mode").set_value("Prediction").run()
    (predict,) = [s for s in at.selectbox if str(s.key).startswith("emb_predict_")]
    predict.set_value("cancer_type").run()
    assert not at.exception, at.exception
    traces = _traces(at)
    assert sum(len(t["x"]) for t in traces) == 3_000
    types = {t["name"] for t in traces}
    assert len(types) >= 10 and types <= set(by_column)           # predicted types, none missing
    # Regression: a class's colour changed between the column and its prediction.
    assert all(t["marker"]["color"] == by_column[t["name"]] for t in traces)
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
    offer = at.selectbox(key=f"embed_run_{other}")
    assert offer.value == run_id
    # Only encoders that measure enough of their genes here: the demo's 2,000-gene models
    # see 40 of theirs and are not offered; the overlap is shown.
    assert offer.options == [f"enc ({run_id}) · genes 40 of 40"]
    assert any("2 other encoder(s) are not offered" in c.value for c in at.caption)
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


# -- selection by a column, differential expression, annotations (issue 14, item 3) ---------
def _select_where(at, cohort_id: str, column: str, value: str, prefix: str = "emb_select"):
    at.radio(key="emb_select_mode").set_value("Where a column has a value").run()
    at.selectbox(key=f"{prefix}_{cohort_id}_column").set_value(column).run()
    at.selectbox(key=f"{prefix}_{cohort_id}_value_{column}").set_value(value).run()
    assert not at.exception, at.exception
    return at


def _de_table(at):
    """The DE table (AppTest gives data frames no key: it is the one with fold changes)."""
    (table,) = [d.value for d in at.dataframe if "log2_fc" in d.value.columns]
    return table


def test_selecting_one_cancer_type_lists_its_planted_genes(open_page, ws):
    """The demo: every BRCA tumour against the rest -> the top DE genes are BRCA's planted
    module; against the normals instead, still BRCA's module; a volcano plot is drawn."""
    from gexcore.explore.planted import planted_genes

    cohort_id = ensure_demo(ws)[0]
    at = open_page(EMBED)
    _select_where(at, cohort_id, "label", "BRCA")
    assert any("123 selected sample(s)" in h.value for h in at.subheader)
    planted = planted_genes(ws.load_cohort(cohort_id), "BRCA")
    top = _de_table(at).index[:20]
    assert np.isin(top, planted).sum() >= 18, list(top)
    charts = at.get("plotly_chart")
    assert len(charts) == 2 and "-log10 q" in charts[1].proto.spec
    caption = next(c.value for c in at.caption if "Welch" in c.value)
    assert "123" in caption and "2,877" in caption

    at.radio(key=f"emb_reference_{cohort_id}").set_value("Where a column has a value").run()
    at.selectbox(key=f"emb_ref_{cohort_id}_column").set_value("label").run()
    at.selectbox(key=f"emb_ref_{cohort_id}_value_label").set_value("Normal").run()
    assert not at.exception, at.exception
    assert np.isin(_de_table(at).index[:20], planted).sum() >= 15
    assert any("add it as your own cohort" in c.value for c in at.caption)   # demo: read-only


def test_a_selection_saved_as_an_annotation_is_a_new_column(open_page, ws, tiny_cohort,
                                                            tmp_path):
    import anndata

    upload = tmp_path / "upload.h5ad"
    tiny_cohort.write_h5ad(upload)
    uploaded = upload.read_bytes()
    tiny_id = ws.add_cohort(anndata.read_h5ad(upload), "uploaded")
    before = ws.cohort_path(tiny_id).read_bytes()
    at = open_page(EMBED, cohort_id=tiny_id, emb_method="PCA")
    _select_where(at, tiny_id, "cancer_type", "BRCA")
    n = int((ws.load_cohort(tiny_id).obs["cancer_type"] == "BRCA").sum())
    at.text_input(key=f"emb_annotation_{tiny_id}").input("cancer_type").run()
    at.button(key=f"emb_save_annotation_{tiny_id}").click().run()
    assert any("never overwritten" in e.value for e in at.error)       # an existing column
    assert ws.cohort_path(tiny_id).read_bytes() == before

    at.text_input(key=f"emb_annotation_{tiny_id}").input("my BRCA").run()
    at.button(key=f"emb_save_annotation_{tiny_id}").click().run()
    assert not at.exception, at.exception
    assert any("Saved" in s.value for s in at.success)
    obs = ws.load_cohort(tiny_id).obs
    assert int(obs["my BRCA"].notna().sum()) == n
    assert (obs.loc[obs["my BRCA"].notna(), "cancer_type"] == "BRCA").all()
    assert upload.read_bytes() == uploaded                           # the upload untouched
    at.run()                                     # the page reads the new column at once
    assert "my BRCA" in at.selectbox(key=f"emb_colour_column_{tiny_id}").options


def test_colour_by_a_pasted_gene_set_scores_its_planted_type_highest(open_page, tiny_cohort,
                                                                    tiny_id):
    from gexcore.explore.planted import planted_genes

    genes = planted_genes(tiny_cohort, "BRCA")
    gmt = f"BRCA_MODULE\tplanted\t{chr(9).join(genes)}\tNOT_A_GENE\nOTHER\t\t{genes[0]}\n"
    at = open_page(EMBED, cohort_id=tiny_id, emb_method="PCA")
    at.radio(key="emb_colour_mode").set_value("Gene set").run()
    at.text_area(key=f"emb_gmt_text_{tiny_id}").input(gmt).run()
    assert not at.exception, at.exception
    assert at.selectbox(key=f"emb_gene_set_{tiny_id}").options == ["BRCA_MODULE", "OTHER"]
    caption = next(c.value for c in at.caption if "mean z-score" in c.value)
    assert f"{len(genes)} of its {len(genes) + 1} genes" in caption
    (trace,) = _traces(at)
    assert trace["marker"]["showscale"] is True
    colour = trace["marker"]["color"]                          # plotly's base64 typed array
    scores = np.frombuffer(base64.b64decode(colour["bdata"]), dtype=colour["dtype"])
    brca = (tiny_cohort.obs["label"] == "BRCA").to_numpy()
    assert scores[brca].mean() > scores[~brca].mean() + 0.5

    at.text_area(key=f"emb_gmt_text_{tiny_id}").input("BROKEN\tno genes\n").run()
    assert any("line 1" in e.value for e in at.error)


def test_a_remembered_selection_is_the_reference_for_the_next(open_page, ws):
    """BRCA tumours remembered, then the normals selected and compared with them: BRCA's
    module leads, lower in the normals; a selection overlapping the remembered one is refused."""
    from gexcore.explore.planted import planted_genes

    cohort_id = ensure_demo(ws)[0]
    at = _select_where(open_page(EMBED), cohort_id, "label", "BRCA")
    at.button(key=f"emb_remember_{cohort_id}").click().run()
    at.selectbox(key=f"emb_select_{cohort_id}_value_label").set_value("Normal").run()
    at.radio(key=f"emb_reference_{cohort_id}").set_value("The remembered selection").run()
    assert not at.exception, at.exception
    caption = next(c.value for c in at.caption if "Welch" in c.value)
    assert "the remembered selection (123)" in unescaped(caption)
    table = _de_table(at)
    planted = planted_genes(ws.load_cohort(cohort_id), "BRCA")
    up_in_brca = table[table["log2_fc"] < 0].index[:15]
    assert np.isin(up_in_brca, planted).sum() >= 12, list(up_in_brca)

    at.selectbox(key=f"emb_select_{cohort_id}_column").set_value("cancer_type").run()
    at.selectbox(key=f"emb_select_{cohort_id}_value_cancer_type").set_value("BRCA").run()
    assert any("share 123 sample(s)" in unescaped(e.value) for e in at.error)
