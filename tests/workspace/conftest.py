"""Workspace fixtures: an isolated base dir per test, and teardown that stops stray workers."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from gexcore.workspace import ACTIVE, Workspace, open_workspace
from gexcore.workspace.jobs import _worker_alive, job_kind_of
from gexcore.workspace.runs import insert_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmp_workspace(tmp_path, monkeypatch) -> Workspace:
    """A fresh workspace under its own base dir (so job slots are not shared between tests)."""
    # Workers import the test job-kind module, so they need the repo root on their path.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO),
                                                                    os.environ.get("PYTHONPATH")])))
    ws = open_workspace(tmp_path / "base", "tester")
    yield ws
    for run in ws.runs(status=ACTIVE):          # only the workers this test started
        if run.pid and _worker_alive(run.pid, run.id):
            os.kill(run.pid, signal.SIGKILL)


def wait_for(ws: Workspace, run_id: str, done, timeout: float = 120.0):
    """Poll the registry until `done(run)` holds; returns that run."""
    deadline = time.monotonic() + timeout
    while True:
        run = ws.run(run_id)
        if done(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; run is {run}\nlog:\n{ws.read_log(run_id)}")
        time.sleep(0.1)


def finished(run) -> bool:
    return not run.active


def queue(ws: Workspace, job) -> str:
    """Queue a run without starting a worker, so `run_job` runs it in this process."""
    job_kind = job_kind_of(job)
    name = job.describe(ws) if hasattr(job, "describe") else job_kind.kind
    with ws.connect() as conn:
        return insert_run(conn, job_kind.kind, name, asdict(job), modules=job_kind.modules)
