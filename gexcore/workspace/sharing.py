"""Read-only sharing between workspaces of one server: a cohort or a run (an encoder with its
embeddings and maps, or an evaluation report), with named users or the whole lab.

A shared item appears in the grantee's workspace under a qualified id `<owner>.<id>` (ids never
hold a dot, so the last dot splits them). `Workspace` resolves those ids through `can_read`
on every read and refuses every write, so no page or job can reach an item that is not shared.
The shipped demo lives once in the reserved workspace `demo`, readable by everyone.

```
<base>/shares.sqlite     shares(owner, kind, item, grantee, created); grantee "*" = the lab
```
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gexcore.errors import InputError
from gexcore.workspace import audit, db

__all__ = ["DEMO_OWNER", "LAB", "Share", "ShareKind", "Shares", "qualify", "split_qualified"]

DEMO_OWNER = "demo"          # the reserved workspace holding the shipped demo
LAB = "*"                    # grantee meaning every signed-in user of this server
ShareKind = Literal["cohort", "run"]
_KINDS = ("cohort", "run")
_ITEM_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")      # runs.new_id()
_SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    item TEXT NOT NULL,
    grantee TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (owner, kind, item, grantee)
);
"""


def qualify(owner: str, item: str) -> str:
    """The id under which another workspace sees `owner`'s item."""
    return f"{owner}.{item}"


def split_qualified(value: str) -> tuple[str, str] | None:
    """(owner, item id) of a qualified id; None for an id of the workspace's own."""
    owner, dot, item = value.rpartition(".")
    return (owner, item) if dot and owner and _ITEM_ID.fullmatch(item) else None


@dataclass(frozen=True)
class Share:
    """`owner` lets `grantee` (a user name or LAB) read item `item` of kind `kind`."""

    owner: str
    kind: ShareKind
    item: str
    grantee: str
    created: float


class Shares:
    """The server's share table; every workspace of one base directory uses the same one."""

    def __init__(self, base: str | Path):
        self.path = Path(base) / "shares.sqlite"
        db.create(self.path, _SCHEMA)

    def _connect(self):
        return db.transaction(self.path)

    def share(self, owner: str, kind: ShareKind, item: str, grantees: list[str]) -> None:
        """Let each grantee (user names, or LAB) read the item; sharing twice changes nothing."""
        _check_kind(kind)
        if not grantees:
            raise InputError("name at least one user to share with, or the whole lab.")
        now, grantees = time.time(), [g for g in grantees if g != owner]
        with self._connect() as conn:
            conn.executemany("INSERT OR IGNORE INTO shares VALUES (?, ?, ?, ?, ?)",
                             [(owner, kind, item, g, now) for g in grantees])
        audit.record("share", owner, base=self.path.parent, kind=kind, item=item, to=grantees)

    def revoke(self, owner: str, kind: ShareKind, item: str, grantee: str | None = None) -> int:
        """Stop sharing the item with `grantee` (None: with everyone); returns rows removed."""
        _check_kind(kind)
        query = "DELETE FROM shares WHERE owner = ? AND kind = ? AND item = ?"
        args: tuple = (owner, kind, item)
        if grantee is not None:
            query, args = query + " AND grantee = ?", (*args, grantee)
        with self._connect() as conn:
            removed = conn.execute(query, args).rowcount
        if removed:
            audit.record("unshare", owner, base=self.path.parent, kind=kind, item=item,
                         to=grantee or "everyone")
        return removed

    def granted(self, owner: str, kind: ShareKind, item: str) -> list[str]:
        """Who can read the item (user names, LAB)."""
        with self._connect() as conn:
            rows = conn.execute("SELECT grantee FROM shares WHERE owner = ? AND kind = ? AND "
                                "item = ? ORDER BY grantee", (owner, kind, item)).fetchall()
        return [r[0] for r in rows]

    def visible_to(self, user: str, kind: ShareKind) -> list[tuple[str, str]]:
        """(owner, item) of every item of `kind` shared with `user` or the lab, newest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT owner, item, MAX(created) FROM shares WHERE kind = ? AND owner != ? "
                "AND grantee IN (?, ?) GROUP BY owner, item ORDER BY MAX(created) DESC",
                (kind, user, user, LAB)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def can_read(self, user: str, owner: str, kind: ShareKind, item: str) -> bool:
        if owner == DEMO_OWNER or owner == user:
            return True
        with self._connect() as conn:
            row = conn.execute("SELECT 1 FROM shares WHERE owner = ? AND kind = ? AND item = ? "
                               "AND grantee IN (?, ?)", (owner, kind, item, user, LAB)).fetchone()
        return row is not None


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise InputError(f"share kind must be one of {', '.join(_KINDS)}, not {kind!r}.")
