"""Per-user workspaces on disk: cohorts as `.h5ad`, runs as folders, a registry in SQLite.

```
<base>/<user>/workspace.sqlite     cohorts and runs tables (WAL: readers never wait on a worker)
<base>/<user>/cohorts/<id>.h5ad
<base>/<user>/runs/<id>/           a run's outputs; appears whole, only when the run is done
<base>/<user>/logs/<id>.txt        the worker's log, written while it runs
<base>/<user>/arrays/<key>/<name>.npy   cached arrays (embeddings, UMAP coordinates)
<base>/queue.sqlite                one queue of every user's jobs (`queue.py`, `dispatcher.py`)
<base>/demo/                       the shipped demo, stored once, readable by every workspace
<base>/shares.sqlite               read-only shares between workspaces (`sharing.py`)
```
Items another workspace shared with this one appear under qualified ids (`alice.<id>`): every
read checks the share, every write or delete of them is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gexcore import keys
from gexcore.atomic import atomic_write
from gexcore.errors import InputError
from gexcore.workspace import audit, db
from gexcore.workspace.runs import RUNS_SCHEMA, RunInfo, Status, get_run, list_runs, new_id
from gexcore.workspace.sharing import DEMO_OWNER, Shares, qualify, split_qualified

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "CohortInfo",
    "Workspace",
    "array_name",
    "check_name",
    "embedding_name",
    "map_name",
    "open_workspace",
]

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_ANNOTATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}")   # clinical column names, values
_RESERVED_COLUMNS = {keys.OBS_TIME, keys.OBS_EVENT, keys.OBS_PATIENT, keys.OBS_LABEL}
_MAX_USER = 64
_COHORTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS cohorts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    n_obs INTEGER NOT NULL,
    n_vars INTEGER NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    simulated INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
"""


@dataclass(frozen=True)
class CohortInfo:
    """One stored cohort; `created` is Unix seconds."""

    id: str
    name: str
    n_obs: int
    n_vars: int
    source: str = ""
    simulated: bool = False
    created: float = 0.0
    owner: str = ""                  # another workspace that shares it read-only; "" = own

    @property
    def label(self) -> str:
        tag = " [simulated]" if self.simulated else ""
        shared = f" · shared by {self.owner}" if self.owner and self.owner != DEMO_OWNER else ""
        return f"{self.name} ({self.n_obs:,} x {self.n_vars:,}){tag}{shared}"


def open_workspace(base_dir: str | Path, user: str = "default") -> Workspace:
    """The workspace of `user` under `base_dir`, created on first use (`demo` is reserved)."""
    check_user(user)
    base = Path(base_dir)
    return Workspace(base / user)


def check_name(value: str, what: str) -> str:
    """Refuse anything that could leave its folder: letters, digits, `_.-`, up to 64."""
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value) or ".." in value:
        raise InputError(f"{what} {value!r} is not allowed; use 1-64 letters, digits, '_', '.' "
                         "or '-', starting with a letter or digit.")
    return value


def check_user(user: str) -> str:
    """A user name: a safe name of up to 64 characters, not the reserved `demo`."""
    check_name(user, "user name")
    if len(user) > _MAX_USER or user == DEMO_OWNER:
        raise InputError(f"user name {user!r} is not allowed; use up to {_MAX_USER} letters, "
                         f"digits, '_', '.' or '-', and not {DEMO_OWNER!r}.")
    return user


def _annotation_name(text: str, what: str) -> str:
    name = text.strip() if isinstance(text, str) else text
    if not isinstance(name, str) or not _ANNOTATION.fullmatch(name):
        raise InputError(f"{what} {text!r} is not allowed; use 1-64 letters, digits, spaces or "
                         "'_.+-', starting with a letter or digit.")
    return name


def array_name(prefix: str, **params: Any) -> str:
    """A stable file name for an array computed with `params`, e.g. `umap-3c9a1f0e2b`."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return f"{prefix}-{hashlib.sha256(blob).hexdigest()[:10]}"


def map_name(cohort_id: str, params) -> str:
    """Array name of a cohort's 2-D map drawn with `ProjectionParams` `params`."""
    return array_name(f"map-{cohort_id}", **params.key())


