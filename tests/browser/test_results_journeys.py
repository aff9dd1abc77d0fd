"""Result pages in a real browser, reached through the sidebar: survival curves with a p-value,
the confusion matrix of held-out predictions, and the gene-importance table. Screenshots land
in tests/artifacts/ for a human to look at."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser
WAIT = 120_000          # ms: the first visit adds the demo and fits the models


def open_from_sidebar(page: Page, title: str) -> None:
    links = page.locator('[data-testid="stSidebarNavLink"]')
    # The first visit adds the demo; the navigation appears once app.py has run.
    expect(links.filter(has_text="Gene importance")).to_be_visible(timeout=WAIT)
    links.filter(has_text=title).first.click()
    expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=WAIT)


def shoot(page: Page, name: str, height: int = 2400) -> None:
    """Streamlit scrolls inside its own container, so a tall viewport shows the whole page."""
    page.set_viewport_size({"width": 1400, "height": height})
    page.wait_for_timeout(1500)                       # plotly re-lays out to the new size
    page.screenshot(path=ARTIFACTS / name, full_page=True)


def test_survival_page_shows_km_curves_and_a_p_value(page):
    open_from_sidebar(page, "Survival")
    expect(page.get_by_text("Simulated data").first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("Log-rank p").first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("Number at risk").first).to_be_visible(timeout=WAIT)
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("log-rank p < 0.001").first).to_be_visible(timeout=WAIT)  # in the figure
    expect(page.get_by_text("Baseline survival differs by type").first).to_be_visible(timeout=WAIT)
    shoot(page, "survival_demo.png")


def test_predictions_page_shows_the_confusion_matrix(page):
    open_from_sidebar(page, "Predictions")
    expect(page.get_by_text("Accuracy").first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("Confusion matrix (held-out samples)").first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("Held-out class probabilities").first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("Evaluation reports").first).to_be_visible(timeout=WAIT)
    shoot(page, "predictions_demo.png", height=2600)


def test_gene_importance_page_shows_the_top_gene_table(page):
    open_from_sidebar(page, "Gene importance")
    expect(page.get_by_text("Top genes").first).to_be_visible(timeout=WAIT)
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("Planted truth").first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("All genes (CSV)").first).to_be_visible(timeout=WAIT)
    shoot(page, "importance_demo.png", height=2200)
