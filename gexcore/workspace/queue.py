"""The server-wide job queue: one SQLite table over all users of a base dir, in submission order.

```
<base>/queue.sqlite     jobs: user, run id, kind, state, submitted, started, heartbeat, ...
```
Every job of every user waits here, whether it came from the app (a run in the user's
registry, `origin='app'`) or from `gex pretrain`/`gex evaluate` (`origin='cli'`: the gex
process itself runs once granted a slot). States: `queued` -> `starting` (a worker was
launched) -> `running` (the worker took it) -> `done`/`failed`/`cancelled`. `starting` and
`running` hold a slot. Jobs start in `seq` order, which is submission order over all users
(first come, first served); the per-user limits keep one user from filling the queue.
`gexcore.workspace.dispatcher` moves jobs between states; this module stores and reads them.
"""

from __future__ import annotations

import heapq
import os
import socket
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

from gexcore.workspace import db

__all__ = [
    "ACTIVE_STATES",
    "HOLDING",
    "QUEUE_FILE",
    "WAITING",
    "Heartbeat",
    "QueueEntry",
    "all_jobs",
    "claim_entry",
    "connect",
    "enqueue",
    "entries",
    "get_entry",
    "median_durations",
    "proc_token",
    "queue_position",
    "update_entry",
]

QueueState = Literal["queued", "starting", "running", "done", "failed", "cancelled"]
QUEUE_FILE = "queue.sqlite"
WAITING: tuple[str, ...] = ("queued",)
HOLDING: tuple[str, ...] = ("starting", "running")          # these hold a job slot
ACTIVE_STATES: tuple[str, ...] = WAITING + HOLDING

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT 'app',
    state TEXT NOT NULL DEFAULT 'queued',
    submitted REAL NOT NULL,
    started REAL,
    finished REAL,
    heartbeat REAL,
    backend TEXT NOT NULL DEFAULT '',
    handle TEXT NOT NULL DEFAULT '',
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    pid_start TEXT NOT NULL DEFAULT '',
    job_pid INTEGER,
    job_pid_start TEXT NOT NULL DEFAULT '',
    threads INTEGER NOT NULL DEFAULT 1,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    UNIQUE (user, run_id)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
"""
_READY: set[str] = set()                   # queue files this process has set up
_COLUMNS = ("state", "started", "finished", "heartbeat", "backend", "handle", "host", "pid",
            "pid_start", "job_pid", "job_pid_start", "cancel_requested", "reason")


@dataclass(frozen=True)
class QueueEntry:
    """One queued job; times are Unix seconds. `handle` is the backend's id (a process group,
    a Slurm job id); `pid`/`host` the process that took the job (a worker, a gex command)."""

    seq: int
    user: str
    run_id: str
    kind: str
    name: str
    origin: Literal["app", "cli"]
    state: QueueState
    submitted: float
    started: float | None = None
    finished: float | None = None
    heartbeat: float | None = None
    backend: str = ""
    handle: str = ""
    host: str = ""
    pid: int | None = None
    pid_start: str = ""
    job_pid: int | None = None
    job_pid_start: str = ""
    threads: int = 1
    cancel_requested: bool = False
    reason: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def label(self) -> str:
        return f"{self.user}: {self.name or self.kind} ({self.kind}, {self.state})"


@contextmanager
def connect(base: str | Path) -> Iterator[sqlite3.Connection]:
    """One short transaction on `<base>/queue.sqlite` (created on first use, WAL)."""
    path = Path(base) / QUEUE_FILE
    if str(path) not in _READY or not path.exists():
        db.create(path, _SCHEMA)
        _READY.add(str(path))
    with db.transaction(path) as conn:
        yield conn


def enqueue(conn: sqlite3.Connection, user: str, run_id: str, kind: str, *, name: str = "",
            origin: str = "app", threads: int = 1, pid: int | None = None) -> int:
    """Append a queued job (in the caller's transaction) and return its `seq`."""
    token = proc_token(pid) if pid is not None else ""
    cur = conn.execute(
        "INSERT INTO jobs (user, run_id, kind, name, origin, submitted, threads, pid, pid_start,"
        " host, heartbeat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (user, run_id, kind, name, origin, time.time(), threads, pid, token,
         socket.gethostname() if pid is not None else "", time.time() if pid else None))
    return int(cur.lastrowid)


def get_entry(conn: sqlite3.Connection, user: str, run_id: str) -> QueueEntry | None:
    row = conn.execute("SELECT * FROM jobs WHERE user = ? AND run_id = ?",
                       (user, run_id)).fetchone()
    return None if row is None else _entry(row)


def entries(conn: sqlite3.Connection, states: tuple[str, ...] | None = None, *,
            user: str | None = None) -> list[QueueEntry]:
    """Jobs in submission order, optionally in some states and of one user."""
    where, args = [], []
    if states is not None:
        where.append(f"state IN ({', '.join('?' * len(states))})")
        args.extend(states)
    if user is not None:
        where.append("user = ?")
        args.append(user)
    sql = "SELECT * FROM jobs" + (f" WHERE {' AND '.join(where)}" if where else "")
    return [_entry(row) for row in conn.execute(sql + " ORDER BY seq", args).fetchall()]


