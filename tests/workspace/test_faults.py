"""Faults: a stopped (hung) worker, a kill -9 of a worker, a kill -9 of the server mid-job, a
launch cut short. Each job ends failed with its reason (or goes back to the queue), its slot
frees, nothing half-written is left where pages look, and the queue goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from gexcore.workspace import open_workspace, recover, submit
from gexcore.workspace.backends import process_alive
from gexcore.workspace.queue import connect, get_entry, update_entry
from gexcore.workspace.slot import job_slot
from tests.workspace._sleep_job import SleepJob
from tests.workspace.conftest import REPO, finished, settled, wait_for

LONG = SleepJob(steps=100_000, step_s=0.01)


def _entry(base, ws, run_id):
    with connect(base) as conn:
        return get_entry(conn, ws.user, run_id)


def _beating(base, ws, run_id):
    """The run's entry once its job process runs and beats."""
    wait_for(ws, run_id, lambda r: r.status == "running" and r.progress.get("step", 0) > 0,
             timeout=60)
    return _entry(base, ws, run_id)


def _nothing_left(ws, run_id) -> bool:
    runs = ws.root / "runs"
    return (not (runs / run_id).exists() and not (ws.root / "arrays" / run_id).exists()
            and not [p for p in runs.iterdir() if p.name.startswith(f".{run_id}")])


def test_stopped_workers_fail_with_the_reason_and_the_next_job_starts(tmp_workspace,
                                                                     monkeypatch):
    """A SIGSTOPped worker once stayed 'running' with stale progress and held the GPU slot."""
    monkeypatch.setenv("GEX_STALE_S", "2")
    base, ann = tmp_workspace.root.parent, tmp_workspace
    bob = open_workspace(base, "bob")
    first, second = submit(ann, LONG, threads=1), submit(bob, LONG, threads=1)
    third = submit(ann, SleepJob(steps=2), threads=1)

    entry = _beating(base, ann, first)
    os.kill(entry.job_pid, signal.SIGSTOP)     # the job process: its supervisor sees the silence
    run = wait_for(ann, first, finished, timeout=60)
    assert run.status == "failed", run
    assert "no heartbeat from the worker" in run.error and "GEX_STALE_S=2" in run.error
    assert not process_alive(entry.job_pid, entry.job_pid_start) and _nothing_left(ann, first)

    entry = _beating(base, bob, second)
    for pid in (entry.pid, entry.job_pid):     # the whole worker: only a dispatcher pass can tell
        os.kill(pid, signal.SIGSTOP)
    run = wait_for(bob, second, finished, timeout=60, poll=lambda: recover(bob))
    assert run.status == "failed" and "no heartbeat from the worker" in run.error, run
    assert not process_alive(entry.pid, entry.pid_start) and _nothing_left(bob, second)

    assert wait_for(ann, third, finished, timeout=60).status == "done"
    assert [(e.user, e.state) for e in settled(base)] == [
        ("tester", "failed"), ("bob", "failed"), ("tester", "done")]


def test_killed_workers_fail_with_the_reason_and_the_next_job_starts(tmp_workspace):
    base, ann = tmp_workspace.root.parent, tmp_workspace
    bob = open_workspace(base, "bob")
    first, second = submit(ann, LONG, threads=1), submit(bob, LONG, threads=1)
    third = submit(ann, SleepJob(steps=2), threads=1)

    entry = _beating(base, ann, first)
    os.kill(entry.job_pid, signal.SIGKILL)     # kill -9 of the job process (as the OOM killer)
    run = wait_for(ann, first, finished, timeout=60)
    assert run.status == "failed" and "killed by SIGKILL" in run.error, run
    assert _nothing_left(ann, first)

    entry = _beating(base, bob, second)
    for pid in (entry.pid, entry.job_pid):     # supervisor and job: nobody left to record it
        os.kill(pid, signal.SIGKILL)
    run = wait_for(bob, second, finished, timeout=60, poll=lambda: recover(bob))
    assert run.status == "failed" and "died without recording an outcome" in run.error, run
    assert _nothing_left(bob, second)

    assert wait_for(ann, third, finished, timeout=60).status == "done"
    assert [e.state for e in settled(base)] == ["failed", "failed", "done"]


_SERVER = """
import signal, sys
from gexcore.workspace import open_workspace, submit
from tests.workspace._sleep_job import SleepJob
for user, steps in (("ann", 60), ("bob", 2), ("cy", 2)):
    submit(open_workspace(sys.argv[1], user), SleepJob(steps=steps, step_s=0.02), threads=1)
print("submitted", flush=True)
signal.pause()                                   # serve until killed
"""


def test_a_killed_server_loses_no_job(tmp_path):
    """kill -9 of the process that queued the jobs (the app) mid-job: the running worker
    finishes and starts the next, and the queue empties in order with nobody polling."""
    base = tmp_path / "base"
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(base)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert server.stdout.readline().strip() == "submitted"
        ann = open_workspace(base, "ann")
        (first,) = ann.runs()
        wait_for(ann, first.id, lambda r: r.status == "running", timeout=60)
        server.kill()
        server.wait()
        entries = settled(base, timeout=60)         # no recover() here: nothing polls
        assert [(e.user, e.state) for e in entries] == [("ann", "done"), ("bob", "done"),
                                                        ("cy", "done")]
        assert [e.started for e in entries] == sorted(e.started for e in entries)
        assert recover(ann) == []                   # the restarted app finds nothing to mend
    finally:
        server.kill()
        server.wait()


def test_a_launch_cut_short_goes_back_to_its_place_in_the_queue(tmp_workspace):
    """The dispatching process died between marking a job `starting` and launching it."""
    base = tmp_workspace.root.parent
    with job_slot(base, "other", "pretrain"):
        first = submit(tmp_workspace, SleepJob(steps=2), threads=1)
        second = submit(tmp_workspace, SleepJob(steps=2), threads=1)
        with connect(base) as conn:                 # as a dispatcher killed mid-pass left it
            update_entry(conn, get_entry(conn, "tester", first).seq, state="starting",
                         started=time.time() - 1000)
    runs = [wait_for(tmp_workspace, r, finished, timeout=60) for r in (first, second)]
    assert [r.status for r in runs] == ["done", "done"]
    assert runs[0].finished <= runs[1].started
    assert [e.state for e in settled(base)] == ["done", "done", "done"]
