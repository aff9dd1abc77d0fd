"""Workspace fixtures: an isolated base dir per test, and teardown that stops stray workers."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from gexcore.workspace import ACTIVE, Workspace, all_jobs, open_workspace
from gexcore.workspace.backends import process_alive
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
    stop_workers(ws.root.parent)


def stop_workers(base: Path) -> None:
    """SIGKILL the workers of every job still active under `base` (only this test's: the base
    dir is the test's own), and any stopped ones."""
    for entry in all_jobs(base, active_only=True):
        launched = int(entry.handle) if entry.backend == "local" and entry.handle else None
        for pid, token, needle in ((entry.pid, entry.pid_start, ""),
                                   (entry.job_pid, entry.job_pid_start, ""),
                                   (launched, "", entry.run_id)):
            if pid and pid != os.getpid() and process_alive(pid, token, needle=needle):
                os.kill(pid, signal.SIGKILL)
    for root in Path(base).iterdir() if Path(base).is_dir() else ():
        if (root / "workspace.sqlite").exists():
            for run in Workspace(root).runs(status=ACTIVE):
                if run.pid and run.pid != os.getpid() and _worker_alive(run.pid, run.id):
                    os.kill(run.pid, signal.SIGKILL)


def wait_for(ws: Workspace, run_id: str, done, timeout: float = 120.0, *, poll=None):
    """Poll the registry until `done(run)` holds; returns that run. `poll()` runs each round
    (e.g. `recover(ws)`, as the app's sidebar does)."""
    deadline = time.monotonic() + timeout
    while True:
        if poll is not None:
            poll()
        run = ws.run(run_id)
        if done(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; run is {run}\nlog:\n{ws.read_log(run_id)}")
        time.sleep(0.1)


def settled(base: Path, timeout: float = 60.0, *, poll=None) -> list:
    """The queue once no job in it is active (a worker settles its entry after its run's
    outcome is recorded, as its last step)."""
    deadline = time.monotonic() + timeout
    while True:
        entries = all_jobs(base)
        if not any(e.active for e in entries):
            return entries
        if time.monotonic() > deadline:
            raise AssertionError(f"queue still busy: {[e.label for e in entries]}")
        if poll is not None:
            poll()
        time.sleep(0.05)


def finished(run) -> bool:
    return not run.active


def queue(ws: Workspace, job) -> str:
    """Queue a run without starting a worker, so `run_job` runs it in this process."""
    job_kind = job_kind_of(job)
    name = job.describe(ws) if hasattr(job, "describe") else job_kind.kind
    with ws.connect() as conn:
        return insert_run(conn, job_kind.kind, name, asdict(job), modules=job_kind.modules)
