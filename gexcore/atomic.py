"""Crash-safe outputs: write beside the target, fsync, rename; never delete what we did not write.

A file goes to a temp file in the same folder, is flushed, then `os.replace`d over the target.
An output folder of a known `OutputKind` (an encoder checkpoint, an evaluation report) is filled
as `.NAME.T.tmp/` beside it with a `.gexscope` marker, then swapped in: the old folder is
renamed `.NAME.T.old/`, the new one takes its name, the old folder's entries the new one lacks
(the user's notes, a kept train state) move across, and only entries the old marker lists as
written by GexScope are deleted. A non-empty folder that is not an output of that kind is
refused, untouched. A kill at any point leaves the old output or the new one whole;
`recover_dir`, run before every such write, finishes the swap or removes a temp folder that
never completed (only `.NAME.*.tmp|old` folders beside the output, carrying our marker).
Temp entries get the mode the umask gives new files, so shared outputs stay group-readable.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gexcore.errors import InputError

__all__ = [
    "MARKER",
    "OutputKind",
    "atomic_write",
    "atomic_write_dir",
    "atomic_write_text",
    "check_output_dir",
    "default_mode",
    "fsync_dir",
    "fsync_tree",
    "read_marker",
    "recover_dir",
    "set_default_modes",
]

logger = logging.getLogger(__name__)

MARKER = ".gexscope"                  # in every output folder: {"format", "kind", "files", ...}
MARKER_FORMAT = "gexscope.output/1"
_UMASK_LOCK = threading.Lock()


@dataclass(frozen=True)
class OutputKind:
    """A kind of output folder: the name its marker records, the entries it writes, and how to
    recognise one written before markers existed (then all of `files` count as ours)."""

    name: str                                       # "encoder", "report"
    label: str                                      # for messages: "an encoder checkpoint"
    files: tuple[str, ...]                          # every entry this kind writes or keeps
    recognise: Callable[[Path], bool] = lambda folder: False
    # Entries written into the folder between saves (a train state): counted as ours, and
    # moved into every replacement, never deleted.
    keep: tuple[str, ...] = ()


# --- files ---------------------------------------------------------------------------------

def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` on a temp file in the target folder, then `os.replace` it into place.

    Only `path` is replaced (a file the caller names); nothing beside it is touched.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file path to write.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, default_mode())                # mkstemp made it 0600
        _fsync_file(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def default_mode(directory: bool = False) -> int:
    """The mode `open`/`mkdir` would give a new entry under the current umask (e.g. 0o644)."""
    return (0o777 if directory else 0o666) & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask races threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def set_default_modes(folder: str | Path) -> None:
    """Give `folder` and everything under it the umask's modes (safetensors writes 0600)."""
    file_mode, dir_mode = default_mode(), default_mode(directory=True)
    for root, dirs, files in os.walk(folder):
        for name in files:
            if not os.path.islink(os.path.join(root, name)):
                os.chmod(os.path.join(root, name), file_mode)
        os.chmod(root, dir_mode)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (the renames); directories cannot be opened on Windows."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: str | Path) -> None:
    """Flush every file and folder under `folder`, so a rename never points at unwritten data."""
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            if not os.path.islink(os.path.join(root, name)):
                _fsync_file(Path(root, name))
        fsync_dir(root)


# --- folders -------------------------------------------------------------------------------

def atomic_write_dir(path: str | Path, write: Callable[[Path], None], *,
                     keep: tuple[str, ...] = (), kind: OutputKind | None = None) -> Path:
    """Fill a temp folder with `write(tmp_dir)`, then swap it in place of `path`.

    With `kind`, `path` must be missing, empty or a `kind` output (else InputError, nothing
    changed); the old folder's entries the new one lacks move across, except GexScope's own
    stale files. Without `kind` the caller owns `path` and the old folder is replaced whole.
    Entries named in `keep` (e.g. a resumable train state) move from the old folder to the new.
    """
    given, path = path, _target(path)
    if kind is not None:
        check_output_dir(path, kind)
        keep = (*keep, *kind.keep)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    token = tmp.name[len(path.name) + 2:-len(".tmp")]
    try:
        if kind is not None:
            _write_marker(tmp, kind, token, complete=False, files=[], replaces=[])
        write(tmp)
        set_default_modes(tmp)                       # mkdtemp made it 0700, safetensors 0600
        written = sorted(entry.name for entry in tmp.iterdir() if entry.name != MARKER)
        old = {entry.name for entry in path.iterdir()} if path.is_dir() else set()
        owned = old if kind is None or not old else _owned(path, kind) or set()
        replaces = owned - {MARKER}
        _refuse_clashes(path, old - replaces - {MARKER}, written)
        kept = [name for name in keep if name in old and name in replaces and name not in written]
        fsync_tree(tmp)
        if kind is not None:       # written last, after the data is on disk: it marks "complete"
            _write_marker(tmp, kind, token, complete=True, files=written + kept,
                          replaces=sorted(replaces))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap(path, tmp, token, replaces, set(written) | set(kept))
    return Path(given)


