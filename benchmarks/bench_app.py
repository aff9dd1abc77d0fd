"""Dashboard speed: server start, first render of the demo, and a 10,000-sample explorer.

Run: .venv/bin/python benchmarks/bench_app.py   (needs /usr/bin/chromium)

Each comparison row sets our path against the one it replaces, in the same run:
- stored 2-D map (loaded from the workspace) vs computing PCA + UMAP again, as a rerun would;
- WebGL scatter (Scattergl) vs SVG scatter for 10,000 points, rendered in Chromium.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(workspace: Path) -> tuple[subprocess.Popen, str, float]:
    port = _free_port()
    env = {**os.environ, "GEX_WORKSPACE": str(workspace),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                             "--server.headless", "true", "--server.port", str(port),
                             "--server.fileWatcherType", "none"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):
                return proc, url, time.perf_counter() - t0
        except OSError:
            time.sleep(0.05)


def _time_until(page, action, selector: str) -> float:
    t0 = time.perf_counter()
    action()
    page.wait_for_selector(selector, timeout=120_000)
    return time.perf_counter() - t0


def _scatter_render_ms(page, n: int, webgl: bool) -> float:
    """Milliseconds for Plotly.newPlot of n points in the page (best of 3)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, n)).round(4).tolist()
    kind = "scattergl" if webgl else "scatter"
    page.set_content('<div id="p" style="width:900px;height:700px"></div>')
    page.add_script_tag(path=str(_plotly_js()))
    best = float("inf")
    for _ in range(3):
        ms = page.evaluate("""([x, y, kind]) => {
            const t0 = performance.now();
            Plotly.purge('p');
            Plotly.newPlot('p', [{x, y, type: kind, mode: 'markers', marker: {size: 4}}]);
            return performance.now() - t0; }""", [x, y, kind])
        best = min(best, ms)
    return best


def _plotly_js() -> Path:
    import plotly
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _big_cohort(base: Path) -> tuple[str, float, float]:
    """A 10,000-sample cohort in the app's workspace with its expression map stored.

    Returns (cohort id, seconds to compute the map the first time, seconds to load it again).
    """
    from gexcore.data.simulate import simulate_cohort
    from gexcore.workspace import open_workspace
    from gexcore.explore.features import EXPRESSION
    from gexcore.explore.maps import cohort_map

    ws = open_workspace(base, "default")
    cohort = ws.add_cohort(simulate_cohort(n_samples=10_000, n_genes=500), "10k simulated")
    t0 = time.perf_counter()
    cohort_map(ws, cohort, EXPRESSION)           # first time: PCA + UMAP, stored
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    coords = cohort_map(ws, cohort, EXPRESSION)  # every rerun after: a load
    again = time.perf_counter() - t0
    assert coords.shape == (10_000, 2)
    return cohort, first, again


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        big, first_map, stored_map = _big_cohort(Path(tmp))
        proc, url, up_s = _start_server(Path(tmp))
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                first = _time_until(page, lambda: page.goto(url),
                                    "text=3,000 samples x 2,000 genes")
                demo_map = _time_until(page, lambda: page.goto(f"{url}/embeddings"),
                                       ".js-plotly-plot .legendtext")
                big_page = _time_until(page, lambda: page.goto(f"{url}/embeddings?cohort={big}"),
                                       ".js-plotly-plot .legendtext")
                gl = _scatter_render_ms(page, 10_000, webgl=True)
                svg = _scatter_render_ms(page, 10_000, webgl=False)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print("| measurement | ours | baseline | ours / baseline |")
    print("|---|---|---|---|")
    print(f"| server start to healthy | {up_s:.2f} s | | |")
    print(f"| first render of the demo Data page (fresh workspace) | {first:.2f} s | | |")
    print(f"| demo UMAP visible on Embeddings (shipped map) | {demo_map:.2f} s | | |")
    print(f"| 10k cohort: Embeddings page rerun until the map is drawn | {big_page:.2f} s | | |")
    print(f"| 10k map: stored load (ours) vs PCA + UMAP recompute | {stored_map * 1000:.1f} ms | "
          f"{first_map:.1f} s | 1/{first_map / stored_map:,.0f} |")
    print(f"| 10k points: Scattergl (ours) vs SVG Scatter, Plotly.newPlot | {gl:.0f} ms | "
          f"{svg:.0f} ms | {gl / svg:.2f} |")


if __name__ == "__main__":
    main()
