"""Data page: the current cohort's report, demo and upload sources, column mapping, saving."""

from __future__ import annotations

from gexcore import keys
from gexcore.data.validate import describe
from tests.app.conftest import unescaped

DATA = "views/data.py"


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _add_tab(open_page, source: str = "Demo cohort", demo: str | None = None):
    at = open_page(DATA)
    at.session_state["data_tab"] = "Add a cohort"
    at.run()
    at.radio(key="data_source").set_value(source).run()
    if demo is not None:
        at.selectbox(key="demo_name").set_value(demo).run()
    assert not at.exception, at.exception
    return at


def test_data_page_opens_on_simulated_demo(open_page):
    app = open_page(DATA)
    assert app.title[0].value == "Data"
    assert _metrics(app)["Samples"] == "3,000"
    assert _metrics(app)["Genes"] == "2,000"
    assert any("Simulated data" in w.value for w in app.warning)
    report = app.code[0].value
    assert "3,000 samples x 2,000 genes" in report and "survival:" in report
    assert unescaped(app.subheader[0].value) == "Simulated pan-cancer (demo)"


def test_data_page_switches_to_real_tissue_demo(open_page):
    app = _add_tab(open_page, demo="tissue")
    assert _metrics(app)["Samples"] == "189" and _metrics(app)["Genes"] == "500"
    assert not any("Simulated data" in w.value for w in app.warning)
    assert "clinical:    189 of 189" in app.code[0].value


def test_data_page_gse7390_reports_survival(open_page):
    app = _add_tab(open_page, demo="gse7390")
    report = app.code[0].value
    assert "time=tdm_days (days)" in report and "51 events" in report


def test_upload_mode_waits_for_a_file(open_page):
    app = _add_tab(open_page, source="Upload files")
    assert "Upload an expression file" in app.info[0].value
    assert not app.button                       # nothing to save yet


def test_mapping_defaults_come_from_detected_columns(open_page):
    app = _add_tab(open_page, demo="tissue")
    chosen = {s.key: s.value for s in app.selectbox if s.key and s.key.startswith("map_")}
    assert chosen == {"map_label_demo_tissue": "tissue", "map_time_demo_tissue": "(none)",
                      "map_event_demo_tissue": "(none)", "map_batch_demo_tissue": "(none)",
                      "map_patient_demo_tissue": "patient_id"}


def test_save_demo_with_mapping_becomes_current_cohort(open_page, ws):
    app = _add_tab(open_page, demo="tissue")
    app.text_input(key="name_demo_tissue").set_value("Tissues, my copy")
    app.button(key="FormSubmitter:save_demo_tissue-Save to workspace").click().run()
    assert not app.exception, app.exception
    saved = [c for c in ws.cohorts() if c.name == "Tissues, my copy"]
    assert len(saved) == 1 and saved[0].n_obs == 189
    assert app.session_state["cohort_id"] == saved[0].id
    assert app.session_state["data_tab"] == "Current cohort"
    assert "it is now the current cohort" in app.success[0].value
    assert _metrics(app)["Samples"] == "189"                   # the report of the saved one
    obs = ws.load_cohort(saved[0].id).obs
    assert (obs[keys.OBS_LABEL].astype(str) == obs["tissue"].astype(str)).all()
    assert obs[keys.OBS_LABEL].nunique() == 7


def test_save_rejects_time_without_event_and_writes_nothing(open_page, ws):
    app = _add_tab(open_page, demo="gse7390")
    before = len(ws.cohorts())
    app.selectbox(key="map_event_demo_gse7390").set_value("(none)")
    app.button(key="FormSubmitter:save_demo_gse7390-Save to workspace").click().run()
    assert not app.exception, app.exception
    assert "pick both a survival time and an event column" in app.error[0].value
    assert len(ws.cohorts()) == before
    assert app.session_state["data_tab"] == "Add a cohort"