def check_output_dir(path: str | Path, kind: OutputKind) -> Path:
    """Make `path` ready for a `kind` output or refuse it: first finish or clean a killed save,
    then accept a missing or empty folder, or a `kind` output none of whose user files clash."""
    path = _target(path)
    recover_dir(path, kind)
    if not path.exists():
        return path
    if not path.is_dir():
        raise InputError(f"{path} is a file, not a folder; choose a new or empty folder.")
    entries = {entry.name for entry in path.iterdir()}
    if not entries:
        return path
    owned = _owned(path, kind)
    if owned is None:
        other = read_marker(path)
        what = (f"holds a GexScope {other.get('kind')} output, not {kind.label}" if other else
                f"is not empty and is not {kind.label} written by GexScope")
        raise InputError(f"{path} {what}; nothing was changed. Choose a new or empty folder.")
    clash = sorted((entries - owned) & set(kind.files))
    if clash:
        raise InputError(f"{path / clash[0]} was not written by GexScope and a new "
                         f"{kind.name} output would replace it; move it away or choose a new or "
                         "empty folder.")
    return path


def read_marker(folder: str | Path) -> dict | None:
    """The `.gexscope` marker of an output folder, or None (no marker, not ours, unreadable)."""
    file = Path(folder) / MARKER
    if Path(folder).is_symlink() or not file.is_file():
        return None
    try:
        marker = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("format") == MARKER_FORMAT else None


def recover_dir(path: str | Path, kind: OutputKind) -> None:
    """Finish or clean what a killed `atomic_write_dir(path, kind=kind)` left beside `path`.

    Touches only `.NAME.T.tmp|old` folders in `path`'s parent whose token T pairs them with a
    marker of this kind; an unfinished temp folder (nothing but our writes) is removed, a
    complete one is swapped in. Anything else is left alone, with a warning.
    """
    path = _target(path)
    if not path.parent.is_dir():
        return
    pattern = re.compile(rf"\.{re.escape(path.name)}\.([A-Za-z0-9_]+)\.(tmp|old)")
    tokens: dict[str, float] = {}
    for entry in path.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and entry.is_dir() and not entry.is_symlink():
            tokens[match[1]] = min(tokens.get(match[1], float("inf")), entry.stat().st_mtime)
    for token in sorted(tokens, key=tokens.__getitem__):
        _recover_one(path, kind, token)


def _recover_one(path: Path, kind: OutputKind, token: str) -> None:
    tmp, old = _temp(path, token, "tmp"), _temp(path, token, "old")
    marker = read_marker(tmp) if tmp.is_dir() else None
    mine = marker is not None and marker.get("kind") == kind.name and marker.get("token") == token
    new = read_marker(path)
    if any(m is not None and m.get("token") == token and _writer_alive(m) for m in (marker, new)):
        return                                           # another process is at work on it
    if old.is_dir():
        if new is not None and new.get("token") == token:    # killed while moving entries over
            _finish(path, old, set(new["replaces"]), set(new["files"]))
        elif not path.exists() and mine and marker["complete"]:   # killed between the renames
            os.replace(tmp, path)
            fsync_dir(path.parent)
            _finish(path, old, set(marker["replaces"]), set(marker["files"]))
        elif not path.exists() and not tmp.exists():     # the new output is gone: restore
            os.replace(old, path)
        else:
            logger.warning("%s is left from an interrupted save of %s that cannot be finished; "
                           "left alone (move back what you need, then delete it).", old, path)
            return
        logger.warning("finished the interrupted save of %s", path)
    elif not mine:
        if marker is None:
            logger.warning("%s looks left by an interrupted save (no GexScope marker); left "
                           "alone (move out what you need, then delete it).", tmp)
    elif marker["complete"]:                             # killed after writing, before the swap
        if not _may_replace(path, kind):
            logger.warning("%s holds a finished %s output, but %s is no longer one; left "
                           "alone.", tmp, kind.name, path)
            return
        _swap(path, tmp, token, set(marker["replaces"]), set(marker["files"]))
        logger.warning("finished the interrupted save of %s", path)
    else:                                                # killed while writing: all ours
        shutil.rmtree(tmp)
        logger.warning("removed %s, an unfinished save of %s", tmp, path)