def embedding_name(cohort_id: str) -> str:
    """Array name of an encoder run's embedding of one cohort (stored under the run's key)."""
    return f"embedding-{cohort_id}"


class Workspace:
    """One user's cohorts, runs and cached arrays; safe to use from several processes."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        for sub in ("cohorts", "runs", "logs", "arrays"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "workspace.sqlite"
        self._init_db()
        self.shares = Shares(self.root.parent)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    @property
    def user(self) -> str:
        return self.root.name

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """One short transaction: commit on success, roll back on error, always close."""
        with db.transaction(self.db_path) as conn:
            yield conn

    def _init_db(self) -> None:
        db.create(self.db_path, _COHORTS_SCHEMA + RUNS_SCHEMA)

    # -- cohorts ---------------------------------------------------------------------------
    def add_cohort(self, adata: AnnData, name: str, *, source: str | None = None) -> str:
        """Store `adata` as a new cohort (written atomically) and return its id."""
        if not name or not name.strip():
            raise InputError("a cohort needs a name.")
        prov = adata.uns.get(keys.UNS_PROVENANCE, {})
        cohort_id = new_id()
        path = self.cohort_path(cohort_id)
        atomic_write(path, lambda tmp: adata.write_h5ad(tmp))
        try:
            with self.connect() as conn:
                conn.execute("INSERT INTO cohorts VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (cohort_id, name.strip(), adata.n_obs, adata.n_vars,
                              str(source if source is not None else prov.get("source", "")),
                              int(bool(prov.get("simulated", False))), time.time()))
        except sqlite3.Error:
            path.unlink(missing_ok=True)      # no file without its row
            raise
        return cohort_id

    def cohorts(self) -> list[CohortInfo]:
        """Own cohorts, newest first, then those shared with this workspace (and the demo)."""
        with self.connect() as conn:
            rows = conn.execute("SELECT * FROM cohorts ORDER BY created DESC, id DESC").fetchall()
        return [_cohort_info(row) for row in rows] + self._shared("cohort")

    def cohort(self, cohort_id: str) -> CohortInfo:
        if (shared := self._owner_of("cohort", cohort_id)) is not None:
            owner_ws, item = shared
            return replace(owner_ws.cohort(item), id=cohort_id, owner=owner_ws.user)
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM cohorts WHERE id = ?", (cohort_id,)).fetchone()
        if row is None:
            raise InputError(f"workspace {self.user!r} has no cohort {cohort_id!r}; add it on the "
                             "Data page or pick one of ws.cohorts().")
        return _cohort_info(row)

    def cohort_path(self, cohort_id: str) -> Path:
        if (shared := self._owner_of("cohort", cohort_id)) is not None:
            return shared[0].cohort_path(shared[1])
        return self.root / "cohorts" / f"{check_name(cohort_id, 'cohort id')}.h5ad"

    def load_cohort(self, cohort_id: str) -> AnnData:
        """The stored AnnData of one cohort."""
        import anndata

        self.cohort(cohort_id)                   # a clear error for an unknown id
        return anndata.read_h5ad(self.cohort_path(cohort_id))

    def add_annotation(self, cohort_id: str, column: str, rows, *,
                       value: str | None = None) -> None:
        """Save a selection as a new clinical column of an own stored cohort: `value` (default
        `column`) for the samples at row indices `rows`, missing for the others.

        Rewrites only the workspace's copy (`cohorts/<id>.h5ad`, atomically), never an uploaded
        file; refuses shared cohorts (the demo too), an existing column and unsafe names.
        """
        import pandas as pd

        self._refuse_shared("cohort", cohort_id, "annotate")
        column = _annotation_name(column, "column name")
        value = column if value is None else _annotation_name(value, "annotation value")
        adata = self.load_cohort(cohort_id)
        taken = {str(c).casefold() for c in adata.obs.columns}
        if column.casefold() in taken or column in _RESERVED_COLUMNS:
            raise InputError(f"cohort {cohort_id!r} already has a column {column!r}; choose "
                             "another name (existing columns are never overwritten).")
        picked = np.unique(np.asarray(rows, dtype=np.int64).ravel())
        if not picked.size or picked[0] < 0 or picked[-1] >= adata.n_obs:
            raise InputError(f"an annotation needs 1 to {adata.n_obs:,} selected samples of "
                             "this cohort.")
        labels = np.full(adata.n_obs, None, dtype=object)
        labels[picked] = value
        adata.obs[column] = pd.Categorical(labels, categories=[value])
        atomic_write(self.cohort_path(cohort_id), lambda tmp: adata.write_h5ad(tmp))

    def delete_cohort(self, cohort_id: str) -> None:
        """Remove a cohort's row first, then its file, so no row points at a missing file."""
        self._refuse_shared("cohort", cohort_id, "delete")
        path = self.cohort_path(cohort_id)
        with self.connect() as conn:
            conn.execute("DELETE FROM cohorts WHERE id = ?", (cohort_id,))
        path.unlink(missing_ok=True)
        audit.record("cohort_deleted", self.user, base=self.root.parent, cohort=cohort_id)

    # -- runs ------------------------------------------------------------------------------
    def runs(self, kind: str | None = None,
             status: Status | tuple[Status, ...] | None = None) -> list[RunInfo]:
        """Runs, newest first, optionally of one kind and one or several statuses; finished
        runs shared with this workspace (and the demo's) follow its own."""
        with self.connect() as conn:
            own = list_runs(conn, kind, status)
        wanted = (status,) if isinstance(status, str) else status
        if wanted is not None and "done" not in wanted:
            return own                           # shared runs are finished runs only
        return own + [r for r in self._shared("run") if kind is None or r.kind == kind]

    def run(self, run_id: str) -> RunInfo:
        if (shared := self._owner_of("run", run_id)) is not None:
            owner_ws, item = shared
            return _as_shared(owner_ws.run(item), owner_ws.user)
        with self.connect() as conn:
            run = get_run(conn, run_id)
        if run is None:
            raise InputError(f"workspace {self.user!r} has no run {run_id!r}.")
        return run

    def run_dir(self, run_id: str) -> Path:
        """The run's output folder (a checkpoint for pretrain runs); exists once it is done."""
        if (shared := self._owner_of("run", run_id)) is not None:
            return shared[0].run_dir(shared[1])
        return self.root / "runs" / check_name(run_id, "run id")

    def log_path(self, run_id: str) -> Path:
        return self.root / "logs" / f"{check_name(run_id, 'run id')}.txt"

    def read_log(self, run_id: str, *, max_chars: int = 20_000) -> str:
        """The end of a run's log ("" before the worker wrote any)."""
        path = self.log_path(run_id)
        if not path.exists():
            return ""
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - max_chars))
            return f.read().decode("utf-8", errors="replace")

    def delete_run(self, run_id: str) -> None:
        """Forget a finished run and remove its folder, log and arrays."""
        self._refuse_shared("run", run_id, "delete")
        if self.run(run_id).active:
            raise InputError(f"run {run_id!r} is still queued or running; cancel it first.")
        with self.connect() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
        self.log_path(run_id).unlink(missing_ok=True)
        self.delete_arrays(run_id)
        audit.record("run_deleted", self.user, base=self.root.parent, run=run_id)

    # -- cached arrays ---------------------------------------------------------------------
    def save_array(self, key: str, name: str, array: np.ndarray) -> Path:
        """Store `array` as `arrays/<key>/<name>.npy` (key: a run or cohort id), atomically."""
        path = self._array_path(key, name)
        array = np.asarray(array)

        def write(tmp: Path) -> None:
            with tmp.open("wb") as f:                # a path would make np.save add ".npy"
                np.save(f, array, allow_pickle=False)

        return atomic_write(path, write)

    def load_array(self, key: str, name: str) -> np.ndarray | None:
        """The array saved under (key, name), or None if there is none; for a shared run, this
        workspace's own copy first, then what the owner stored."""
        path = self._array_path(key, name)
        if path.exists():
            return np.load(path, allow_pickle=False)
        if (shared := self._owner_of("run", key)) is not None:
            owner_ws, item = shared
            return owner_ws.load_array(item, name.replace(f"{owner_ws.user}.", ""))
        return None

    def delete_arrays(self, key: str) -> None:
        shutil.rmtree(self.root / "arrays" / check_name(key, "array key"), ignore_errors=True)

    def embedding(self, cohort_id: str, run_id: str) -> np.ndarray | None:
        """(n_samples, dim) embedding of a cohort by an encoder run, if a job computed it."""
        return self.load_array(run_id, embedding_name(cohort_id))

    # -- sharing -----------------------------------------------------------------------------
    def share(self, kind: str, item: str, grantees: list[str]) -> None:
        """Let `grantees` (user names, or `sharing.LAB`) read an own cohort or finished run."""
        self._refuse_shared(kind, item, "share")
        if kind == "run" and self.run(item).status != "done":
            raise InputError(f"run {item!r} is not finished; share it once it is done.")
        if kind == "cohort":
            self.cohort(item)
        self.shares.share(self.user, kind, item, [check_user(g) if g != "*" else g
                                                  for g in grantees])

    def unshare(self, kind: str, item: str, grantee: str | None = None) -> int:
        """Stop sharing an own item with `grantee` (None: with everyone)."""
        return self.shares.revoke(self.user, kind, item, grantee)

    def _shared(self, kind: str) -> list:
        """Infos of the items of `kind` this workspace may read from others, qualified."""
        if self.user == DEMO_OWNER:
            return []
        sources = [(DEMO_OWNER, None)] if (self.root.parent / DEMO_OWNER).is_dir() else []
        sources += self.shares.visible_to(self.user, kind)
        out = []
        for owner, item in sources:
            owner_ws = Workspace(self.root.parent / owner)
            if item is None:                                   # the demo: all of it
                infos = (owner_ws.cohorts() if kind == "cohort"
                         else owner_ws.runs(status="done"))
            else:
                try:
                    infos = [owner_ws.cohort(item) if kind == "cohort" else owner_ws.run(item)]
                except InputError:                             # deleted since it was shared
                    continue
                if kind == "run" and infos[0].status != "done":
                    continue
            out += [replace(i, id=qualify(owner, i.id), owner=owner) if kind == "cohort"
                    else _as_shared(i, owner) for i in infos]
        return out

    def _owner_of(self, kind: str, value: str) -> tuple[Workspace, str] | None:
        """(owner's workspace, item id) for a qualified id this workspace may read; None for an
        own id; an unknown-id InputError (the same as for a missing one) when not shared."""
        parts = split_qualified(value)
        if parts is None:
            return None
        owner, item = parts
        if owner == self.user:
            return None
        if not self.shares.can_read(self.user, owner, kind, item) \
                or not (self.root.parent / owner).is_dir():
            raise InputError(f"workspace {self.user!r} has no {kind} {value!r}.")
        return Workspace(self.root.parent / owner), item

    def locate(self, kind: str, value: str) -> tuple[Path, str]:
        """(workspace root, id there) of a cohort or run this workspace may read: its own, or
        the owner's for a shared one (InputError when not shared with it)."""
        shared = self._owner_of(kind, value)
        return (self.root, value) if shared is None else (shared[0].root, shared[1])

    def _refuse_shared(self, kind: str, value: str, action: str) -> None:
        if (shared := self._owner_of(kind, value)) is not None:
            raise InputError(f"{kind} {value!r} is shared read-only by {shared[0].user}; only "
                             f"its owner can {action} it.")

    def _array_path(self, key: str, name: str) -> Path:
        return (self.root / "arrays" / check_name(key, "array key")
                / f"{check_name(name, 'array name')}.npy")


def _as_shared(run: RunInfo, owner: str) -> RunInfo:
    """A run as another workspace sees it: qualified ids, its cohort's id too."""
    params = dict(run.params)
    if isinstance(params.get("cohort"), str):
        params["cohort"] = qualify(owner, params["cohort"])
    name = run.name if owner == DEMO_OWNER else f"{run.name} · shared by {owner}"
    return replace(run, id=qualify(owner, run.id), name=name, params=params)


def _cohort_info(row: sqlite3.Row) -> CohortInfo:
    data = dict(row)
    data["simulated"] = bool(data["simulated"])
    return CohortInfo(**data)
