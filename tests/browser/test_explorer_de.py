"""Marker genes of a cluster in a real browser, as a computational biologist reads them on the
demo: Embeddings -> lasso around one cancer type's cluster on the map -> the differential
expression table's top genes are that type's planted module. The screenshot is for a human."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, screenshot
from tests.browser.test_results_journeys import WAIT, open_from_sidebar

pytestmark = pytest.mark.browser

# Each trace's points in page pixels: plotly's own data-to-pixel maps of the drawn axes.
_POINTS_JS = """() => {
  const gd = document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot');
  const box = gd.getBoundingClientRect(), size = gd._fullLayout._size;
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  return gd._fullData.filter(t => t.mode === 'markers').map(t => ({name: t.name,
    x: Array.from(t.x, v => box.left + size.l + xa.l2p(v)),
    y: Array.from(t.y, v => box.top + size.t + ya.l2p(v))}));
}"""


@pytest.fixture
def explorer(browser, server_url):
    """A tab on the app, whichever page it opens on (the journey starts from the sidebar)."""
    expect.set_options(timeout=30_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                  accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server_url)
    yield page
    context.close()


def _tightest_cluster(traces: list[dict]) -> tuple[str, tuple[float, float, float]]:
    """(type, (centre x, centre y, radius)) of the tumour type whose core is purest: the disc
    around its median point holding half of its samples, with the fewest others inside."""
    best = None
    for trace in traces:
        if trace["name"] == "Normal":                # normals have no planted module
            continue
        xy = np.column_stack([trace["x"], trace["y"]])
        centre = np.median(xy, axis=0)
        radius = float(np.quantile(np.linalg.norm(xy - centre, axis=1), 0.5))
        inside = {t["name"]: int((np.hypot(np.subtract(t["x"], centre[0]),
                                           np.subtract(t["y"], centre[1])) < radius).sum())
                  for t in traces}
        purity = inside[trace["name"]] / max(1, sum(inside.values()))
        if radius > 4 and (best is None or purity > best[0]):
            best = (purity, trace["name"], (float(centre[0]), float(centre[1]), radius))
    assert best is not None and best[0] > 0.9, best
    return best[1], best[2]


def _lasso_disc(page: Page, cx: float, cy: float, r: float) -> None:
    page.mouse.move(cx + r, cy)
    page.mouse.down()
    for angle in np.linspace(0, 2 * np.pi, 25)[1:]:
        page.mouse.move(cx + r * np.cos(angle), cy + r * np.sin(angle), steps=3)
    page.mouse.up()


def _download(page: Page, button: str) -> pd.DataFrame:
    with page.expect_download() as info:
        page.get_by_role("button", name=button).click()
    return pd.read_csv(io.BytesIO(open(info.value.path(), "rb").read()), index_col=0)


def test_lasso_a_cluster_and_read_its_planted_marker_genes(explorer: Page):
    page = explorer
    from gexcore.data.demo import load_demo
    from gexcore.explore.planted import planted_genes

    open_from_sidebar(page, "Embeddings")
    chart = page.get_by_test_id("stPlotlyChart").first
    expect(chart.locator("canvas").first).to_be_attached(timeout=WAIT)
    expect(chart.get_by_text("BRCA", exact=True).first).to_be_visible(timeout=WAIT)   # legend
    page.wait_for_timeout(500)                       # plotly finishes its layout
    cancer_type, (cx, cy, r) = _tightest_cluster(page.evaluate(_POINTS_JS))
    _lasso_disc(page, cx, cy, r)
    expect(page.get_by_text(re.compile(r"^[\d,]+ selected sample\(s\)$")).first
           ).to_be_visible(timeout=WAIT)
    expect(page.get_by_role("heading", name="Differential expression")).to_be_visible()
    expect(page.get_by_text("Welch's t-test per gene").first).to_be_visible(timeout=WAIT)

    selected = _download(page, "Selected samples (CSV)")
    assert (selected["label"] == cancer_type).mean() > 0.9, selected["label"].value_counts()
    table = _download(page, "Differential expression, every gene (CSV)")
    planted = planted_genes(load_demo("simulated_pancancer"), cancer_type)
    top = table.index[:20]
    assert np.isin(top, planted).sum() >= 18, (cancer_type, list(top))
    volcano = page.get_by_test_id("stPlotlyChart").nth(1)
    expect(volcano.get_by_text(str(top[0]), exact=True).first).to_be_visible()   # labelled
    page.get_by_text("Save selection as annotation").click()
    expect(page.get_by_text("add it as your own cohort")).to_be_visible()   # demo: read-only
    page.mouse.move(5, 5)                            # no hover label over the map
    screenshot(page, "embeddings_de.png")
