"""The worker: outcomes recorded in-process, and a real worker stopped by a signal."""

from __future__ import annotations

import os
import signal

from gexcore.progress import Progress
from gexcore.workspace.runs import insert_run
from gexcore.workspace.worker import _ProgressWriter, run_job
from tests.workspace._sleep_job import SleepJob
from tests.workspace.conftest import queue, wait_for


def _no_temp_dirs(ws) -> bool:
    return [p.name for p in (ws.root / "runs").iterdir() if p.name.startswith(".")] == []


def test_done_run_has_outputs_metrics_and_full_progress(tmp_workspace):
    run_id = queue(tmp_workspace, SleepJob(steps=3))
    assert run_job(tmp_workspace, run_id, threads=1) == "done"
    run = tmp_workspace.run(run_id)
    assert run.metrics == {"steps": 3} and run.error == ""
    assert run.progress["step"] == 3 and run.progress["fraction"] == 1.0
    assert run.pid == os.getpid() and run.started <= run.finished
    assert (tmp_workspace.run_dir(run_id) / "result.txt").exists()


def test_gex_error_fails_with_its_message_and_leaves_nothing(tmp_workspace):
    run_id = queue(tmp_workspace, SleepJob(fail="gex"))
    assert run_job(tmp_workspace, run_id, threads=1) == "failed"
    run = tmp_workspace.run(run_id)
    assert run.error == "the sleep job was told to fail."
    assert not tmp_workspace.run_dir(run_id).exists() and _no_temp_dirs(tmp_workspace)


def test_unexpected_error_fails_with_a_one_line_summary(tmp_workspace):
    run_id = queue(tmp_workspace, SleepJob(fail="crash"))
    assert run_job(tmp_workspace, run_id, threads=1) == "failed"
    error = tmp_workspace.run(run_id).error
    assert error.startswith("ZeroDivisionError: division by zero (at _sleep_job.py:")
    assert "\n" not in error and "log" in error
    assert not tmp_workspace.run_dir(run_id).exists() and _no_temp_dirs(tmp_workspace)


def test_unregistered_kind_fails_clearly(tmp_workspace):
    with tmp_workspace.connect() as conn:
        run_id = insert_run(conn, "mystery", "r", {}, modules=())
    assert run_job(tmp_workspace, run_id, threads=1) == "failed"
    assert "job kind 'mystery' is not registered" in tmp_workspace.run(run_id).error


def test_cancel_flag_stops_the_job(tmp_workspace):
    from gexcore.workspace import cancel

    run_id = queue(tmp_workspace, SleepJob(steps=1000))
    with tmp_workspace.connect() as conn:       # as if cancel() arrived after it started
        conn.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))
    assert run_job(tmp_workspace, run_id, threads=1) == "cancelled"
    assert not tmp_workspace.run_dir(run_id).exists() and _no_temp_dirs(tmp_workspace)
    assert not cancel(tmp_workspace, run_id)


def test_a_run_no_longer_queued_is_not_started(tmp_workspace):
    run_id = queue(tmp_workspace, SleepJob())
    with tmp_workspace.connect() as conn:
        conn.execute("UPDATE runs SET status = 'cancelled' WHERE id = ?", (run_id,))
    assert run_job(tmp_workspace, run_id, threads=1) == "cancelled"
    assert tmp_workspace.run(run_id).started is None


def test_progress_writes_are_throttled_but_the_last_one_lands(tmp_workspace):
    run_id = queue(tmp_workspace, SleepJob())
    with tmp_workspace.connect() as conn:
        conn.execute("UPDATE runs SET status = 'running' WHERE id = ?", (run_id,))
    writer = _ProgressWriter(tmp_workspace, run_id)
    for step in range(1, 100):                  # a burst: only the first lands
        writer(Progress("pretrain", step, 100))
    assert tmp_workspace.run(run_id).progress["step"] == 1
    writer(Progress("pretrain", 100, 100))      # the final report always lands
    assert tmp_workspace.run(run_id).progress["fraction"] == 1.0


def test_sigterm_marks_the_run_failed_and_removes_temp_output(tmp_workspace):
    from gexcore.workspace import submit

    run_id = submit(tmp_workspace, SleepJob(steps=100_000, step_s=0.01), threads=1)
    run = wait_for(tmp_workspace, run_id, lambda r: r.progress.get("step", 0) > 0, timeout=60)
    os.kill(run.pid, signal.SIGTERM)
    run = wait_for(tmp_workspace, run_id, lambda r: not r.active, timeout=30)
    assert run.status == "failed" and "stopped by a signal" in run.error
    assert not tmp_workspace.run_dir(run_id).exists() and _no_temp_dirs(tmp_workspace)
