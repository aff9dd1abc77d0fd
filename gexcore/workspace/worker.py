"""`python -m gexcore.workspace.worker BASE USER RUN_ID`: run one dispatched job to its end.

The process the dispatcher launches is the job's supervisor: it takes its queue entry, forks
the process that runs the job, and watches it. The job process stamps a heartbeat on the
entry every few seconds (a thread), marks the run running, runs its job kind's function with
progress written to the registry (at most every 0.5 s) and a cancel flag polled as often,
lets it write into a temp folder that becomes `runs/<id>/` only on success, and records done,
failed or cancelled. If the job process dies (kill -9, out of memory) or stops beating for
`GEX_STALE_S` (stopped, frozen), the supervisor kills it, fails the run with the reason,
frees the slot and dispatches the next job. Never imports Streamlit; torch loads only with
the job.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import select
import signal
import socket
import sqlite3
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gexcore.atomic import atomic_write_dir
from gexcore.errors import GexError
from gexcore.progress import Progress
from gexcore.workspace.dispatcher import (
    THREAD_VARS,
    dispatch,
    fail_run,
    settle,
    stale_reason,
)
from gexcore.workspace.jobs import JOB_KINDS, JobCancelled, JobContext, JobKind
from gexcore.workspace.queue import Heartbeat, QueueEntry, claim_entry, connect, get_entry
from gexcore.workspace.runs import RunInfo, update_run
from gexcore.workspace.settings import JobSettings, job_settings
from gexcore.workspace.store import Workspace, open_workspace

__all__ = ["main", "run_job", "supervise"]

logger = logging.getLogger(__name__)

POLL_S = 0.5          # progress writes and cancel checks, at most this often


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gexcore.workspace.worker")
    parser.add_argument("base", type=Path, help="the folder holding the workspaces")
    parser.add_argument("user")
    parser.add_argument("run_id")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    status = supervise(args.base, args.user, args.run_id, handle=str(os.getpid()))
    return 0 if status in ("done", "cancelled") else 1


def supervise(base: Path, user: str, run_id: str, *, handle: str = "") -> str:
    """Take the dispatched job, run it in a forked process, watch that process's heartbeat,
    record the outcome, free the slot and dispatch the next job; returns the run's status."""
    settings, ws = job_settings(base), open_workspace(base, user)
    handle = handle or _submitit_job_id()
    with connect(base) as conn:
        entry = claim_entry(conn, user, run_id, handle)
    if entry is None:                      # cancelled, requeued or taken meanwhile
        logger.info("run %s: no longer waiting for this worker; nothing to do", run_id)
        return ws.run(run_id).status
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:                         # the job process
        code = 1
        try:
            code = _job_process(base, ws, entry, settings)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    # An admin's `kill PID` of the supervisor stops the job cleanly (it records "failed").
    signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(child, signal.SIGTERM))
    status, silent = _watch(base, entry, child, settings)
    run = ws.run(run_id)
    if run.active:                         # the job process ended without recording it
        fail_run(ws, run_id, stale_reason(silent, settings) if silent is not None
                 else _exit_reason(status))
        run = ws.run(run_id)
    settle(base, entry, run.status, run.error)
    logger.info("run %s %s%s", run_id, run.status, f": {run.error}" if run.error else "")
    dispatch(base)                         # the next job starts as soon as the slot is free
    return run.status


def run_job(ws: Workspace, run_id: str, *, threads: int | None = None) -> str:
    """Mark a queued run running, run its job here, record the outcome; returns the status."""
    with ws.connect() as conn:
        started = update_run(conn, run_id, status="running", started=time.time(),
                             pid=os.getpid(), host=socket.gethostname(), only_if=("queued",))
    if not started:                        # cancelled (or failed) while queued
        return ws.run(run_id).status
    return _run(ws, ws.run(run_id), threads or job_settings(ws.root.parent).threads_per_job)


def _job_process(base: Path, ws: Workspace, entry: QueueEntry, settings: JobSettings) -> int:
    # SIGTERM (an admin's kill, a shutdown) unwinds like an exception, so the run is recorded
    # as failed and its temp folder removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with Heartbeat(base, entry.seq, settings.heartbeat_s):
        status = run_job(ws, entry.run_id, threads=entry.threads)
    return 0 if status in ("done", "cancelled") else 1


