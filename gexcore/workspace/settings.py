"""Job settings of one base dir: backend, parallel jobs, heartbeat limit, per-user limits, Slurm.

Each setting comes from its environment variable, else from `<base>/jobs.toml` (or the file
`GEX_JOBS_CONFIG` names), else the default below. The file uses the same names in lower case
without `GEX_`, and a `[slurm]` table of submitit parameters:

```toml
jobs = "slurm"          # GEX_JOBS: local (default), slurm, submitit-local
max_parallel = 2        # GEX_MAX_PARALLEL
max_queued = 5          # GEX_MAX_QUEUED
[slurm]                 # GEX_SLURM_PARTITION, GEX_SLURM_GPUS, GEX_SLURM_TIME_MIN, ...
partition = "gpu"
gpus_per_node = 1
timeout_min = 240
```
A limit of 0 means no limit: epochs and seeds are off until the lab sets them (what is
reasonable depends on its cohorts), at most 5 jobs per user may wait or run, and a workspace
may hold 50 GB. Every process that dispatches (the app, `gex`, a worker) reads
the same file, so set the server's values there rather than in one process's environment.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gexcore.errors import InputError

__all__ = ["BACKENDS", "JobSettings", "job_settings"]

Backend = Literal["local", "slurm", "submitit-local"]
BACKENDS: tuple[str, ...] = Backend.__args__

# (setting, env var, type, default); 0 = no limit for the max_* limits.
_SETTINGS: tuple[tuple[str, str, type, Any], ...] = (
    ("jobs", "GEX_JOBS", str, "local"),
    ("max_parallel", "GEX_MAX_PARALLEL", int, 1),
    ("threads", "GEX_THREADS", int, 0),               # 0: half the cores, decided at use
    ("stale_s", "GEX_STALE_S", float, 120.0),
    ("max_queued", "GEX_MAX_QUEUED", int, 5),
    ("max_epochs", "GEX_MAX_EPOCHS", int, 0),
    ("max_seeds", "GEX_MAX_SEEDS", int, 0),
    ("max_disk_gb", "GEX_MAX_DISK_GB", float, 50.0),
)
# Slurm settings by env var; the file's [slurm] table takes any submitit Slurm parameter.
_SLURM_ENV = {"GEX_SLURM_PARTITION": ("partition", str), "GEX_SLURM_GPUS": ("gpus_per_node", int),
              "GEX_SLURM_TIME_MIN": ("timeout_min", int), "GEX_SLURM_CPUS": ("cpus_per_task", int),
              "GEX_SLURM_MEM_GB": ("mem_gb", float), "GEX_SLURM_ACCOUNT": ("account", str)}
_SLURM_DEFAULTS = {"gpus_per_node": 1, "timeout_min": 240}


@dataclass(frozen=True)
class JobSettings:
    """What the dispatcher, the workers and `submit` obey (see the module docstring)."""

    jobs: Backend = "local"
    max_parallel: int = 1          # jobs running at once over all users (one GPU: 1)
    threads: int = 0               # torch/BLAS threads per job; 0 = half the cores
    stale_s: float = 120.0         # a running job silent this long is failed and killed
    max_queued: int = 5            # a user's jobs queued or running at once
    max_epochs: int = 0            # any `epochs` / `*_epochs` parameter of one job (0: off)
    max_seeds: int = 0             # any `seeds` parameter of one job (0: off)
    max_disk_gb: float = 50.0      # a user's workspace folder, checked at submit
    slurm: dict[str, Any] = field(default_factory=lambda: dict(_SLURM_DEFAULTS))
    source: str = ""               # the config file read, if any

    def __post_init__(self) -> None:
        if self.jobs not in BACKENDS:
            raise InputError(f"GEX_JOBS={self.jobs!r}; expected one of {', '.join(BACKENDS)}.")
        if self.max_parallel < 1:
            raise InputError(f"GEX_MAX_PARALLEL={self.max_parallel}; expected an integer >= 1.")
        if self.stale_s <= 0:
            raise InputError(f"GEX_STALE_S={self.stale_s}; expected seconds > 0.")

    @property
    def threads_per_job(self) -> int:
        """Torch/BLAS threads per job: uncapped, two jobs on two cores oversubscribe and run
        20-50x slower."""
        return self.threads or max(1, (os.cpu_count() or 2) // 2)

    @property
    def heartbeat_s(self) -> float:
        """How often a worker says it is alive: several beats fit in one `stale_s`."""
        return min(10.0, self.stale_s / 4)


def job_settings(base: str | Path | None = None) -> JobSettings:
    """The settings for jobs under `base` (env vars over `<base>/jobs.toml` over defaults)."""
    data, source = _read_file(base)
    values: dict[str, Any] = {}
    for name, env, kind, default in _SETTINGS:
        raw = os.environ.get(env, "").strip()
        if raw:
            values[name] = _parse(env, raw, kind)
        elif name in data:
            values[name] = _parse(f"{source}: {name}", data[name], kind)
        else:
            values[name] = default
    slurm = {**_SLURM_DEFAULTS, **dict(data.get("slurm", {}))}
    for env, (name, kind) in _SLURM_ENV.items():
        if raw := os.environ.get(env, "").strip():
            slurm[name] = _parse(env, raw, kind)
    return JobSettings(**values, slurm=slurm, source=source)


def _read_file(base: str | Path | None) -> tuple[dict[str, Any], str]:
    named = os.environ.get("GEX_JOBS_CONFIG", "").strip()
    path = Path(named) if named else (Path(base) / "jobs.toml" if base is not None else None)
    if path is None or not path.is_file():
        if named:
            raise InputError(f"GEX_JOBS_CONFIG={named!r} is not a file.")
        return {}, ""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), str(path)
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{path}: not valid TOML ({err}).") from err


def _parse(where: str, raw: Any, kind: type) -> Any:
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        what = {int: "an integer", float: "a number"}.get(kind, "text")
        raise InputError(f"{where}={raw!r}; expected {what}.") from None
    if kind in (int, float) and value < 0:
        raise InputError(f"{where}={raw!r}; expected a number >= 0.")
    if kind is int and isinstance(raw, str) and not raw.isdigit():
        raise InputError(f"{where}={raw!r}; expected an integer >= 0.")
    return value
