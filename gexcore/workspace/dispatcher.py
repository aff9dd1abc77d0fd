"""The dispatcher: starts the oldest queued jobs while fewer than `max_parallel` hold a slot, and
ends jobs whose worker died or stopped beating.

There is no dispatcher process. `dispatch(base)` is one short pass under an exclusive lock
(`<base>/.dispatch.lock`), and every process that changes the queue runs it: `submit`, each
worker when its job ends, the app's sidebar poll (`recover`, every 2 s), and a waiting `gex`
command. A killed app therefore loses nothing: the queue is on disk, running workers live on
in their own sessions, and the next pass by anyone carries on.

A pass first settles jobs that hold a slot but can no longer run:
- a heartbeat older than `stale_s` (`GEX_STALE_S`; a stopped or frozen worker): its processes
  are killed, the run fails with the reason, the slot frees;
- a worker whose processes are gone on this host (kill -9, out of memory) fails at once;
- a job marked `starting` whose launch never happened (the dispatching process died between
  the two steps) goes back to the queue in its old place.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gexcore.workspace.backends import get_backend, process_alive
from gexcore.workspace.queue import (
    ACTIVE_STATES,
    HOLDING,
    QueueEntry,
    connect,
    entries,
    get_entry,
    update_entry,
)
from gexcore.workspace.runs import ACTIVE, update_run
from gexcore.workspace.settings import JobSettings, job_settings
from gexcore.workspace.store import Workspace, open_workspace

__all__ = [
    "THREAD_VARS",
    "Dispatched",
    "audit",
    "cancel_job",
    "dispatch",
    "fail_run",
    "settle",
    "stale_reason",
    "sweep_temp_dirs",
    "worker_env",
]

logger = logging.getLogger(__name__)

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
LOCK_FILE = ".dispatch.lock"
LOCK_WAIT_S = 10.0
START_GRACE_S = 60.0    # a launched local worker takes its job within this (or stale_s)


@dataclass(frozen=True)
class Dispatched:
    """What one pass did: jobs it started and jobs it ended (failed, requeued or synced)."""

    started: list[QueueEntry] = field(default_factory=list)
    ended: list[QueueEntry] = field(default_factory=list)


def dispatch(base: str | Path, *, max_parallel: int | None = None) -> Dispatched:
    """Settle dead or silent jobs, then start queued ones in submission order while fewer than
    `max_parallel` (default: the settings' `GEX_MAX_PARALLEL`) hold a slot."""
    base = Path(base)
    settings = job_settings(base)
    slots = max_parallel or settings.max_parallel
    result = Dispatched()
    with _lock(base) as locked:
        if not locked:
            return result
        result.ended.extend(_reap(base, settings))
        while (entry := _take_next(base, slots, settings)) is not None:
            if entry.origin == "app":
                entry = _launch(base, entry, settings)
            result.started.append(entry)
    return result


def cancel_job(base: str | Path, user: str, run_id: str, *, by: str | None = None) -> bool:
    """Cancel any user's job (the admin page, `jobs.cancel`): a queued one at once, a running
    one at its next step. Returns False when it had already ended or is unknown."""
    base = Path(base)
    with connect(base) as conn:
        entry = get_entry(conn, user, run_id)
    if entry is None or not entry.active:
        return False
    if entry.origin == "app":
        ws = open_workspace(base, user)
        with ws.connect() as conn:
            cancelled = update_run(conn, run_id, status="cancelled", finished=time.time(),
                                   cancel_requested=1, only_if=("queued",))
            asked = cancelled or update_run(conn, run_id, cancel_requested=1,
                                            only_if=("running",))
    else:
        cancelled, asked = entry.state == "queued", True
    with connect(base) as conn:
        update_entry(conn, entry.seq, cancel_requested=1)
    if cancelled and entry.state != "running":    # a running worker settles its own entry
        settle(base, entry, "cancelled", "cancelled while queued", only_if=("queued",
                                                                              "starting"))
        if entry.state == "starting" and entry.backend not in ("local", ""):
            get_backend(entry.backend, base).cancel(entry)          # e.g. scancel
    audit(base, "job_cancelled", user, run=run_id, kind=entry.kind, by=by or user,
          state=entry.state)
    if cancelled:
        dispatch(base)
    return asked


def settle(base: str | Path, entry: QueueEntry, state: str, reason: str = "", *,
           only_if: tuple[str, ...] = ACTIVE_STATES) -> bool:
    """End a queue entry (frees its slot); returns whether it was still open."""
    with connect(base) as conn:
        return update_entry(conn, entry.seq, state=state, finished=time.time(), reason=reason,
                            only_if=only_if)


def fail_run(ws: Workspace, run_id: str, reason: str) -> bool:
    """Fail a queued or running registry run and remove what it left; False if it had ended."""
    with ws.connect() as conn:
        changed = update_run(conn, run_id, status="failed", finished=time.time(), error=reason,
                             only_if=ACTIVE)
    if changed:
        ws.delete_arrays(run_id)                   # nothing half-done stays where pages look
        shutil.rmtree(ws.run_dir(run_id), ignore_errors=True)
        sweep_temp_dirs(ws, run_id)
        logger.warning("run %s failed: %s", run_id, reason)
    return changed


def sweep_temp_dirs(ws: Workspace, run_id: str | None = None) -> None:
    """Remove `runs/.<id>.*.tmp|old` folders of runs (or of `run_id`) no worker writes any more."""
    active = {run.id for run in ws.runs(status=ACTIVE)} if run_id is None else set()
    for path in (ws.root / "runs").glob(f".{run_id}.*" if run_id else ".*"):
        owner = path.name.lstrip(".").split(".")[0]
        if path.is_dir() and path.suffix in (".tmp", ".old") and owner not in active:
            shutil.rmtree(path, ignore_errors=True)


def stale_reason(silent_s: float, settings: JobSettings) -> str:
    return (f"no heartbeat from the worker for {silent_s:.0f} s (GEX_STALE_S="
            f"{settings.stale_s:g}): it hung or was stopped, so it was killed and its slot "
            "freed; see the run's log.")


def worker_env(threads: int) -> dict[str, str]:
    """A worker's environment: torch/BLAS capped at `threads` before any library starts."""
    return {**os.environ, "GEX_THREADS": str(threads),
            **{name: str(threads) for name in THREAD_VARS}}


def audit(base: Path, event: str, user: str, **fields: object) -> None:
    """One line in the server's audit log; an unwritable log never loses the job."""
    from gexcore.workspace import audit as log

    log.record(event, user, base=base, **fields)


# -- one pass ------------------------------------------------------------------------------
@contextmanager
def _lock(base: Path) -> Iterator[bool]:
    """The dispatch lock; yields False when another pass held it for LOCK_WAIT_S (a stopped
    or stuck process): this pass is skipped, and the next one (2 s later at most, from any
    open sidebar) tries again, so no page ever hangs on it."""
    base.mkdir(parents=True, exist_ok=True)
    with (base / LOCK_FILE).open("a") as f:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    logger.warning("dispatch lock %s busy for %.0f s; skipping this pass",
                                   f.name, LOCK_WAIT_S)
                    yield False
                    return
                time.sleep(0.01)                  # passes take milliseconds
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _take_next(base: Path, slots: int, settings: JobSettings) -> QueueEntry | None:
    """Mark the oldest queued job as starting (a gex command's as running: it runs itself)."""
    with connect(base) as conn:
        if len(entries(conn, HOLDING)) >= slots:
            return None
        waiting = entries(conn, ("queued",))
        if not waiting:
            return None
        entry = waiting[0]
        cli = entry.origin == "cli"
        update_entry(conn, entry.seq, state="running" if cli else "starting",
                     started=time.time(), heartbeat=None if not cli else entry.heartbeat,
                     backend="attached" if cli else settings.jobs,
                     host=entry.host if cli else socket.gethostname(), only_if=("queued",))
        return get_entry(conn, entry.user, entry.run_id)


def _launch(base: Path, entry: QueueEntry, settings: JobSettings) -> QueueEntry:
    ws = open_workspace(base, entry.user)
    backend = get_backend(entry.backend, base)
    try:
        handle = backend.start(entry, worker_env(entry.threads), ws.log_path(entry.run_id),
                               settings)
    except (OSError, ImportError, RuntimeError, ValueError, subprocess.SubprocessError) as err:
        reason = f"could not start the worker ({entry.backend}): {err}"
        fail_run(ws, entry.run_id, reason)
        settle(base, entry, "failed", reason)
        return entry
    with connect(base) as conn:
        update_entry(conn, entry.seq, handle=handle)
    logger.info("started %s run %s of %s (%s %s)", entry.kind, entry.run_id, entry.user,
                entry.backend, handle)
    return entry


def _reap(base: Path, settings: JobSettings) -> list[QueueEntry]:
    now, here, ended = time.time(), socket.gethostname(), []
    with connect(base) as conn:
        holding = entries(conn, HOLDING)
        waiting_cli = [e for e in entries(conn, ("queued",)) if e.origin == "cli"]
    for entry in waiting_cli:                    # a gex command that gave up waiting
        if (entry.host == here and not process_alive(entry.pid, entry.pid_start)
                and settle(base, entry, "cancelled", "the waiting gex command exited")):
            ended.append(entry)
    for entry in holding:
        if _reap_one(base, entry, settings, now, here):
            ended.append(entry)
    return ended


def _reap_one(base: Path, entry: QueueEntry, settings: JobSettings, now: float,
              here: str) -> bool:
    run = None
    if entry.origin == "app":
        run = _run_status(base, entry)
        if run is None:
            return settle(base, entry, "failed", "the run was deleted from its workspace")
    local = entry.host == here
    owner_alive = local and process_alive(entry.pid, entry.pid_start)
    child_alive = local and process_alive(entry.job_pid, entry.job_pid_start)
    if run is not None and run["status"] not in ACTIVE and not owner_alive:
        return settle(base, entry, run["status"], run["error"])      # its worker died after
    silent = now - max(entry.heartbeat or 0.0, entry.started or 0.0)
    if entry.state == "starting" and entry.pid is None:              # launched, not yet taken
        if not entry.handle:
            # The process that dispatched it died before launching: back in its old place.
            return silent > settings.stale_s and _requeue(base, entry)
        if entry.backend == "local" and silent > max(settings.stale_s, START_GRACE_S):
            return _fail(base, entry, f"the worker did not start within {silent:.0f} s; "
                                      "it was killed. See the run's log.", kill=True)
        reason = get_backend(entry.backend, base).ended(entry)
        return reason is not None and _fail(base, entry, reason, kill=False)
    if silent > settings.stale_s:
        return _fail(base, entry, stale_reason(silent, settings), kill=True)
    if local and not owner_alive and not child_alive:
        what = "worker" if entry.origin == "app" else "gex command"
        return _fail(base, entry, f"the {what} (pid {entry.pid}) died without recording an "
                                  "outcome (killed, or out of memory); see the run's log.",
                     kill=False)
    return False


def _run_status(base: Path, entry: QueueEntry) -> dict | None:
    """The registry's status and error of an app job, read only (every pass reads these)."""
    path = Path(base) / entry.user / "workspace.sqlite"
    if not path.exists():
        return None
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)) as conn:
        row = conn.execute("SELECT status, error FROM runs WHERE id = ?",
                           (entry.run_id,)).fetchone()
    return None if row is None else {"status": row[0], "error": row[1]}