def test_fill_missing_genes_of_a_panel_opens_the_new_cohort(open_page, ws, tiny_id,
                                                           tiny_cohort):
    from gexcore.train.config import TrainConfig
    from gexcore.workspace import PretrainJob, submit
    from tests.app.conftest import wait_for_run

    encoder = submit(ws, PretrainJob(cohort=tiny_id, method="vime", name="enc",
                                     train=TrainConfig(epochs=1)))
    assert wait_for_run(ws, encoder).status == "done"
    panel = tiny_cohort[:, 5:].copy()
    panel.uns["validation"] = describe(panel, source="panel.csv", format="table").to_dict()
    panel_id = ws.add_cohort(panel, "panel")
    at = open_page(DATA, cohort_id=panel_id, **{f"impute_run_{panel_id}": encoder})
    assert any("5 of the encoder's 40 genes are missing here" in c.value for c in at.caption)
    at.button(key=f"impute_start_{panel_id}").click().run()
    (job,) = ws.runs(kind="impute")
    assert job.params == {"cohort": panel_id, "run": encoder, "name": ""}
    assert wait_for_run(ws, job.id).status == "done", ws.read_log(job.id)

    at.run()
    at.button(key=f"open_{job.id}").click().run()
    assert not at.exception, at.exception
    assert unescaped(at.subheader[0].value) == "panel (filled by enc)"
    assert _metrics(at)["Genes"] == "40"
    assert "cells filled by a vime encoder" in at.code[0].value
    assert {b.proto.label for b in at.get("download_button")} >= {"Expression (CSV)",
                                                                  "Cohort (.h5ad)"}


def test_fill_missing_genes_needs_half_of_the_encoder_genes(open_page, ws, tiny_cohort):
    small = tiny_cohort[:, :10].copy()
    small.uns["validation"] = describe(small, source="ten.csv", format="table").to_dict()
    small = ws.add_cohort(small, "ten genes")
    vime = next(r.id for r in ws.runs(kind="pretrain") if r.params.get("method") == "vime")
    at = open_page(DATA, cohort_id=small, **{f"impute_run_{small}": vime})
    assert any("filling needs at least half of them measured" in w.value for w in at.warning)
    assert not [b for b in at.button if str(b.key).startswith("impute_start_")]


def test_user_names_are_shown_as_typed_never_as_markdown(open_page, ws):
    """Regression: a cohort named like a markdown image made every viewer's browser fetch it."""
    from gexcore.data import load_demo

    evil = "![b](http://127.0.0.1:9/beacon.png) **bold** <img src=x>"
    cohort_id = ws.add_cohort(load_demo("tissue"), evil)
    for page in (DATA, "views/train.py", "views/embeddings.py", "views/predictions.py"):
        at = open_page(page, cohort_id=cohort_id)
        shown = [e.value for kind in ("markdown", "caption", "subheader", "success", "info",
                                      "warning", "error") for e in at.get(kind)]
        assert any("beacon" in text for text in shown), page       # the name is on the page
        for text in shown:
            assert "](http" not in text and "**bold**" not in text, text
            assert "<img" not in text.replace("\\<img", ""), text


def test_share_a_cohort_with_a_colleague_then_revoke(open_page, ws):
    from gexcore.data import load_demo
    from gexcore.workspace import open_workspace

    cohort_id = ws.add_cohort(load_demo("tissue"), "to share")
    bob = open_workspace(ws.root.parent, "bob")
    at = open_page(DATA, cohort_id=cohort_id)
    at.text_input(key=f"share_users_{cohort_id}").input("bob")
    (share,) = [b for b in at.button if b.label == "Share read-only"]
    share.click().run()
    assert not at.exception, at.exception
    assert [c.name for c in bob.cohorts() if c.owner == "default"] == ["to share"]
    at.button(key=f"revoke_cohort_{cohort_id}_bob").click().run()
    assert not at.exception and not [c for c in bob.cohorts() if c.owner == "default"]



def test_a_cohort_stored_through_the_api_without_a_report_still_opens(open_page, ws,
                                                                       tiny_cohort):
    """`Workspace.add_cohort` from Python (no reader ran, so no validation record in uns):
    the page describes the stored matrix instead of failing."""
    tiny_cohort.uns.pop(keys.UNS_VALIDATION, None)
    cohort_id = ws.add_cohort(tiny_cohort, "from a notebook")
    at = open_page(DATA, cohort_id=cohort_id)
    assert not at.exception, at.exception
    assert _metrics(at)["Samples"] == "60" and _metrics(at)["Genes"] == "40"
