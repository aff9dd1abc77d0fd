"""Where a dispatched job runs: a local worker process, or a Slurm job through submitit.

Both start the same code, `gexcore.workspace.worker.supervise`, which takes the queued job,
forks the process that runs it, watches its heartbeat and records the outcome in the user's
registry, so run records, progress and cancel work the same on every backend.

- `local` (`GEX_JOBS=local`, the default): `python -m gexcore.workspace.worker` in its own
  session, so a restart of the app leaves it running.
- `slurm` (`GEX_JOBS=slurm`): `submitit.AutoExecutor(cluster="slurm")` with the `[slurm]`
  settings (partition, GPUs, time limit; `gexcore.workspace.settings`). The base dir must be
  on a file system the compute nodes share.
- `submitit-local`: the same submitit path through submitit's local executor, on this
  machine: for trying a cluster setup, and for the tests.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

from gexcore.workspace.queue import QueueEntry
from gexcore.workspace.settings import JobSettings

__all__ = ["Backend", "LocalBackend", "SubmititBackend", "get_backend", "process_alive"]

logger = logging.getLogger(__name__)

# Slurm states after which a job runs no more (sacct's names).
_SLURM_ENDED = ("BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
                "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "TIMEOUT")
_LOCAL_ENDED = ("FINISHED", "INTERRUPTED", "NO")      # submitit LocalJob.state
# submitit's shared parameters; any other [slurm] setting is passed as slurm_<name>.
_GENERIC = ("timeout_min", "mem_gb", "nodes", "cpus_per_task", "gpus_per_node",
            "tasks_per_node", "name", "stderr_to_stdout")


class Backend(Protocol):
    """What the dispatcher needs of a backend."""

    name: str

    def start(self, entry: QueueEntry, env: dict[str, str], log: Path,
              settings: JobSettings) -> str:
        """Launch the worker of `entry`; returns a handle (a pid, a Slurm job id)."""

    def ended(self, entry: QueueEntry) -> str | None:
        """Why a launched job that never took its entry is over, or None if it may still run."""

    def cancel(self, entry: QueueEntry) -> None:
        """Stop a launched job at the backend's level (scancel); processes on this host are
        stopped by the dispatcher itself."""


class LocalBackend:
    """Worker processes on this machine."""

    name = "local"

    def __init__(self, base: Path):
        self.base = Path(base).resolve()
        self._children: list[subprocess.Popen] = []    # kept so finished ones get reaped

    def start(self, entry: QueueEntry, env: dict[str, str], log: Path,
              settings: JobSettings) -> str:
        cmd = [sys.executable, "-m", "gexcore.workspace.worker", str(self.base), entry.user,
               entry.run_id]
        self._reap()
        with log.open("ab") as out:
            # Own session: a Ctrl-C or restart of the app does not kill the job.
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._children.append(proc)
        return str(proc.pid)

    def ended(self, entry: QueueEntry) -> str | None:
        self._reap()
        if entry.handle and not process_alive(int(entry.handle)):
            return "the worker exited before it took the job; see the run's log."
        return None

    def cancel(self, entry: QueueEntry) -> None:
        """Nothing beyond the processes, which the dispatcher kills."""

    def _reap(self) -> None:
        self._children[:] = [p for p in self._children if p.poll() is None]


class SubmititBackend:
    """Jobs through submitit: `cluster="slurm"` on a cluster, `"local"` on this machine."""

    def __init__(self, cluster: str, base: Path):
        self.cluster, self.base = cluster, Path(base).resolve()
        self.name = "slurm" if cluster == "slurm" else "submitit-local"
        self.folder = self.base / ".submitit"          # pickles and `<job id>_0_log.out`
        self._jobs: dict[str, Any] = {}                 # job id -> submitit Job

    def start(self, entry: QueueEntry, env: dict[str, str], log: Path,
              settings: JobSettings) -> str:
        import submitit

        executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        executor.update_parameters(**self._parameters(entry, settings))
        extra = {k: v for k, v in env.items() if os.environ.get(k) != v}
        # A server that itself runs in a Slurm job must not pass its allocation on.
        with submitit.helpers.clean_env():
            job = executor.submit(_submitit_job, str(self.base), entry.user, entry.run_id,
                                  extra, str(log))
        self._jobs[job.job_id] = job
        logger.info("run %s: submitit %s job %s", entry.run_id, self.cluster, job.job_id)
        return str(job.job_id)

    def ended(self, entry: QueueEntry) -> str | None:
        state = self._state(entry) if entry.handle else None
        if state is None or state.split()[0] not in _SLURM_ENDED + _LOCAL_ENDED:
            return None
        return (f"the {self.name} job {entry.handle} ended ({state}) before it took the job; "
                f"see {self.folder / f'{entry.handle}_0_log.err'}.")

    def cancel(self, entry: QueueEntry) -> None:
        if not entry.handle:
            return
        if (job := self._job(entry)) is not None:
            job.cancel(check=False)        # scancel, or SIGINT to submitit's local controller
        elif process_alive(int(entry.handle)):
            os.kill(int(entry.handle), signal.SIGINT)

    def _job(self, entry: QueueEntry) -> Any:
        """The submitit Job of `entry` (a Slurm job is rebuilt from its id in any process; a
        local one only exists in the process that started it)."""
        job = self._jobs.get(entry.handle)
        if job is None and self.cluster == "slurm":
            import submitit

            job = self._jobs[entry.handle] = submitit.SlurmJob(folder=self.folder,
                                                               job_id=entry.handle)
        return job

    def _state(self, entry: QueueEntry) -> str | None:
        if (job := self._job(entry)) is not None:
            state = job.state                   # sacct (rate-limited), or polls the controller
            return None if state in ("UNKNOWN", "") else state
        return None if process_alive(int(entry.handle)) else "FINISHED"

    @staticmethod
    def _parameters(entry: QueueEntry, settings: JobSettings) -> dict[str, Any]:
        params: dict[str, Any] = {"name": f"gex-{entry.kind}-{entry.user}", "tasks_per_node": 1}
        for key, value in settings.slurm.items():
            key = "additional_parameters" if key == "additional" else key
            params[key if key in _GENERIC else f"slurm_{key}"] = value
        return params


def _submitit_job(base: str, user: str, run_id: str, env: dict[str, str], log: str) -> str:
    """What submitit runs (on a compute node, or locally): the worker's supervisor, with its
    output in the run's log as a local worker's is."""
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    from gexcore.workspace.worker import supervise

    return supervise(Path(base), user, run_id)


_BACKENDS: dict[tuple[str, str], Backend] = {}


def get_backend(name: str, base: str | Path) -> Backend:
    """The backend called `name` for `base` (one object per process, so that it can reap and
    cancel what it started)."""
    key = (name, str(Path(base).resolve()))
    if key not in _BACKENDS:
        if name == "local":
            _BACKENDS[key] = LocalBackend(Path(base))
        elif name in ("slurm", "submitit-local"):
            _BACKENDS[key] = SubmititBackend("slurm" if name == "slurm" else "local", Path(base))
        else:
            raise ValueError(f"unknown job backend {name!r}.")
    return _BACKENDS[key]


def process_alive(pid: int | None, token: str = "", *, needle: str = "") -> bool:
    """Is `pid` running (not dead or a zombie), with start time `token` and `needle` in its
    command line when given (so a reused pid does not pass)?"""
    if pid is None:
        return False
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
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        cmdline = (proc / "cmdline").read_bytes() if needle else b""
    except (FileNotFoundError, ProcessLookupError):
        return False
    if fields[0] in ("Z", "X") or (token and fields[19] != token):
        return False
    return needle.encode() in cmdline
