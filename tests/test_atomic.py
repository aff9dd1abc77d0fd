"""Crash-safe outputs: refuse folders we did not write, keep user files, survive a kill anywhere."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gexcore import atomic
from gexcore.atomic import (
    MARKER,
    OutputKind,
    atomic_write,
    atomic_write_dir,
    atomic_write_text,
    check_output_dir,
    read_marker,
    recover_dir,
)
from gexcore.errors import InputError
from tests.crash import killed_at

KIND = OutputKind("toy", "a toy output", files=("a.txt", "b.txt", "state"),
                  recognise=lambda folder: (folder / "a.txt").is_file()
                  and (folder / "legacy").is_file(), keep=("state",))


def write_ab(text: str, *, b: bool = True):
    def write(tmp: Path) -> None:
        (tmp / "a.txt").write_text(f"a {text}")
        if b:
            (tmp / "b.txt").write_text(f"b {text}")
    return write


def save(path: Path, text: str, **kwargs) -> Path:
    return atomic_write_dir(path, write_ab(text, **kwargs), kind=KIND)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture
def umask():
    """Set the process umask for a test, then restore it."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


# --- files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mask, file_mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_respect_the_umask(tmp_path, umask, mask, file_mode):
    """Regression: mkstemp made every output 0600, unreadable for lab colleagues."""
    umask(mask)
    assert atomic._umask() == mask
    out = atomic_write_text(tmp_path / "x.json", "{}")
    assert stat.S_IMODE(out.stat().st_mode) == file_mode


def test_a_file_write_replaces_only_the_named_file(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "x.h5ad").write_text("old")
    atomic_write_text(tmp_path / "x.h5ad", "new")
    assert listing(tmp_path) == ["notes.txt", "x.h5ad"]
    assert (tmp_path / "x.h5ad").read_text() == "new"


def test_a_failed_file_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    (tmp_path / "x.csv").write_text("old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full (simulated)")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "x.csv", fail)
    assert listing(tmp_path) == ["x.csv"] and (tmp_path / "x.csv").read_text() == "old"


def test_a_file_is_flushed_before_it_is_renamed(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"),
                                                     real_replace(a, b))[1])
    atomic_write_text(tmp_path / "x.txt", "data")
    assert events == ["fsync", "replace", "fsync"]          # file, rename, then the folder


def test_a_folder_is_not_a_file_path(tmp_path):
    (tmp_path / "out.h5ad").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        atomic_write_text(tmp_path / "out.h5ad", "x")


# --- folders: what may be replaced ---------------------------------------------------------

def test_a_new_output_folder_is_marked_and_group_readable(tmp_path, umask):
    umask(0o022)
    out = save(tmp_path / "run", "1")
    assert listing(out) == [MARKER, "a.txt", "b.txt"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o644}
    marker = read_marker(out)
    assert marker["kind"] == "toy" and marker["complete"] and marker["files"] == ["a.txt",
                                                                                   "b.txt"]
    assert listing(tmp_path) == ["run"]                     # no temp folders


def test_a_folder_of_the_users_is_refused_and_left_byte_identical(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.md").write_bytes(b"my notes\n\x00")
    with pytest.raises(InputError) as err:
        save(out, "1")
    message = str(err.value)
    assert str(out) in message and "new or empty folder" in message and "\n" not in message
    assert snapshot(out) == {"notes.md": b"my notes\n\x00"} and listing(tmp_path) == ["results"]


def test_an_output_of_another_kind_is_refused(tmp_path):
    out = atomic_write_dir(tmp_path / "run", write_ab("1"),
                           kind=OutputKind("other", "another output", files=("a.txt",)))
    with pytest.raises(InputError, match="holds a GexScope other output, not a toy output"):
        save(out, "2")
    assert (out / "a.txt").read_text() == "a 1"


def test_empty_folders_and_files_in_the_way(tmp_path):
    (tmp_path / "empty").mkdir()
    assert listing(save(tmp_path / "empty", "1")) == [MARKER, "a.txt", "b.txt"]
    (tmp_path / "file").write_text("mine")
    with pytest.raises(InputError, match="is a file, not a folder"):
        save(tmp_path / "file", "1")
    assert (tmp_path / "file").read_text() == "mine"


def test_replacing_an_output_keeps_user_files_and_drops_only_our_stale_files(tmp_path):
    out = save(tmp_path / "run", "1")
    (out / "state").mkdir()                                 # as training writes train_state/
    (out / "notes.md").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "data.csv").write_text("1,2")
    save(out, "2", b=False)
    assert listing(out) == [MARKER, "a.txt", "notes.md", "state", "sub"]   # b.txt was ours
    assert (out / "a.txt").read_text() == "a 2" and (out / "sub" / "data.csv").read_text() == "1,2"
    assert read_marker(out)["files"] == ["a.txt", "state"]
    assert listing(tmp_path) == ["run"]


