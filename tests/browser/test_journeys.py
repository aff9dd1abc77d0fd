"""User journeys in a real browser; screenshots land in tests/artifacts/ for a human to look at."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser


def test_app_opens_on_simulated_demo_report(page):
    expect(page.get_by_text("Simulated data").first).to_be_visible()
    expect(page.get_by_text("3,000 samples x 2,000 genes").first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "data_demo.png", full_page=True)


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

    page.get_by_text("Upload files").click()
    inputs = page.locator("input[type=file]")
    expect(inputs).to_have_count(2)
    inputs.nth(0).set_input_files(tmp_path / "my_expression.csv")
    inputs.nth(1).set_input_files(tmp_path / "my_clinical.csv")
    expect(page.get_by_text("12 samples x 6 genes").first).to_be_visible()
    expect(page.get_by_text("12 of 12 samples matched").first).to_be_visible()
    expect(page.get_by_text("time=OS_MONTHS (months)").first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "data_upload.png", full_page=True)


def test_bad_upload_shows_clear_error(page, tmp_path):
    (tmp_path / "broken.csv").write_text("gene,S1,S2\nTP53,1,2\nEGFR,x,5\n")
    page.get_by_text("Upload files").click()
    page.locator("input[type=file]").nth(0).set_input_files(tmp_path / "broken.csv")
    expect(page.get_by_text("holds 'x', which is not a number").first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "data_upload_error.png", full_page=True)
