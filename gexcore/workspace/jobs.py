"""Background jobs: `submit` a job dataclass and a worker process runs it; `cancel`; `recover`.

A job kind is a frozen dataclass (its fields, nested config dataclasses included, are the run's
`params`, JSON values only) plus a function `fn(job, ctx) -> metrics`, tied together by
`register_job_kind`. The worker finds the kind again by importing the modules recorded with the
run, so a kind registered anywhere works. ("Task" elsewhere means a prediction problem:
classification, survival, imputation.)
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import IO, Any

from gexcore.errors import GexError, InputError
from gexcore.progress import ProgressCallback, StopCallback
from gexcore.workspace.runs import ACTIVE, insert_run, update_run
from gexcore.workspace.store import Workspace, check_name

__all__ = [
    "INTERRUPTED",
    "JOB_KINDS",
    "JobCancelled",
    "JobContext",
    "JobKind",
    "acquire_slot",
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
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_children: list[subprocess.Popen] = []     # kept so finished workers get reaped, not zombies


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
    return _env_int("GEX_MAX_PARALLEL", 1)


def default_threads() -> int:
    """Torch/BLAS threads per job (`GEX_THREADS`, default half the cores): uncapped, two jobs on
    two cores oversubscribe and run 20-50x slower."""
    return _env_int("GEX_THREADS", max(1, (os.cpu_count() or 2) // 2))


def submit(ws: Workspace, job: Any, *, max_parallel: int | None = None,
           threads: int | None = None) -> str:
    """Queue `job` and start its worker process; returns the run id at once.

    A job class may define `check(ws)` (raise `InputError` before anything is queued) and
    `describe(ws) -> str` (the run's name when `job.name` is empty).
    """
    job_kind = job_kind_of(job)
    if hasattr(job, "check"):
        job.check(ws)
    name = getattr(job, "name", "") or (job.describe(ws) if hasattr(job, "describe") else "")
    with ws.connect() as conn:
        run_id = insert_run(conn, job_kind.kind, name or job_kind.kind, asdict(job),
                            modules=job_kind.modules)
    try:
        proc = _start_worker(ws, run_id, max_parallel or default_max_parallel(),
                             threads or default_threads())
    except OSError as err:
        with ws.connect() as conn:
            update_run(conn, run_id, status="failed", finished=time.time(),
                       error=f"could not start the worker: {err}")
        raise GexError(f"could not start a worker process for {job_kind.kind}: {err}") from err
    with ws.connect() as conn:
        update_run(conn, run_id, pid=proc.pid, host=socket.gethostname(), only_if=ACTIVE)
    logger.info("submitted %s run %s (worker pid %d)", job_kind.kind, run_id, proc.pid)
    return run_id


def cancel(ws: Workspace, run_id: str) -> bool:
    """Cancel a queued run at once, or ask a running one to stop at its next step.

    Returns False when the run had already finished.
    """
    ws.run(run_id)                                     # a clear error for an unknown id
    with ws.connect() as conn:
        if update_run(conn, run_id, status="cancelled", finished=time.time(),
                      cancel_requested=1, only_if=("queued",)):
            return True
        return update_run(conn, run_id, cancel_requested=1, only_if=("running",))


def recover(ws: Workspace, *, grace_s: float = 60.0) -> list[str]:
    """Fail queued/running runs whose worker is gone; call when the app starts (cheap enough
    to call on every status poll). Also removes temp folders such runs left. Returns their ids.

    Workers run in their own session, so they outlive an app restart and are left alone.
    A run without a pid yet gets `grace_s` seconds for `submit` to record one.
    """
    _reap()
    here, now, failed = socket.gethostname(), time.time(), []
    for run in ws.runs(status=ACTIVE):
        if run.host and run.host != here:              # another machine's worker: cannot tell
            continue
        dead = (now - run.created > grace_s if run.pid is None
                else not _worker_alive(run.pid, run.id))
        if not dead:
            continue
        with ws.connect() as conn:
            changed = update_run(conn, run.id, status="failed", finished=now,
                                 error=INTERRUPTED, only_if=ACTIVE)
        if changed:
            ws.delete_arrays(run.id)
            failed.append(run.id)
            logger.warning("run %s: %s", run.id, INTERRUPTED)
    _sweep_temp_dirs(ws)
    return failed


def acquire_slot(slots_dir: str | Path, max_parallel: int) -> IO[str] | None:
    """Lock one of `max_parallel` slot files, or return None if all are taken.

    Closing the returned file frees the slot; so does the process dying, however it dies,
    which is why a lock (not a counter in the database) guards the GPU.
    """
    slots_dir = Path(slots_dir)
    slots_dir.mkdir(parents=True, exist_ok=True)
    for i in range(max_parallel):
        f = (slots_dir / f"slot-{i}.lock").open("a+", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n")
        f.flush()
        return f
    return None


def _start_worker(ws: Workspace, run_id: str, max_parallel: int,
                  threads: int) -> subprocess.Popen:
    if max_parallel < 1 or threads < 1:
        raise InputError(f"max_parallel ({max_parallel}) and threads ({threads}) must be >= 1.")
    env = {**os.environ, "GEX_MAX_PARALLEL": str(max_parallel), "GEX_THREADS": str(threads),
           **{name: str(threads) for name in _THREAD_VARS}}
    cmd = [sys.executable, "-m", "gexcore.workspace.worker", str(ws.root.resolve()), run_id,
           "--slots-dir", str(ws.slots_dir.resolve())]
    _reap()
    with ws.log_path(run_id).open("ab") as log:
        # Own session: a Ctrl-C or restart of the app does not kill the job.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _children.append(proc)
    return proc


def _reap() -> None:
    """Collect the exit status of finished workers this process started."""
    _children[:] = [p for p in _children if p.poll() is None]


def _worker_alive(pid: int, run_id: str) -> bool:
    """Is `pid` still our worker for `run_id` (not dead, a zombie, or a reused pid)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True                                    # alive, owned by another account
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        return True                                    # no procfs: trust kill(0)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X") and run_id.encode() in cmdline


def _sweep_temp_dirs(ws: Workspace) -> None:
    """Remove `runs/.<id>.*.tmp|old` folders of runs no worker is writing any more."""
    active = {run.id for run in ws.runs(status=ACTIVE)}
    for path in (ws.root / "runs").glob(".*"):
        run_id = path.name.lstrip(".").split(".")[0]
        if path.is_dir() and path.suffix in (".tmp", ".old") and run_id not in active:
            shutil.rmtree(path, ignore_errors=True)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"environment variable {name}={raw!r}; expected an integer >= 1.")
    return int(raw)
