"""AppTest over every page: widgets drive real gexcore calls on the shipped demo data."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_data_page_opens_on_simulated_demo(app):
    assert app.title[0].value == "Data"
    assert _metrics(app)["Samples"] == "3,000"
    assert _metrics(app)["Genes"] == "2,000"
    assert any("Simulated data" in w.value for w in app.warning)
    report = app.code[0].value
    assert "3,000 samples x 2,000 genes" in report and "survival:" in report


def test_data_page_switches_to_real_tissue_demo(app):
    app.selectbox(key="demo_name").set_value("tissue").run()
    assert not app.exception
    assert _metrics(app)["Samples"] == "189" and _metrics(app)["Genes"] == "500"
    assert not any("Simulated data" in w.value for w in app.warning)
    assert "clinical:    189 of 189" in app.code[0].value


def test_data_page_gse7390_reports_survival(app):
    app.selectbox(key="demo_name").set_value("gse7390").run()
    report = app.code[0].value
    assert "time=tdm_days (days)" in report and "51 events" in report


def test_upload_mode_waits_for_a_file(app):
    app.radio(key="data_source").set_value("Upload files").run()
    assert not app.exception
    assert "Upload an expression file" in app.info[0].value
