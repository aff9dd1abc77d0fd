"""A job slot for a process that runs its own work (`gex pretrain`, `gex evaluate`): it waits
in the server's queue like an app job, by the same rules, and holds the slot while it runs.

```python
with job_slot(base, "alice", "pretrain", name="gex pretrain", params=asdict(config)) as slot:
    encoder.pretrain(adata, config, should_stop=slot.stop_if_cancelled)
```
The entry is `origin='cli'`: the dispatcher grants it (state `running`) instead of launching a
worker, the process beats while it waits and runs, and a process that dies or stops beating
loses its place or its slot as a worker would.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gexcore.errors import GexError
from gexcore.workspace import limits
from gexcore.workspace.dispatcher import audit, dispatch, settle
from gexcore.workspace.queue import Heartbeat, connect, enqueue, get_entry, queue_position
from gexcore.workspace.runs import new_id
from gexcore.workspace.settings import job_settings

__all__ = ["Slot", "cli_user", "job_slot"]

logger = logging.getLogger(__name__)

WaitCallback = Callable[[int, "float | None"], None]     # (position, seconds to start)


@dataclass
class Slot:
    """A held slot: `should_stop()` turns True once someone cancelled the job (an admin)."""

    base: Path
    user: str
    run_id: str
    seq: int
    _checked: float = 0.0
    _stop: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def should_stop(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if not self._stop and now - self._checked >= 1.0:
                self._checked = now
                with connect(self.base) as conn:
                    entry = get_entry(conn, self.user, self.run_id)
                self._stop = entry is None or entry.cancel_requested
            return self._stop

    def stop_if_cancelled(self) -> bool:
        """A `should_stop` callback that raises once the job was cancelled, so the command
        ends before it writes anything (never returns True)."""
        if self.should_stop():
            raise GexError("cancelled from the job queue; no output was written.")
        return False


@contextmanager
def job_slot(base: str | Path, user: str, kind: str, *, name: str = "",
             params: dict[str, Any] | None = None, on_wait: WaitCallback | None = None,
             poll_s: float = 1.0) -> Iterator[Slot]:
    """Queue a job of `kind` for `user`, wait until the dispatcher grants it a slot (calling
    `on_wait(position, seconds)` when the position changes), and hold the slot for the block.
    Per-user limits apply as for `submit` (`InputError`); a cancel while waiting raises
    `GexError`."""
    base = Path(base)
    settings = job_settings(base)
    limits.check_budget(params or {}, settings)
    run_id = new_id()
    with connect(base) as conn:
        limits.check_queued(conn, user, settings)
        seq = enqueue(conn, user, run_id, kind, name=name or kind, origin="cli",
                      pid=os.getpid())
    audit(base, "job_submitted", user, run=run_id, kind=kind, via="gex")
    slot = Slot(base, user, run_id, seq)
    with Heartbeat(base, seq, settings.heartbeat_s):
        state, reason = "failed", "the gex command stopped"
        try:
            _wait_for_slot(slot, on_wait, poll_s)
            yield slot
            state, reason = (("cancelled", "cancelled from the job queue") if slot.should_stop()
                             else ("done", ""))
        except KeyboardInterrupt:
            state, reason = "cancelled", "interrupted (Ctrl-C)"
            raise
        except Exception as err:
            state = "cancelled" if slot.should_stop() else "failed"
            reason = f"{type(err).__name__}: {err}"[:500]
            raise
        finally:
            with connect(base) as conn:
                entry = get_entry(conn, user, run_id)
            if entry is not None:
                settle(base, entry, state, reason)      # frees the slot
            dispatch(base)


def cli_user() -> str:
    """Whose job a `gex` command is: $GEX_USER, else the login name, as a workspace name."""
    raw = os.environ.get("GEX_USER", "").strip() or getpass.getuser()
    return re.sub(r"[^A-Za-z0-9_.-]|\.\.", "_", raw).lstrip("._-")[:64] or "cli"


def _wait_for_slot(slot: Slot, on_wait: WaitCallback | None, poll_s: float) -> None:
    shown: tuple[int, float | None] | None = None
    wake = threading.Event()
    while True:
        dispatch(slot.base)
        with connect(slot.base) as conn:
            entry = get_entry(conn, slot.user, slot.run_id)
        if entry is None or entry.state in ("done", "failed", "cancelled"):
            why = entry.reason if entry is not None else "it left the queue"
            raise GexError(f"the job queue ended this job before it started: "
                           f"{why or 'cancelled'}.")
        if entry.state == "running":
            logger.info("run %s: got a job slot", slot.run_id)
            return
        position = queue_position(slot.base, slot.run_id, user=slot.user)
        if on_wait is not None and position != shown:
            on_wait(*position)
        shown = position
        wake.wait(poll_s)
