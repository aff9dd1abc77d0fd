"""`python -m gexcore.workspace.worker ROOT RUN_ID`: run one queued job to its end.

Waits for a job slot, marks the run running, runs its job kind's function with progress written
to the registry (at most every 0.5 s) and a cancel flag polled as often, lets it write into a
temp folder that becomes `runs/<id>/` only on success, and records done, failed or cancelled.
Never imports Streamlit; heavy libraries load only once the job has a slot.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from gexcore.atomic import atomic_write_dir
from gexcore.errors import GexError
from gexcore.progress import Progress
from gexcore.workspace.jobs import (
    _THREAD_VARS,
    JOB_KINDS,
    JobCancelled,
    JobContext,
    JobKind,
    acquire_slot,
    default_max_parallel,
    default_threads,
)
from gexcore.workspace.runs import RunInfo, update_run
from gexcore.workspace.store import Workspace

__all__ = ["main", "run_job"]

logger = logging.getLogger(__name__)

POLL_S = 0.5          # progress writes and cancel checks, at most this often


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gexcore.workspace.worker")
    parser.add_argument("root", type=Path, help="the user's workspace folder")
    parser.add_argument("run_id")
    parser.add_argument("--slots-dir", type=Path, help="job slot locks (default: ROOT/../.slots)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # SIGTERM (an admin's kill, a shutdown) unwinds like an exception, so the run is recorded
    # as failed and its temp folder removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    status = run_job(Workspace(args.root, slots_dir=args.slots_dir), args.run_id)
    return 0 if status in ("done", "cancelled") else 1


def run_job(ws: Workspace, run_id: str, *, max_parallel: int | None = None,
            threads: int | None = None) -> str:
    """Wait for a slot, run the job, record the outcome; returns the final status."""
    with _slot(ws, run_id, max_parallel or default_max_parallel()) as slot:
        if slot is None:                               # cancelled (or failed) while queued
            return ws.run(run_id).status
        with ws.connect() as conn:
            started = update_run(conn, run_id, status="running", started=time.time(),
                                 pid=os.getpid(), host=socket.gethostname(), only_if=("queued",))
        if not started:
            return ws.run(run_id).status
        return _run(ws, ws.run(run_id), threads or default_threads())


@contextmanager
def _slot(ws: Workspace, run_id: str, max_parallel: int) -> Iterator[IO[str] | None]:
    """Hold a job slot for the block; yields None if the run stops being queued meanwhile."""
    waiting = False
    while (slot := acquire_slot(ws.slots_dir, max_parallel)) is None:
        if ws.run(run_id).status != "queued":
            yield None
            return
        if not waiting:
            logger.info("run %s: waiting for a free job slot (%d in use)", run_id, max_parallel)
            waiting = True
        time.sleep(POLL_S)
    try:
        yield slot
    finally:
        slot.close()


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
    """Cap torch and BLAS threads (the env covers libraries torch has not started yet)."""
    for name in _THREAD_VARS:
        os.environ[name] = str(threads)
    import torch

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
