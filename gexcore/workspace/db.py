"""The server's SQLite files (a workspace's registry, the queue, the share table, accounts):
one way to open them, so every store gets the same timeout, row type and transaction rule."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

__all__ = ["create", "transaction"]

TIMEOUT_S = 30.0          # a writer holds the lock for milliseconds; waiting this long means stuck


def create(path: str | Path, schema: str) -> None:
    """Create the file, its folder and its tables (idempotent) in WAL mode, so readers (the
    app's pages, every sidebar poll) never wait on a writer (a worker's progress)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, timeout=TIMEOUT_S)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(schema)


@contextmanager
def transaction(path: str | Path) -> Iterator[sqlite3.Connection]:
    """One short transaction: commit on success, roll back on error, always close; rows are
    `sqlite3.Row` (by name or index)."""
    conn = sqlite3.connect(path, timeout=TIMEOUT_S)
    conn.row_factory = sqlite3.Row
    try:
        with conn:
            yield conn
    finally:
        conn.close()