def _requeue(base: Path, entry: QueueEntry) -> bool:
    with connect(base) as conn:
        changed = update_entry(conn, entry.seq, state="queued", started=None, backend="",
                               host="", only_if=("starting",))
    if changed:
        logger.warning("run %s: its launch was interrupted; back in the queue", entry.run_id)
    return changed


def _fail(base: Path, entry: QueueEntry, reason: str, *, kill: bool) -> bool:
    if kill:
        _kill(base, entry)
    if entry.origin == "app":
        ws = open_workspace(base, entry.user)
        if not fail_run(ws, entry.run_id, reason):          # it ended meanwhile: say how
            run = ws.run(entry.run_id)
            return settle(base, entry, run.status, run.error)
    return settle(base, entry, "failed", reason)


def _kill(base: Path, entry: QueueEntry) -> None:
    """SIGKILL the job's processes on this host (a stopped process cannot catch it), and
    cancel it at the backend (scancel)."""
    if entry.host == socket.gethostname():
        launched = int(entry.handle) if entry.backend == "local" and entry.handle else None
        for pid, token, needle in ((entry.pid, entry.pid_start, ""),
                                   (entry.job_pid, entry.job_pid_start, ""),
                                   (launched, "", entry.run_id)):
            if pid and pid != os.getpid() and process_alive(pid, token, needle=needle):
                os.kill(pid, signal.SIGKILL)
    if entry.backend not in ("local", "attached", ""):
        get_backend(entry.backend, base).cancel(entry)
