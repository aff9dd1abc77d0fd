"""User journeys in a real browser; screenshots land in tests/artifacts/ for a human to look at."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot, streamlit_server

pytestmark = pytest.mark.browser

SLOW = 150_000          # ms: a job's worker imports torch, UMAP compiles on first use


def _go(page: Page, title: str) -> None:
    """Navigate with the sidebar (a URL would start a new session and forget the cohort)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible()


def _settled(page: Page) -> None:
    """Wait until no script run is in flight: a rerun that lands after a fill redraws the
    widget with its old value (CI lost a typed cohort name that way)."""
    expect(page.locator("[data-testid=stApp][data-test-script-state=notRunning]")).to_be_attached()


def _fill(page: Page, role: str, name: str, text: str) -> None:
    _settled(page)
    box = page.get_by_role(role, name=name)
    box.fill(text)
    box.press("Tab")                                   # blur commits the value
    expect(box).to_have_value(text)


def _click_until_rerun(page: Page, button: str, *, gone: str, tries: int = 3) -> None:
    """Click `button` until the page reruns (`gone`, text only the previous run showed, goes
    away): CI once lost a click on a button that had just been drawn."""
    for _ in range(tries):
        _settled(page)
        page.get_by_role("button", name=button).click()
        try:
            expect(page.get_by_text(gone)).to_have_count(0, timeout=15_000)
            return
        except AssertionError:
            continue
    raise AssertionError(f"clicking {button!r} never reran the page")


