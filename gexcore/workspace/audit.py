"""The server's audit log: one JSON object per line in `<base>/audit.log`.

```python
from gexcore.workspace import audit
audit.append("signin", "alice", base=base, via="password", client="10.0.0.7")
audit.append("share", ws.user, base=ws.root.parent, cohort=cohort_id, to="bob")
audit.read(base, limit=200)      # the newest 200 events, oldest first
```
Each line is `{"time": ISO-8601 UTC, "event", "user", ...fields}`. `event` is a short verb
(`signin`, `signin_failed`, `signout`, `account_added`, `password_changed`,
`account_removed`, `share`, `unshare`, `cohort_deleted`, `run_deleted`, `job_submitted`,
`job_cancelled`, ...); `user` is whoever it concerns (a workspace / account name, or the name
typed into a failed sign-in). Fields must be JSON-serialisable (anything else is written with
`str`); a field whose name mentions a password, secret or token is refused, so no caller logs one.
A line is written with a single `os.write` on an `O_APPEND` descriptor: concurrent writers
(server threads, job workers) never interleave or lose lines.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from gexcore.workspace.identity import default_base

__all__ = ["AUDIT_FILE", "append", "read", "record"]

logger = logging.getLogger(__name__)

AUDIT_FILE = "audit.log"
_FORBIDDEN = ("password", "passwd", "secret", "token")


def append(event: str, user: str, *, base: str | Path | None = None, **fields: Any) -> None:
    """Append one event to `<base>/audit.log` (`base`: the folder holding the workspaces,
    `ws.root.parent`; default $GEX_WORKSPACE as the app uses)."""
    if bad := [k for k in fields if any(word in k.lower() for word in _FORBIDDEN)]:
        raise ValueError(f"audit fields {bad} look like credentials; they are never logged.")
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": str(event),
              "user": str(user), **fields}
    # ensure_ascii keeps the line free of raw newlines / control characters from user input
    line = (json.dumps(record, ensure_ascii=True, default=str, separators=(",", ":"))
            + "\n").encode()
    path = Path(base if base is not None else default_base()) / AUDIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def record(event: str, user: str, *, base: str | Path, **fields: Any) -> None:
    """`append` for a side effect of an action (a job queued, a share, a deletion): an
    unwritable log is logged as a warning and must not undo or fail the action."""
    try:
        append(event, user, base=base, **fields)
    except OSError as err:
        logger.warning("audit log: %s", err)


def read(base: str | Path | None = None, *, limit: int = 500) -> list[dict[str, Any]]:
    """The newest `limit` events, oldest first; a damaged line is skipped, not fatal."""
    path = Path(base if base is not None else default_base()) / AUDIT_FILE
    if not path.exists():
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = deque(f, maxlen=limit)
    events = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            events.append(record)
    return events
