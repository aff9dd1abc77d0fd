"""Score new patients in a real browser (issue 14, item 5): on the demo, save a model from the
Predictions page, upload a small CSV pair, and read the predictions with their flags.

The upload holds 40 samples drawn by the simulator with the demo's own seed, under new ids:
another seed plants other modules (another world, flagged on every sample), so the simulator
cannot draw unseen patients of the demo's world. Scoring unseen patients well is tested in
tests/test_predict.py; this journey tests the path a user clicks through.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser
SLOW = 120_000                      # ms: the first visit adds the demo and fits the probe


def _settled(page: Page) -> None:
    expect(page.locator("[data-testid=stApp][data-test-script-state=notRunning]")
           ).to_be_attached(timeout=SLOW)


def _write_pair(folder) -> tuple:
    """Genes x samples expression CSV (as most downloads are) and a clinical CSV of 40
    simulated samples."""
    from gexcore.data.simulate import simulate_cohort

    cohort = simulate_cohort()[np.arange(0, 400, 10)]          # the demo's generator, seed 0
    ids = [f"new_patient_{i:03d}" for i in range(cohort.n_obs)]
    expression = cohort.to_df().round(3)
    expression.index = ids
    expression.T.to_csv(folder / "new_expression.csv", index_label="gene")
    clinical = cohort.obs[["cancer_type", "age", "time", "event"]].copy()
    clinical.index = ids
    clinical.to_csv(folder / "new_clinical.csv", index_label="sample")
    return folder / "new_expression.csv", folder / "new_clinical.csv"


def test_save_a_model_and_score_an_uploaded_cohort(page: Page, tmp_path):
    expression, clinical = _write_pair(tmp_path)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Predictions").click()
    expect(page.get_by_role("heading", name="Score new patients")).to_be_visible(timeout=SLOW)
    expect(page.get_by_text("Accuracy").first).to_be_visible(timeout=SLOW)
    _settled(page)
    name = page.get_by_role("textbox", name="Model name")
    name.fill("cancer type (demo)")
    name.press("Tab")
    page.get_by_role("button", name="Save model").click()
    expect(page.get_by_text("Saved model").first).to_be_visible(timeout=SLOW)
    _settled(page)
    page.get_by_text("Upload a new cohort to score").click()
    inputs = page.locator("input[type=file]")
    expect(inputs).to_have_count(2)
    inputs.nth(0).set_input_files(expression)
    _settled(page)
    inputs.nth(1).set_input_files(clinical)
    _settled(page)
    box = page.get_by_role("textbox", name="Cohort name")
    box.fill("new patients")
    box.press("Tab")
    _settled(page)
    page.get_by_role("button", name="Add and score").click()
    # Wait for the new cohort itself: another 40-sample cohort of this server (a journey's
    # filled panel) would pass the metric below before the rerun lands.
    expect(page.get_by_role("combobox", name="Cohort to score")).to_have_value(
        re.compile(r"^new patients \(40 x 2,000\)"), timeout=SLOW)
    _settled(page)
    scored = page.get_by_test_id("stMetric").filter(has_text="Samples scored")
    expect(scored).to_contain_text("40", timeout=SLOW)           # the demo had 3,000
    flagged = page.get_by_test_id("stMetric").filter(has_text="Flagged")
    expect(flagged).to_contain_text("0")
    expect(page.get_by_text("Missing genes:").first).to_be_visible()
    expect(page.get_by_role("button", name="Predictions (CSV)")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").last).to_be_visible()
    page.get_by_role("heading", name="Score new patients").scroll_into_view_if_needed()
    screenshot(page, "predictions_scored.png")