def _swap(path: Path, tmp: Path, token: str, replaces: set[str], files: set[str]) -> None:
    """path -> .NAME.T.old, tmp -> path, then move the old entries the new output lacks."""
    old = _temp(path, token, "old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    if old.exists():
        _finish(path, old, replaces, files)


def _finish(path: Path, old: Path, replaces: set[str], files: set[str]) -> None:
    """Move entries of the old folder into the new one, unless the new output replaced them or
    they are GexScope's own stale files (in `replaces`, not in `files`); then delete the rest."""
    clashes = []
    for entry in sorted(old.iterdir(), key=lambda e: e.name):
        name = entry.name
        if name == MARKER:
            continue
        if (path / name).exists() or (path / name).is_symlink():
            if name not in replaces:
                clashes.append(name)                     # a user's file: never delete it
        elif name not in replaces or name in files:
            os.replace(entry, path / name)
    fsync_dir(path)
    if clashes:
        logger.warning("%s keeps %s, which the new output in %s replaced; move it back if you "
                       "need it.", old, ", ".join(clashes), path)
        return
    shutil.rmtree(old)
    fsync_dir(path.parent)


def _may_replace(path: Path, kind: OutputKind) -> bool:
    """True if `path` is missing, an empty folder or a `kind` output."""
    if not path.exists():
        return True
    return path.is_dir() and (_owned(path, kind) is not None or not any(path.iterdir()))


def _refuse_clashes(path: Path, user_entries: set[str], written: list[str]) -> None:
    clash = sorted(user_entries & set(written))
    if clash:
        raise InputError(f"{path / clash[0]} was not written by GexScope and the new output "
                         "would replace it; move it away or choose a new or empty folder.")


def _owned(folder: Path, kind: OutputKind) -> set[str] | None:
    """Entries of `folder` GexScope wrote as `kind` (the marker's list; all of `kind.files` for
    an unmarked folder `kind.recognise` accepts), or None if it is not a `kind` output."""
    marker = read_marker(folder)
    if marker is not None:
        if marker.get("kind") != kind.name:
            return None
        return {MARKER, *marker.get("files", []), *kind.keep}
    return set(kind.files) if kind.recognise(folder) else None


def _write_marker(folder: Path, kind: OutputKind, token: str, *, complete: bool,
                  files: list[str], replaces: list[str]) -> None:
    from gexcore import __version__

    marker = {"format": MARKER_FORMAT, "kind": kind.name, "version": __version__,
              "created": datetime.now(UTC).isoformat(timespec="seconds"), "complete": complete,
              "files": files, "replaces": replaces, "token": token, "pid": os.getpid(),
              "host": socket.gethostname()}
    text = json.dumps(marker, indent=1)
    if complete:
        atomic_write_text(folder / MARKER, text)
    else:
        (folder / MARKER).write_text(text, encoding="utf-8")


def _writer_alive(marker: dict) -> bool:
    """True while another process on this host may still be writing that temp folder."""
    pid = marker.get("pid")
    if marker.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temp(path: Path, token: str, suffix: str) -> Path:
    return path.parent / f".{path.name}.{token}.{suffix}"


def _target(path: str | Path) -> Path:
    """An absolute path; a symlink to a folder stands for that folder (we swap the real one)."""
    path = Path(os.path.abspath(path))
    return path.resolve() if path.is_symlink() else path
