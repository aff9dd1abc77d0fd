"""The run registry: one SQLite row per background job, with its status, progress and metrics."""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ACTIVE",
    "RUNS_SCHEMA",
    "STATUSES",
    "RunInfo",
    "Status",
    "get_run",
    "insert_run",
    "list_runs",
    "new_id",
    "update_run",
]

Status = Literal["queued", "running", "done", "failed", "cancelled"]
STATUSES: tuple[str, ...] = Status.__args__
ACTIVE: tuple[str, ...] = ("queued", "running")          # a worker may still change these

RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    params TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    progress TEXT NOT NULL DEFAULT '{}',
    modules TEXT NOT NULL DEFAULT '[]',
    error TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    host TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_kind_status ON runs (kind, status);
"""
_JSON_COLUMNS = ("params", "metrics", "progress", "modules")
_COLUMNS = ("kind", "name", "status", "started", "finished", *_JSON_COLUMNS, "error", "pid",
            "host", "cancel_requested")


@dataclass(frozen=True)
class RunInfo:
    """One run as stored; times are Unix seconds, `progress` holds `Progress` fields + fraction."""

    id: str
    kind: str
    name: str
    status: Status
    created: float
    started: float | None = None
    finished: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    modules: tuple[str, ...] = ()              # imported by the worker to find the task
    error: str = ""
    pid: int | None = None
    host: str = ""
    cancel_requested: bool = False

    @property
    def active(self) -> bool:
        """Queued or running: a worker may still change it."""
        return self.status in ACTIVE

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]; a finished run counts as 1."""
        if self.status == "done":
            return 1.0
        return float(self.progress.get("fraction") or 0.0)

    @property
    def elapsed_s(self) -> float:
        """Seconds since the run started (until it finished); 0 while queued."""
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    @property
    def label(self) -> str:
        return f"{self.name} ({self.kind}, {self.status})"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunInfo:
        data = dict(row)
        for name in _JSON_COLUMNS:
            data[name] = json.loads(data[name])
        data["modules"] = tuple(data["modules"])
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)


def new_id() -> str:
    """Sortable and readable in a folder listing: `20250101-120000-3fa9c2`."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def insert_run(conn: sqlite3.Connection, kind: str, name: str, params: dict[str, Any], *,
               modules: tuple[str, ...] = ()) -> str:
    """Add a queued run and return its id."""
    run_id = new_id()
    conn.execute("INSERT INTO runs (id, kind, name, status, created, params, modules) "
                 "VALUES (?, ?, ?, 'queued', ?, ?, ?)",
                 (run_id, kind, name, time.time(), _dumps(params), _dumps(list(modules))))
    return run_id


def get_run(conn: sqlite3.Connection, run_id: str) -> RunInfo | None:
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else RunInfo.from_row(row)


def list_runs(conn: sqlite3.Connection, kind: str | None = None,
              status: str | tuple[str, ...] | None = None) -> list[RunInfo]:
    """Runs, newest first, optionally of one kind and one or several statuses."""
    where, args = [], []
    if kind is not None:
        where.append("kind = ?")
        args.append(kind)
    if status is not None:
        wanted = (status,) if isinstance(status, str) else tuple(status)
        where.append(f"status IN ({', '.join('?' * len(wanted))})")
        args.extend(wanted)
    sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
    rows = conn.execute(sql + " ORDER BY created DESC, id DESC", args).fetchall()
    return [RunInfo.from_row(row) for row in rows]


def update_run(conn: sqlite3.Connection, run_id: str, *, only_if: tuple[str, ...] | None = None,
               **values: Any) -> bool:
    """Set columns of one run; with `only_if`, only while its status is one of those.

    The status guard makes each transition one atomic statement, so a worker finishing and
    `recover` failing the same run cannot both win. Returns whether the row changed.
    """
    unknown = set(values) - set(_COLUMNS)
    if unknown:
        raise ValueError(f"runs has no column(s) {', '.join(sorted(unknown))}.")
    names = list(values)
    args = [_dumps(values[n]) if n in _JSON_COLUMNS else values[n] for n in names]
    sql = f"UPDATE runs SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?"
    args.append(run_id)
    if only_if is not None:
        sql += f" AND status IN ({', '.join('?' * len(only_if))})"
        args.extend(only_if)
    return conn.execute(sql, args).rowcount > 0


def _dumps(value: Any) -> str:
    """JSON with non-finite floats as null, so every reader (and the browser) can parse it."""
    return json.dumps(_finite(value), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item):      # numpy scalars
        return _finite(value.item())
    return value
