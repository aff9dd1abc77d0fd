"""Background jobs: `submit` a job dataclass to the server's queue, where a worker runs it in
turn; `cancel`; `recover`.

A job kind is a frozen dataclass (its fields, nested config dataclasses included, are the run's
`params`, JSON values only) plus a function `fn(job, ctx) -> metrics`, tied together by
`register_job_kind`. The worker finds the kind again by importing the modules recorded with the
run, so a kind registered anywhere works. ("Task" elsewhere means a prediction problem:
classification, survival, imputation.)

Every job of every user waits in one queue (`gexcore.workspace.queue`, first come, first
served) and starts when the dispatcher (`gexcore.workspace.dispatcher`) finds a free slot:
at most `GEX_MAX_PARALLEL` run at once, on the backend `GEX_JOBS` names
(`gexcore.workspace.backends`). Per-user limits (`gexcore.workspace.limits`) are checked here.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from gexcore.progress import ProgressCallback, StopCallback
from gexcore.workspace import dispatcher as _dispatch
from gexcore.workspace import limits
from gexcore.workspace.backends import process_alive
from gexcore.workspace.queue import connect as connect_queue
from gexcore.workspace.queue import enqueue, entries
from gexcore.workspace.runs import ACTIVE, insert_run, update_run
from gexcore.workspace.settings import job_settings
from gexcore.workspace.store import Workspace, check_name

__all__ = [
    "INTERRUPTED",
    "JOB_KINDS",
    "JobCancelled",
    "JobContext",
    "JobKind",
    "cancel",
    "default_max_parallel",
    "default_threads",
    "job_kind_of",
    "recover",
    "register_job_kind",
    "submit",
]

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted (server restarted or worker died)"


class JobCancelled(Exception):
    """Raised by a job function once `should_stop()` said stop; the run then ends as cancelled."""


@dataclass(frozen=True)
class JobContext:
    """What a job function gets besides its job."""

    workspace: Workspace
    run_id: str
    out_dir: Path                 # a temp folder that becomes `run_dir(run_id)` on success
    progress: ProgressCallback
    should_stop: StopCallback


JobFn = Callable[[Any, JobContext], "dict[str, Any] | None"]


@dataclass(frozen=True)
class JobKind:
    """One job kind: its dataclass and the function that runs it."""

    kind: str
    job_cls: type
    fn: JobFn

    @property
    def modules(self) -> tuple[str, ...]:
        """Modules the worker imports so that this kind is registered there too."""
        return tuple(dict.fromkeys((self.job_cls.__module__, self.fn.__module__)))


JOB_KINDS: dict[str, JobKind] = {}


def register_job_kind(kind: str, job_cls: type, fn: JobFn) -> JobKind:
    """Make `kind` runnable: `submit(ws, job_cls(...))` then runs `fn(job, ctx)` in a worker.

    `fn` returns a metrics dict (JSON values), raises `JobCancelled` when it stopped early on
    request, and writes files into `ctx.out_dir`.
    """
    check_name(kind, "job kind")
    if not (isinstance(job_cls, type) and is_dataclass(job_cls)):
        raise TypeError(f"job class for {kind!r} must be a dataclass, not {job_cls!r}.")
    JOB_KINDS[kind] = job_kind = JobKind(kind, job_cls, fn)
    return job_kind


def job_kind_of(job: Any) -> JobKind:
    """The registered kind of a job instance."""
    for job_kind in JOB_KINDS.values():
        if type(job) is job_kind.job_cls:
            return job_kind
    raise TypeError(f"{type(job).__name__} is not a registered job class; known kinds: "
                    f"{', '.join(sorted(JOB_KINDS))}.")


def default_max_parallel() -> int:
    """Jobs that may run at once over all users of a base dir (`GEX_MAX_PARALLEL`, default 1:
    one GPU, or a CPU that two trainings would only share)."""
    return job_settings().max_parallel


def default_threads() -> int:
    """Torch/BLAS threads per job (`GEX_THREADS`, default half the cores): uncapped, two jobs on
    two cores oversubscribe and run 20-50x slower."""
    return job_settings().threads_per_job


def submit(ws: Workspace, job: Any, *, max_parallel: int | None = None,
           threads: int | None = None) -> str:
    """Queue `job` in the server's queue and start it if a slot is free; returns the run id at
    once. Refused (`InputError`, naming the limit) over a per-user limit.

    A job class may define `check(ws)` (raise `InputError` before anything is queued) and
    `describe(ws) -> str` (the run's name when `job.name` is empty).
    """
    job_kind = job_kind_of(job)
    if hasattr(job, "check"):
        job.check(ws)
    base = ws.root.parent
    settings = job_settings(base)
    params = asdict(job)
    limits.check_budget(params, settings)
    limits.check_disk(ws.root, settings)
    name = getattr(job, "name", "") or (job.describe(ws) if hasattr(job, "describe") else "")
    with ws.connect() as conn:
        run_id = insert_run(conn, job_kind.kind, name or job_kind.kind, params,
                            modules=job_kind.modules)
    try:
        with connect_queue(base) as conn:           # count and insert in one transaction
            limits.check_queued(conn, ws.user, settings)
            enqueue(conn, ws.user, run_id, job_kind.kind, name=name or job_kind.kind,
                    threads=threads or settings.threads_per_job)
    except BaseException:
        with ws.connect() as conn:                  # no run without its place in the queue
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        raise
    _dispatch.audit(base, "job_submitted", ws.user, run=run_id, kind=job_kind.kind)
    logger.info("queued %s run %s of %s", job_kind.kind, run_id, ws.user)
    _dispatch.dispatch(base, max_parallel=max_parallel)
    return run_id


def cancel(ws: Workspace, run_id: str) -> bool:
    """Cancel a queued run at once, or ask a running one to stop at its next step.

    Returns False when the run had already finished.
    """
    run = ws.run(run_id)                               # a clear error for an unknown id
    if not run.active:
        return False
    if _dispatch.cancel_job(ws.root.parent, ws.user, run_id):
        return True
    with ws.connect() as conn:                         # a run from before the queue existed
        if update_run(conn, run_id, status="cancelled", finished=time.time(),
                      cancel_requested=1, only_if=("queued",)):
            return True
        return update_run(conn, run_id, cancel_requested=1, only_if=("running",))


def recover(ws: Workspace, *, grace_s: float = 60.0) -> list[str]:
    """One dispatcher pass over the whole server (fail jobs whose worker died or hung, start
    queued ones), then fail this workspace's runs that have no place in the queue and no live
    worker; removes temp folders such runs left. Returns the ids of this user's runs it failed.
    Cheap: the app calls it at start and on every sidebar poll.

    A run without a pid or queue entry gets `grace_s` seconds for `submit` to enqueue it.
    """
    base = ws.root.parent
    result = _dispatch.dispatch(base)
    failed = [e.run_id for e in result.ended if e.user == ws.user and e.origin == "app"
              and ws.run(e.run_id).status == "failed"]
    with connect_queue(base) as conn:
        queued = {e.run_id for e in entries(conn, user=ws.user)}
    now = time.time()
    for run in ws.runs(status=ACTIVE):
        if run.id in queued or (run.host and run.host != socket.gethostname()):
            continue
        dead = (now - run.created > grace_s if run.pid is None
                else not _worker_alive(run.pid, run.id))
        if dead and _dispatch.fail_run(ws, run.id, INTERRUPTED):
            failed.append(run.id)
    _dispatch.sweep_temp_dirs(ws)
    return failed


def _worker_alive(pid: int, run_id: str) -> bool:
    """Is `pid` still our worker for `run_id` (not dead, a zombie, or a reused pid)?"""
    return process_alive(pid, needle=run_id)
