"""A real Streamlit server and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
APP = ROOT / "app.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def workspace_dir(tmp_path_factory) -> Path:
    """The server's workspaces: a temp folder, never ./workspace."""
    return tmp_path_factory.mktemp("workspaces")


@pytest.fixture(scope="session")
def server_url(tmp_path_factory, workspace_dir):
    """The app server most journeys share (local mode, its own workspaces)."""
    with streamlit_server(workspace_dir, tmp_path_factory.mktemp("server") / "streamlit.log") as url:
        yield url


@contextmanager
def streamlit_server(workspace: Path, log: Path, *, env: dict[str, str] | None = None,
                     args: tuple[str, ...] = (), port: int | None = None) -> Iterator[str]:
    """Another app server (its own port, workspaces and environment, e.g. GEX_AUTH=password);
    yields its URL and stops it and its job workers afterwards."""
    port = port or _free_port()
    full_env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
                "GEX_WORKSPACE": str(workspace), "GEX_THREADS": "1", **(env or {})}
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP),
           "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.fileWatcherType", "none", *args]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env=full_env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if workspace.exists():
            _stop_workers(workspace)


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail(f"streamlit did not start:\n{log.read_text()}")


def _stop_workers(base: Path) -> None:
    """Kill the job workers the journeys started and left running (they outlive the server)."""
    from gexcore.workspace import ACTIVE, Workspace
    from gexcore.workspace.jobs import _worker_alive

    for root in (p for p in base.iterdir() if (p / "workspace.sqlite").exists()):
        for run in Workspace(root).runs(status=ACTIVE):
            if run.pid and _worker_alive(run.pid, run.id):
                os.kill(run.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian chromium missing: apt-get install -y chromium"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server_url):
    expect.set_options(timeout=30_000)              # reruns on a shared 2-core box can lag
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(server_url)
    # The first script run (workspace, demo, the overview) must finish before a click can
    # navigate; the journeys start on the Data page.
    expect(pg.get_by_role("heading", name="Overview", exact=True)).to_be_visible(
        timeout=180_000)
    expect(pg.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=180_000)
    pg.get_by_test_id("stSidebarNav").get_by_role("link", name="Data").click()
    expect(pg.get_by_role("heading", name="Data", exact=True)).to_be_visible(timeout=90_000)
    expect(pg.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=90_000)
    yield pg
    context.close()


def screenshot(page, name: str, *, width: int = 1400, max_height: int = 5000) -> None:
    """The whole page as `tests/artifacts/<name>`: Streamlit scrolls inside its main block, so
    the viewport is stretched to the content's height for the shot, then put back."""
    height = page.evaluate("""() => Math.max(document.body.scrollHeight, ...Array.from(
        document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer]'),
        e => e.scrollHeight))""")
    before = page.viewport_size
    page.set_viewport_size({"width": width, "height": min(max(height, 600), max_height)})
    page.wait_for_timeout(600)                      # let plotly redraw at the new size
    page.screenshot(path=ARTIFACTS / name, full_page=True)
    page.set_viewport_size(before)
