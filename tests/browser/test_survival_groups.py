"""Survival split by a gene in a real browser, as a computational biologist does it on the
demo: Survival page -> Group by "Gene expression" -> type a gene -> KM curves of its low and
high halves with a hazard ratio and its 95% CI. The screenshot is for a human to look at."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot
from tests.browser.test_results_journeys import WAIT, open_from_sidebar

pytestmark = pytest.mark.browser

GENE = "SIMG00013"              # in a planted prognostic module: high expression, longer survival


def test_split_survival_by_a_gene_shows_hazard_ratio_and_ci(page: Page):
    open_from_sidebar(page, "Survival")
    expect(page.get_by_text("Log-rank p").first).to_be_visible(timeout=WAIT)   # risk groups
    page.get_by_text("Gene expression", exact=True).click()
    expect(page.get_by_text("Pick a gene to split the patients")).to_be_visible(timeout=WAIT)
    page.get_by_role("combobox", name="Gene", exact=True).click()
    page.keyboard.type(GENE)
    page.get_by_role("option", name=GENE, exact=True).click()
    expect(page.get_by_text("HR high vs low", exact=True)).to_be_visible(timeout=WAIT)
    expect(page.get_by_text(re.compile(r"^95% CI 0\.\d\d-0\.\d\d$"))).to_be_visible()
    # the figure's own summary: HR with its CI, p as clinicians read it
    expect(page.get_by_text(re.compile(r"HR high vs low: 0\.\d\d \(0\.\d\d-0\.\d\d\), "
                                       r"p < 0\.001"))).to_be_visible()
    expect(page.get_by_text("log-rank p < 0.001")).to_be_visible()
    expect(page.get_by_text(f"All samples by {GENE} expression")).to_be_visible()
    expect(page.get_by_text("log-rank test across 2 groups: p < 0.001")).to_be_visible()
    screenshot(page, "survival_by_gene.png")
    # exports: the figure as standalone HTML (plotly.js inside), the groups as CSV
    with page.expect_download() as html:
        page.get_by_role("button", name="Figure (HTML)").click()
    text = Path(html.value.path()).read_text(encoding="utf-8")
    assert f"All samples by {GENE} expression" in text and "plotly" in text
    assert len(text) > 1_000_000                         # works offline: no CDN link
    with page.expect_download() as csv:
        page.get_by_role("button", name="Groups table (CSV)").click()
    table = pd.read_csv(csv.value.path(), index_col="group")
    assert list(table.index) == ["low", "high"] and table.loc["low", "hr"] == 1.0
    assert table.loc["high", "hr_lower"] < table.loc["high", "hr"] < table.loc["high", "hr_upper"]