def _choose(page: Page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def _map(page: Page):
    """The plotly map, once drawn (WebGL points live in a canvas)."""
    chart = page.get_by_test_id("stPlotlyChart").first
    expect(chart.locator("canvas").first).to_be_attached(timeout=SLOW)
    return chart


def _write_pair(folder, n_samples: int = 40, n_genes: int = 30, seed: int = 0):
    """A genes x samples CSV (two subtypes with shifted genes) and a cBioPortal-style table."""
    rng = np.random.default_rng(seed)
    samples = [f"patient_{i:02d}" for i in range(n_samples)]
    subtype = np.where(np.arange(n_samples) % 2 == 0, "A", "B")
    values = rng.normal(8, 1, (n_genes, n_samples))
    values[: n_genes // 3, subtype == "B"] += 2.0
    genes = [f"GENE{i:02d}" for i in range(n_genes)]
    pd.DataFrame(values.round(3), index=pd.Index(genes, name="gene"),
                 columns=samples).to_csv(folder / "my_expression.csv")
    pd.DataFrame({"sample": samples, "subtype": subtype,
                  "OS_MONTHS": rng.uniform(1, 90, n_samples).round(1),
                  "OS_STATUS": ["1:DECEASED", "0:LIVING"] * (n_samples // 2)}
                 ).to_csv(folder / "my_clinical.csv", index=False)
    return folder / "my_expression.csv", folder / "my_clinical.csv"


def _upload(page: Page, expression, clinical) -> None:
    page.get_by_role("tab", name="Add a cohort").click()
    inputs = page.locator("input[type=file]")
    expect(inputs).to_have_count(2)
    inputs.nth(0).set_input_files(expression)
    # The rerun after the first file redraws the uploaders; only then add the second.
    expect(page.get_by_role("heading", name="Validation report").first).to_be_visible()
    inputs.nth(1).set_input_files(clinical)
    expect(page.get_by_text("matched clinical rows").first).to_be_visible()


def test_a_bookmark_opened_first_on_a_fresh_server_shows_the_whole_app(browser, tmp_path):
    """/embeddings before any session ran: the full app (navigation, cohort picker, the
    page), not a list of files; a bad cohort in the URL is answered with one line."""
    with streamlit_server(tmp_path / "ws", tmp_path / "streamlit.log") as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        try:
            page.goto(f"{url}/embeddings?cohort=no-such-cohort")
            expect(page.get_by_role("heading", name="Embeddings", exact=True)).to_be_visible(
                timeout=180_000)
            nav = page.get_by_test_id("stSidebarNav")
            expect(nav.get_by_role("link")).to_have_text(             # icon name, then title
                [re.compile(f"{title}$") for title in (
                    "Overview", "Data", "Train", "Embeddings", "Predictions", "Gene importance",
                    "Survival", "Admin")])
            sidebar = page.get_by_test_id("stSidebar")
            expect(sidebar.get_by_role("combobox", name="Cohort")).to_have_value(
                re.compile("^Simulated pan-cancer"))
            expect(sidebar.get_by_text("No cohort 'no-such-cohort' here")).to_be_visible()
            assert "Traceback" not in page.content()
        finally:
            context.close()


def test_a_clinician_sees_the_overview_without_a_click(browser, server_url):
    """The landing page: map, survival by predicted risk, marker genes and the evaluation
    headline, each linking to its page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(server_url)
        expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible(
            timeout=180_000)
        for panel in ("Map", "Survival by predicted risk", "Marker genes of each cancer_type",
                      "Evaluation"):
            expect(page.get_by_text(panel, exact=True)).to_be_visible(timeout=120_000)
        expect(page.get_by_text("Simulated data").first).to_be_visible()
        expect(page.get_by_text("3,000 samples x 2,000 genes").first).to_be_visible()
        main = page.get_by_test_id("stMain")
        expect(main.locator(".js-plotly-plot")).to_have_count(2)          # map and KM curves
        expect(main.get_by_text("high risk", exact=True).first).to_be_visible()
        expect(main.get_by_text("vs baseline").first).to_be_visible()
        _settled(page)
        screenshot(page, "overview_demo.png")
        main.get_by_role("link", name=re.compile("^Split survival")).click()
        expect(page.get_by_role("heading", name="Survival", exact=True)).to_be_visible()
    finally:
        context.close()


def test_the_data_page_shows_the_demo_report(page):
    expect(page.get_by_text("Simulated data").first).to_be_visible()
    expect(page.get_by_text("3,000 samples x 2,000 genes").first).to_be_visible()
    screenshot(page, "data_demo.png")


def test_demo_map_is_drawn_on_the_embeddings_page(page):
    _go(page, "Embeddings")
    expect(page.get_by_text("vime (shipped demo model)").first).to_be_visible()
    chart = _map(page)
    expect(chart.get_by_text("simulated data", exact=True).first).to_be_visible()   # on the figure
    expect(page.get_by_text("generated by the GexScope simulator").first).to_be_visible()
    expect(chart.get_by_text("BRCA", exact=True).first).to_be_visible()             # legend
    screenshot(page, "embeddings_demo.png")

    _lasso(chart, page)
    expect(page.get_by_text(re.compile(r"^[\d,]+ selected sample\(s\)$")).first).to_be_visible()
    expect(page.get_by_role("button", name="Selected samples (CSV)").first).to_be_visible()
    screenshot(page, "embeddings_selection.png")

    page.get_by_test_id("stRadio").get_by_text("Prediction", exact=True).click()
    expect(page.get_by_text(re.compile(r"\d+% of the labelled samples get their own")).first
           ).to_be_visible(timeout=SLOW)
    expect(_map(page).get_by_text("predicted cancer_type").first).to_be_visible()  # legend
    screenshot(page, "embeddings_prediction.png")


def _lasso(chart, page: Page) -> None:
    """Draw a lasso around the middle of the plot area with the mouse."""
    box = chart.locator(".nsewdrag").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    w, h = box["width"] / 4, box["height"] / 4
    page.mouse.move(cx - w, cy - h)
    page.mouse.down()
    for x, y in ((cx + w, cy - h), (cx + w, cy + h), (cx - w, cy + h), (cx - w, cy - h)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_upload_csv_pair_shows_validation_report(page, tmp_path):
    rng = np.random.default_rng(0)
    samples = [f"patient_{i:02d}" for i in range(12)]
    expr = pd.DataFrame(rng.normal(8, 2, (6, 12)).round(3), columns=samples,
                        index=pd.Index(["TP53", "EGFR", "MYC", "GAPDH", "ACTB", "ESR1"],
                                       name="gene"))
    expr.to_csv(tmp_path / "my_expression.csv")
    clinical = pd.DataFrame({"sample": samples, "OS_MONTHS": rng.uniform(1, 90, 12).round(1),
                             "OS_STATUS": ["1:DECEASED", "0:LIVING"] * 6})
    clinical.to_csv(tmp_path / "my_clinical.csv", index=False)

    _upload(page, tmp_path / "my_expression.csv", tmp_path / "my_clinical.csv")
    expect(page.get_by_text("12 samples x 6 genes").first).to_be_visible()
    expect(page.get_by_text("12 of 12 samples matched").first).to_be_visible()
    expect(page.get_by_text("time=OS_MONTHS (months)").first).to_be_visible()
    expect(page.get_by_role("combobox", name="Survival time")).to_have_value(
        "time (read from OS_MONTHS, months)")                         # column mapping default
    screenshot(page, "data_upload.png")


def test_bad_upload_shows_clear_error(page, tmp_path):
    (tmp_path / "broken.csv").write_text("gene,S1,S2\nTP53,1,2\nEGFR,x,5\n")
    page.get_by_role("tab", name="Add a cohort").click()
    page.locator("input[type=file]").nth(0).set_input_files(tmp_path / "broken.csv")
    expect(page.get_by_text("holds 'x', which is not a number").first).to_be_visible()
    screenshot(page, "data_upload_error.png")


def test_save_upload_pretrain_and_map_it(page, tmp_path):
    _upload(page, *_write_pair(tmp_path))
    expect(page.get_by_text("40 samples x 30 genes").first).to_be_visible()
    _fill(page, "textbox", "Cohort name", "Browser cohort")
    page.get_by_role("button", name="Save to workspace").click()
    expect(page.get_by_text("it is now the current cohort").first).to_be_visible()
    expect(page.get_by_role("heading", name="Browser cohort", exact=True).first).to_be_visible()
    screenshot(page, "data_saved.png")

    _go(page, "Train")
    expect(page.get_by_text("Browser cohort (40 x 30)").first).to_be_visible()
    _choose(page, "Method", "SCARF (contrastive MLP)")
    _fill(page, "spinbutton", "Epochs", "2")
    _fill(page, "textbox", "Run name (optional)", "browser scarf")
    page.get_by_role("button", name="Start pretraining").click()
    expect(page.get_by_text("in the background").first).to_be_visible()
    expect(page.get_by_text("browser scarf — done").first).to_be_visible(timeout=SLOW)
    expect(page.get_by_text("Best validation loss").first).to_be_visible()
    screenshot(page, "train_done.png")

    _go(page, "Embeddings")
    expect(page.get_by_text("Browser cohort (40 x 30)").first).to_be_visible()
    expect(page.get_by_text("browser scarf").first).to_be_visible()      # the source picked
    chart = _map(page)
    expect(chart.get_by_text("browser scarf · UMAP").first).to_be_visible()
    screenshot(page, "embeddings_trained.png")

    # The rest of the walk on the user's own cohort: every result page has something to show.
    _go(page, "Predictions")
    expect(page.get_by_text("Confusion matrix (held-out samples)").first
           ).to_be_visible(timeout=SLOW)
    expect(page.get_by_role("combobox", name="Label column", exact=True)).to_have_value("label")
    screenshot(page, "predictions_own.png")

    _go(page, "Survival")
    expect(page.get_by_text("Log-rank p").first).to_be_visible(timeout=SLOW)
    expect(page.get_by_text("Number at risk").first).to_be_visible()
    screenshot(page, "survival_own.png")

    _go(page, "Gene importance")
    expect(page.get_by_text("Top genes").first).to_be_visible(timeout=SLOW)
    expect(page.get_by_text("GENE0").first).to_be_visible()
    screenshot(page, "importance_own.png")


def test_fill_a_smaller_panel_with_the_shipped_encoder(page, tmp_path):
    """A user's panel lacks 300 of the demo genes: the shipped VIME encoder fills them."""
    from gexcore.data.demo import load_demo

    sim = load_demo("simulated_pancancer")[:40, 300:]
    sim.to_df().T.round(3).to_csv(tmp_path / "panel.csv", index_label="gene")
    sim.obs[["cancer_type"]].to_csv(tmp_path / "panel_clinical.csv", index_label="sample")
    _upload(page, tmp_path / "panel.csv", tmp_path / "panel_clinical.csv")
    expect(page.get_by_text("40 samples x 1,700 genes").first).to_be_visible()
    _fill(page, "textbox", "Cohort name", "My panel")
    page.get_by_role("button", name="Save to workspace").click()
    expect(page.get_by_role("heading", name="My panel", exact=True).first).to_be_visible()

    _settled(page)
    page.get_by_text("Fill missing genes with an encoder").first.click()
    expect(page.get_by_role("combobox", name="Encoder")).to_have_value(
        "vime (shipped demo model)")
    expect(page.get_by_text("300 of the encoder's 2,000 genes are missing here").first
           ).to_be_visible()
    _click_until_rerun(page, "Fill genes", gone="it is now the current cohort")
    opener = page.get_by_role("button", name=re.compile(
        r"^Open My panel \(filled by vime \(shipped demo model\)\) \([\d,]+ cells filled\)"))
    expect(opener).to_be_visible(timeout=SLOW)
    screenshot(page, "data_fill_done.png")
    opener.click()
    expect(page.get_by_role("heading", name="My panel (filled by vime (shipped demo model))",
                            exact=True).first).to_be_visible()
    expect(page.get_by_text("40 samples x 2,000 genes").first).to_be_visible()
    expect(page.get_by_text("looks like log").first).to_be_visible()     # no negative fills
    expect(page.get_by_text("cells filled by a vime encoder (300 genes added)").first
           ).to_be_visible()
    screenshot(page, "data_filled_cohort.png")