def test_a_user_file_named_like_an_output_is_never_overwritten(tmp_path):
    out = save(tmp_path / "run", "1", b=False)
    (out / "b.txt").write_text("mine, not GexScope's")
    with pytest.raises(InputError, match="b.txt was not written by GexScope"):
        check_output_dir(out, KIND)
    with pytest.raises(InputError, match="b.txt was not written by GexScope"):
        save(out, "2")
    assert (out / "b.txt").read_text() == "mine, not GexScope's"
    assert (out / "a.txt").read_text() == "a 1" and listing(tmp_path) == ["run"]


def test_an_unmarked_output_of_an_older_version_is_recognised(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("a.txt", "b.txt", "legacy", "notes.md"):
        (out / name).write_text("old")
    save(out, "2", b=False)
    # b.txt is one of the kind's files, so an old version wrote it; legacy and notes are kept
    assert listing(out) == [MARKER, "a.txt", "legacy", "notes.md"]


def test_a_failure_while_writing_keeps_the_old_output_whole(tmp_path):
    out = save(tmp_path / "run", "1")
    (out / "notes.md").write_text("mine")
    before = snapshot(out)

    def fail(tmp: Path) -> None:
        (tmp / "a.txt").write_text("half")
        raise OSError("disk full (simulated)")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_dir(out, fail, kind=KIND)
    assert snapshot(out) == before and listing(tmp_path) == ["run"]


def test_without_a_kind_the_caller_owns_the_folder(tmp_path):
    """The workspace's use: the old folder is replaced whole, except the entries in `keep`."""
    out = atomic_write_dir(tmp_path / "run", write_ab("1"))
    (out / "state").mkdir()
    (out / "extra").write_text("x")
    atomic_write_dir(out, write_ab("2", b=False), keep=("state",))
    assert listing(out) == ["a.txt", "state"] and listing(tmp_path) == ["run"]


# --- a kill at every point of the swap -----------------------------------------------------

# os.replace calls of a save over an existing output: 1 the marker's "complete", 2 old folder
# aside, 3 new folder in place, 4-5 notes.md and state/ moved across; then the old one removed.
SWAP_KILLS = [("replace", 1), ("replace", 2), ("replace", 3), ("replace", 4), ("replace", 5),
              ("rmtree", 1)]


@pytest.mark.parametrize("name, call", SWAP_KILLS)
def test_a_kill_anywhere_in_a_save_is_finished_or_undone_on_the_next_start(tmp_path, name,
                                                                         call, caplog):
    out = save(tmp_path / "run", "1")
    (out / "notes.md").write_bytes(b"mine\n")
    (out / "state").mkdir()
    (out / "state" / "s.json").write_text("{}")
    owner = os if name == "replace" else shutil
    when = (lambda path, *rest: ".run." in str(path)) if name == "rmtree" else None
    with killed_at(owner, name, call, when=when):
        save(out, "2")
    leftovers = [p for p in listing(tmp_path) if p != "run"]
    assert leftovers, "a kill mid-save leaves its temp folders"
    with caplog.at_level(logging.WARNING, logger="gexcore.atomic"):
        check_output_dir(out, KIND)                         # the next start of the command
    assert listing(tmp_path) == ["run"]
    assert (out / "notes.md").read_bytes() == b"mine\n" and (out / "state" / "s.json").is_file()
    version = (out / "a.txt").read_text()
    assert version == ("a 1" if (name, call) == ("replace", 1) else "a 2")
    assert (out / "b.txt").read_text() == version.replace("a", "b")
    assert caplog.records, "recovery says what it did"


def test_leftovers_without_our_marker_or_of_a_live_writer_are_left_alone(tmp_path, caplog):
    out = save(tmp_path / "run", "1")
    legacy = tmp_path / ".run.abc123.tmp"                   # an older version's temp folder
    legacy.mkdir()
    (legacy / "model.bin").write_text("finished model")
    busy = tmp_path / ".run.def456.tmp"                     # another process writing now
    busy.mkdir()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        marker = {**read_marker(out), "complete": False, "token": "def456", "pid": child.pid}
        (busy / MARKER).write_text(json.dumps(marker))
        with caplog.at_level(logging.WARNING, logger="gexcore.atomic"):
            recover_dir(out, KIND)
        assert legacy.is_dir() and busy.is_dir()
        assert any(".run.abc123.tmp" in r.getMessage() for r in caplog.records)
    finally:
        child.kill()
        child.wait()
    recover_dir(out, KIND)                                  # its writer is gone: ours to remove
    assert not busy.exists() and legacy.is_dir()


def test_recovery_only_looks_at_this_outputs_temp_names(tmp_path):
    out = save(tmp_path / "run", "1")
    other = save(tmp_path / "run2", "1")
    stray = tmp_path / ".run2.zzz.tmp"
    shutil.copytree(other, stray)
    marker = {**read_marker(other), "complete": False, "token": "zzz"}
    (stray / MARKER).write_text(json.dumps(marker))
    recover_dir(out, KIND)
    assert stray.is_dir()
