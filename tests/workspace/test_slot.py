"""`gex pretrain` / `gex evaluate` wait in the same queue as the app's jobs (GEX_MAX_PARALLEL
honoured); `--no-queue` skips it; an admin's cancel reaches a waiting or running command."""

from __future__ import annotations

import threading
import time

import pytest

from gexcore.cli import main
from gexcore.workspace import all_jobs, cancel_job, queue_position
from gexcore.workspace.slot import cli_user, job_slot


@pytest.fixture
def cli_env(tmp_path, tiny_cohort, monkeypatch):
    base = tmp_path / "base"
    monkeypatch.setenv("GEX_WORKSPACE", str(base))
    monkeypatch.setenv("GEX_USER", "carol")
    path = tmp_path / "tiny.h5ad"
    tiny_cohort.write_h5ad(path)
    return base, path


def _in_thread(argv: list[str]) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(rc=main(argv)), daemon=True)
    thread.start()
    return thread, result


def _entry_of(base, user: str, state: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (found := [e for e in all_jobs(base) if e.user == user and e.state == state]):
        assert time.monotonic() < deadline, all_jobs(base)
        time.sleep(0.05)
    return found[0]


def test_gex_pretrain_waits_for_the_slot_the_app_holds(cli_env, tmp_path, capsys):
    """`gex pretrain` once trained beside the app's jobs, whatever GEX_MAX_PARALLEL said."""
    base, cohort = cli_env
    out = tmp_path / "enc"
    with job_slot(base, "other", "pretrain"):
        thread, result = _in_thread(["pretrain", str(cohort), "--method", "scarf",
                                     "--epochs", "1", "--out", str(out)])
        entry = _entry_of(base, "carol", "queued")
        assert entry.origin == "cli" and entry.name == "gex pretrain enc"
        assert queue_position(base, entry.run_id) == (1, None)
        said = ""
        deadline = time.monotonic() + 60
        while "waiting for a job slot" not in said:      # the command says it waits
            assert time.monotonic() < deadline, said
            said += capsys.readouterr().err
            time.sleep(0.05)
        assert "number 1 in line, starts in unknown" in said
        assert thread.is_alive() and not out.exists()
    thread.join(timeout=120)
    assert result["rc"] == 0 and (out / "model.safetensors").exists()
    assert [(e.user, e.origin, e.state) for e in all_jobs(base)] == [
        ("other", "cli", "done"), ("carol", "cli", "done")]


def test_no_queue_starts_at_once_and_a_cancel_reaches_a_waiting_command(cli_env, tmp_path,
                                                                         capsys):
    base, cohort = cli_env
    with job_slot(base, "other", "pretrain"):
        assert main(["pretrain", str(cohort), "--method", "scarf", "--epochs", "1",
                     "--out", str(tmp_path / "now"), "--no-queue"]) == 0
        thread, result = _in_thread(["pretrain", str(cohort), "--method", "scarf",
                                     "--epochs", "1", "--out", str(tmp_path / "later")])
        entry = _entry_of(base, "carol", "queued")
        assert cancel_job(base, "carol", entry.run_id, by="admin")
        thread.join(timeout=60)
    assert result["rc"] == 2 and not (tmp_path / "later").exists()
    assert "the job queue ended this job before it started" in capsys.readouterr().err
    assert [e.state for e in all_jobs(base)] == ["done", "cancelled"]


def test_cli_user_is_a_safe_workspace_name(monkeypatch):
    monkeypatch.setenv("GEX_USER", "Dr. Ann O'Neil")
    assert cli_user() == "Dr._Ann_O_Neil"
    monkeypatch.setenv("GEX_USER", "../..")
    assert cli_user() == "cli"