def update_entry(conn: sqlite3.Connection, seq: int, *, only_if: tuple[str, ...] | None = None,
                 **values: Any) -> bool:
    """Set columns of one job; with `only_if`, only while its state is one of those (one
    atomic statement, so two processes settling the same job cannot both win)."""
    unknown = set(values) - set(_COLUMNS)
    if unknown:
        raise ValueError(f"jobs has no column(s) {', '.join(sorted(unknown))}.")
    sql = f"UPDATE jobs SET {', '.join(f'{n} = ?' for n in values)} WHERE seq = ?"
    args = [*values.values(), seq]
    if only_if is not None:
        sql += f" AND state IN ({', '.join('?' * len(only_if))})"
        args.extend(only_if)
    return conn.execute(sql, args).rowcount > 0


def all_jobs(base: str | Path, *, active_only: bool = False) -> list[QueueEntry]:
    """Every user's jobs in submission order (the admin page's list); `active_only`: queued,
    starting or running."""
    with connect(base) as conn:
        return entries(conn, ACTIVE_STATES if active_only else None)


def median_durations(conn: sqlite3.Connection, *, last: int = 20) -> dict[str, float]:
    """Median seconds from start to finish of the last `last` done jobs of each kind."""
    rows = conn.execute("SELECT kind, finished - started AS s FROM jobs WHERE state = 'done' "
                        "AND started IS NOT NULL AND finished IS NOT NULL "
                        "ORDER BY seq DESC").fetchall()
    durations: dict[str, list[float]] = {}
    for row in rows:
        if len(seen := durations.setdefault(row["kind"], [])) < last:
            seen.append(max(0.0, row["s"]))
    return {kind: statistics.median(values) for kind, values in durations.items()}


def queue_position(base: str | Path, run_id: str, *, user: str | None = None,
                   max_parallel: int | None = None,
                   now: float | None = None) -> tuple[int, float | None]:
    """(position, seconds until it should start) of a job: position 1 is next in line, 0 means
    it holds a slot or has ended (0 s). The estimate plays the jobs ahead through the slots
    with the median duration of finished jobs of their kind; None ("unknown") when some kind
    ahead never finished a job."""
    from gexcore.workspace.settings import job_settings

    slots = max_parallel or job_settings(base).max_parallel
    now = time.time() if now is None else now
    with connect(base) as conn:
        found = [e for e in entries(conn, ACTIVE_STATES, user=user) if e.run_id == run_id]
        if not found or found[0].state != "queued":
            return 0, 0.0
        me = found[0]
        ahead = [e for e in entries(conn, ACTIVE_STATES) if e.seq < me.seq]
        medians = median_durations(conn)
    waiting = [e for e in ahead if e.state == "queued"]
    position = len(waiting) + 1
    if any(e.kind not in medians for e in ahead):
        return position, None
    # When each slot frees: a running job after its kind's median (less the time it has run).
    free_at = [max(0.0, medians[e.kind] - (now - (e.started or now)))
               for e in ahead if e.state != "queued"]
    free_at += [0.0] * max(0, slots - len(free_at))
    heapq.heapify(free_at)
    for e in waiting:                      # each waiting job takes the slot that frees first
        heapq.heappush(free_at, heapq.heappop(free_at) + medians[e.kind])
    return position, free_at[0]


def proc_token(pid: int | None) -> str:
    """The start time of process `pid` (from /proc), so a reused pid is not taken for it; ""
    when it cannot be read."""
    if pid is None:
        return ""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


class Heartbeat:
    """A thread that stamps `heartbeat` on a queued job every `every_s` seconds while the
    block runs. A stopped or frozen process stops beating; the dispatcher fails its job."""

    def __init__(self, base: str | Path, seq: int, every_s: float):
        self.base, self.seq, self.every_s = base, seq, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{seq}", daemon=True)

    def __enter__(self) -> Self:
        pid = os.getpid()
        with connect(self.base) as conn:          # the process that beats is the job's
            update_entry(conn, self.seq, heartbeat=time.time(), job_pid=pid,
                         job_pid_start=proc_token(pid))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def beat(self) -> None:
        with connect(self.base) as conn:
            update_entry(conn, self.seq, heartbeat=time.time())

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.beat()
            except sqlite3.OperationalError:           # a locked database: beat next time
                continue


def _entry(row: sqlite3.Row) -> QueueEntry:
    data = dict(row)
    data["cancel_requested"] = bool(data["cancel_requested"])
    return QueueEntry(**data)


def claim_entry(conn: sqlite3.Connection, user: str, run_id: str, handle: str) -> QueueEntry | None:
    """A launched worker takes its job (starting -> running, with its pid and host), unless it
    was cancelled, requeued or taken by another launch meanwhile; None then."""
    pid = os.getpid()
    cur = conn.execute(
        "UPDATE jobs SET state = 'running', pid = ?, pid_start = ?, host = ?, heartbeat = ?, "
        "handle = CASE WHEN handle = '' THEN ? ELSE handle END "
        "WHERE user = ? AND run_id = ? AND state = 'starting' AND handle IN ('', ?)",
        (pid, proc_token(pid), socket.gethostname(), time.time(), handle, user, run_id, handle))
    return get_entry(conn, user, run_id) if cur.rowcount else None
