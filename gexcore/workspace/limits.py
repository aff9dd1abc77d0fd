"""Per-user limits, checked when a job is submitted: each refusal names the limit and its fix.

- jobs queued or running per user (`GEX_MAX_QUEUED`), counted over the app and `gex`;
- epochs and seeds of one job (`GEX_MAX_EPOCHS`, `GEX_MAX_SEEDS`): any parameter named
  `epochs` or ending in `_epochs`, and any named `seeds`, nested configs included;
- disk used by the user's workspace folder (`GEX_MAX_DISK_GB`).

A limit of 0 switches it off; `gexcore.workspace.settings` says where limits are set.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gexcore.errors import InputError
from gexcore.workspace.queue import ACTIVE_STATES
from gexcore.workspace.settings import JobSettings

__all__ = ["check_budget", "check_disk", "check_queued", "disk_gb", "job_budget"]

_GB = 1024 ** 3
_FIX = "or ask the admin to raise {var} (environment or jobs.toml in the workspace folder)"


def job_budget(params: dict[str, Any]) -> dict[str, int]:
    """The largest epoch count and seed count among a job's parameters (0 when none)."""
    budget = {"epochs": 0, "seeds": 0}
    for key, value in _numbers(params):
        if key == "epochs" or key.endswith("_epochs"):
            budget["epochs"] = max(budget["epochs"], value)
        elif key == "seeds":
            budget["seeds"] = max(budget["seeds"], value)
    return budget


def check_budget(params: dict[str, Any], settings: JobSettings) -> None:
    """Refuse a job with more epochs or seeds than one job may have."""
    budget = job_budget(params)
    for what, limit, var in (("epochs", settings.max_epochs, "GEX_MAX_EPOCHS"),
                             ("seeds", settings.max_seeds, "GEX_MAX_SEEDS")):
        if limit and budget[what] > limit:
            raise InputError(f"this job asks for {budget[what]:,} {what}; one job may have at "
                             f"most {limit:,} ({var}={limit}). Use fewer {what}, "
                             + _FIX.format(var=var) + ".")


def check_queued(conn: sqlite3.Connection, user: str, settings: JobSettings) -> None:
    """Refuse a new job while `user` has `max_queued` jobs queued or running (call inside the
    transaction that enqueues, so two submits at once cannot both pass)."""
    limit = settings.max_queued
    if not limit:
        return
    (count,) = conn.execute(
        f"SELECT COUNT(*) FROM jobs WHERE user = ? AND state IN "
        f"({', '.join('?' * len(ACTIVE_STATES))})", (user, *ACTIVE_STATES)).fetchone()
    if count >= limit:
        raise InputError(f"{user!r} already has {count} job(s) queued or running; the limit is "
                         f"{limit} per user (GEX_MAX_QUEUED={limit}). Wait for one to finish "
                         "or cancel one, " + _FIX.format(var="GEX_MAX_QUEUED") + ".")


def check_disk(root: Path, settings: JobSettings) -> None:
    """Refuse a new job while the workspace folder `root` holds more than `max_disk_gb`."""
    limit = settings.max_disk_gb
    if not limit:
        return
    used = disk_gb(root)
    if used >= limit:
        raise InputError(f"workspace {root.name!r} uses {used:,.1f} GB; the limit is "
                         f"{limit:g} GB per user (GEX_MAX_DISK_GB={limit:g}). Delete runs or "
                         "cohorts you no longer need, " + _FIX.format(var="GEX_MAX_DISK_GB")
                         + ".")


def disk_gb(root: Path) -> float:
    """Gigabytes (GiB) of the files under `root`."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:                  # removed while we looked
                continue
    return total / _GB


def _numbers(value: Any, key: str = "") -> Iterator[tuple[str, int]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, str(k))
    elif isinstance(value, int) and not isinstance(value, bool):
        yield key, value