def _watch(base: Path, entry: QueueEntry, child: int,
           settings: JobSettings) -> tuple[int, float | None]:
    """Wait for the job process; kill it once its heartbeat is `stale_s` old. Returns its wait
    status, and how long it had been silent when it was killed (None if it ended itself)."""
    since, beat = time.time(), 0.0
    pidfd = _pidfd(child)
    try:
        while True:
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid:
                return status, None
            if pidfd is not None:
                select.select([pidfd], [], [], settings.heartbeat_s)     # wakes at its exit
            else:
                time.sleep(min(0.2, settings.heartbeat_s))
            try:
                with connect(base) as conn:
                    now = get_entry(conn, entry.user, entry.run_id)
                beat = (now.heartbeat if now else None) or beat
            except sqlite3.OperationalError:            # locked for 30 s: look again later
                pass
            silent = time.time() - max(since, beat)
            if silent > settings.stale_s:
                logger.error("run %s: %s", entry.run_id, stale_reason(silent, settings))
                os.kill(child, signal.SIGKILL)              # a stopped process cannot catch it
                return os.waitpid(child, 0)[1], silent
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits (Linux 5.3+), else None."""
    try:
        return os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    except OSError:
        return None


def _exit_reason(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (kill -9, or out of memory)" if -code == signal.SIGKILL else ""
        return f"the job process was killed by {name}{hint}; see the run's log."
    return f"the job process exited with code {code} before recording an outcome; see the log."


def _submitit_job_id() -> str:
    """The job id submitit gave the job this runs in ("" outside submitit)."""
    try:
        import submitit
    except ImportError:
        return ""
    try:
        return str(submitit.JobEnvironment().job_id)
    except RuntimeError:                   # not inside a submitit job
        return ""


def _run(ws: Workspace, run: RunInfo, threads: int) -> str:
    report, stop = _ProgressWriter(ws, run.id), _StopFlag(ws, run.id)
    metrics: dict[str, Any] = {}
    logger.info("run %s: %s %s", run.id, run.kind, run.params)
    try:
        _cap_threads(threads)
        job_kind = _load_kind(run)
        job = job_kind.job_cls(**run.params)          # nested configs: the job rebuilds them

        def write(tmp: Path) -> None:
            ctx = JobContext(ws, run.id, tmp, report, stop)
            metrics.update(job_kind.fn(job, ctx) or {})

        atomic_write_dir(ws.run_dir(run.id), write)
    except JobCancelled:
        return _finish(ws, run.id, "cancelled", report)
    except GexError as err:
        logger.error("run %s failed: %s", run.id, err)
        return _finish(ws, run.id, "failed", report, error=str(err).strip())
    except Exception as err:
        logger.exception("run %s failed", run.id)
        return _finish(ws, run.id, "failed", report, error=_summary(err))
    except (KeyboardInterrupt, SystemExit):
        _finish(ws, run.id, "failed", report, error="the worker was stopped by a signal")
        raise
    return _finish(ws, run.id, "done", report, metrics=metrics)


def _load_kind(run: RunInfo) -> JobKind:
    for module in run.modules:
        importlib.import_module(module)
    if run.kind not in JOB_KINDS:
        raise GexError(f"job kind {run.kind!r} is not registered (imported "
                       f"{', '.join(run.modules) or 'nothing'}).")
    return JOB_KINDS[run.kind]


def _finish(ws: Workspace, run_id: str, status: str, report: _ProgressWriter, *,
            error: str = "", metrics: dict[str, Any] | None = None) -> str:
    progress = report.snapshot()
    if status == "done":
        progress["fraction"] = 1.0
    else:
        ws.delete_arrays(run_id)                       # nothing half-done stays behind
    with ws.connect() as conn:
        update_run(conn, run_id, status=status, finished=time.time(), error=error,
                   metrics=metrics or {}, progress=progress, only_if=("running",))
    logger.info("run %s %s%s", run_id, status, f": {error}" if error else "")
    return status


def _summary(err: Exception) -> str:
    """One line for the user: the error, and where it came from; the log has the rest."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    if frames := traceback.extract_tb(err.__traceback__):
        last = frames[-1]
        text += f" (at {Path(last.filename).name}:{last.lineno} in {last.name})"
    return text + "; see the run's log for the traceback."


def _cap_threads(threads: int) -> None:
    """Cap torch and BLAS threads: the environment covers libraries not loaded yet (torch
    reads OMP_NUM_THREADS when a job imports it), `set_num_threads` a torch already loaded."""
    for name in THREAD_VARS:
        os.environ[name] = str(threads)
    if (torch := sys.modules.get("torch")) is not None:
        torch.set_num_threads(threads)


class _ProgressWriter:
    """Progress callback that writes to the registry at most every POLL_S seconds."""

    def __init__(self, ws: Workspace, run_id: str):
        self.ws, self.run_id = ws, run_id
        self.latest: Progress | None = None
        self.written = 0.0

    def __call__(self, p: Progress) -> None:
        self.latest = p
        now = time.monotonic()
        # Always write the first, final and labelled reports, so the bar never stalls short.
        if now - self.written >= POLL_S or p.message or p.step >= p.total_steps:
            self.written = now
            with self.ws.connect() as conn:
                update_run(conn, self.run_id, progress=self.snapshot(), only_if=("running",))

    def snapshot(self) -> dict[str, Any]:
        if self.latest is None:
            return {}
        return {**asdict(self.latest), "fraction": self.latest.fraction, "updated": time.time()}


class _StopFlag:
    """`should_stop` callback: reads the run's cancel flag at most every POLL_S seconds."""

    def __init__(self, ws: Workspace, run_id: str):
        self.ws, self.run_id = ws, run_id
        self.stop, self.checked = False, 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.stop and now - self.checked >= POLL_S:
            self.checked = now
            self.stop = self.ws.run(self.run_id).cancel_requested
        return self.stop


if __name__ == "__main__":
    sys.exit(main())
