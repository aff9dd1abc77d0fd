"""AppTest fixtures: every test gets its own workspace folder (GEX_WORKSPACE), never ./workspace."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gexcore.workspace import RunInfo, Workspace, open_workspace
from gexcore.workspace.demo import ensure_demo
from tests.workspace.conftest import stop_workers

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def workspace_dir(tmp_path, monkeypatch) -> Path:
    """A fresh base dir for the app's workspaces; stops the workers a test left running."""
    base = tmp_path / "workspaces"
    monkeypatch.setenv("GEX_WORKSPACE", str(base))
    monkeypatch.setenv("GEX_THREADS", "1")
    yield base
    stop_workers(base)                  # every user's workers: supervisors and job processes


@pytest.fixture(scope="module")
def shared_workspace_dir(tmp_path_factory) -> Path:
    """One base dir for a whole test module (override `workspace_dir` with it): the demo is
    added once and the pages' caches and stored arrays carry over between its tests."""
    base = tmp_path_factory.mktemp("workspaces")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEX_WORKSPACE", str(base))
        mp.setenv("GEX_THREADS", "1")
        yield base


def unescaped(markdown: str) -> str:
    """Text as the browser shows it: pages escape user strings for markdown (`ui.common.esc`)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def keyed(at: AppTest, kind: str, prefix: str):
    """The one widget of `kind` whose key starts with `prefix` (pages key widgets by cohort)."""
    (widget,) = [w for w in at.get(kind) if str(w.key).startswith(prefix)]
    return widget


def run_page(page: str, *, timeout: float = 300) -> AppTest:
    """Run the whole app on `page` and check it raised nothing."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def tiny_id(ws, tiny_cohort) -> str:
    """The 60 x 40 simulated cohort, stored in the app's workspace."""
    return ws.add_cohort(tiny_cohort, "tiny")


@pytest.fixture
def ws(workspace_dir) -> Workspace:
    """The workspace the app opens (user "default"), with the demo added as the app adds it."""
    ws = open_workspace(workspace_dir, "default")
    ensure_demo(ws)
    return ws


@pytest.fixture
def open_page(workspace_dir) -> Callable[..., AppTest]:
    """`open_page("views/train.py", cohort_id=..., **session_state)`: run the app on that
    page (with those widget values set first) and check it raised nothing."""

    def _open(page: str | None = None, *, cohort_id: str | None = None, **state) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=180)
        if cohort_id is not None:
            at.session_state["cohort_id"] = cohort_id
        for key, value in state.items():
            at.session_state[key] = value
        if page is not None:
            at.switch_page(page)
        at.run()
        assert not at.exception, at.exception
        return at

    return _open


def wait_for_run(ws: Workspace, run_id: str, timeout: float = 240) -> RunInfo:
    """Poll the registry until the run leaves queued/running."""
    deadline = time.monotonic() + timeout
    while (run := ws.run(run_id)).active:
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run.status} after {timeout} s: "
                                 f"{ws.read_log(run_id)[-2000:]}")
        time.sleep(0.5)
    return run
