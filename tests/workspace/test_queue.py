"""The server-wide queue: first come, first served over users through one slot; positions and
estimates; the admin's view; per-user limits and where the settings come from."""

from __future__ import annotations

import itertools

import pytest

from gexcore.errors import InputError
from gexcore.evaluate.config import EvalConfig
from gexcore.workspace import (
    EvaluateJob,
    PretrainJob,
    all_jobs,
    audit,
    cancel_job,
    open_workspace,
    queue_position,
    submit,
)
from gexcore.workspace.queue import connect, enqueue, update_entry
from gexcore.workspace.settings import job_settings
from gexcore.workspace.slot import job_slot
from tests.workspace._sleep_job import SleepJob
from tests.workspace.conftest import finished, settled, wait_for


def test_jobs_of_three_users_through_one_slot_run_in_submission_order(tmp_workspace,
                                                                         monkeypatch):
    """12 jobs from 3 users, GEX_MAX_PARALLEL=1: none lost, none overlapping, started in the
    order they were submitted (not grouped by user)."""
    monkeypatch.setenv("GEX_MAX_PARALLEL", "1")
    base = tmp_workspace.root.parent
    users = ["ann", "bob", "cy", "ann", "ann", "bob", "cy", "cy", "bob", "ann", "cy", "bob"]
    submitted = []
    with job_slot(base, "admin", "pretrain"):           # hold the slot while all 12 queue
        for i, user in enumerate(users):
            ws = open_workspace(base, user)
            submitted.append((ws, submit(ws, SleepJob(steps=2, name=f"job {i}"), threads=1)))
        assert [queue_position(base, run_id)[0] for _, run_id in submitted] == list(
            range(1, 13))
    runs = [wait_for(ws, run_id, finished, timeout=180) for ws, run_id in submitted]
    assert [r.status for r in runs] == ["done"] * 12, [r.error for r in runs]
    assert [r.name for r in sorted(runs, key=lambda r: r.started)] == [
        f"job {i}" for i in range(12)]
    for before, after in itertools.pairwise(runs):
        assert before.finished <= after.started         # one at a time
    entries = settled(base)
    assert [(e.user, e.state) for e in entries[1:]] == [(u, "done") for u in users]


def test_position_and_estimate_from_median_durations_of_the_kinds_ahead(tmp_path):
    base, now = tmp_path, 10_000.0
    with connect(base) as conn:
        for i, seconds in enumerate((10.0, 20.0, 90.0)):          # median 20 s
            seq = enqueue(conn, "old", f"done-{i}", "sleep")
            update_entry(conn, seq, state="done", started=0.0, finished=seconds)
        running = enqueue(conn, "ann", "r1", "sleep")
        update_entry(conn, running, state="running", started=now - 5)   # 15 s to go
        enqueue(conn, "bob", "q1", "sleep")
        enqueue(conn, "ann", "q2", "sleep")
        enqueue(conn, "cy", "q3", "never-finished")
        enqueue(conn, "bob", "q4", "sleep")
    assert queue_position(base, "r1", now=now) == (0, 0.0)        # holds the slot
    assert queue_position(base, "q1", now=now) == (1, 15.0)
    assert queue_position(base, "q2", now=now) == (2, 35.0)
    assert queue_position(base, "q3", now=now) == (3, 55.0)
    assert queue_position(base, "q4", now=now) == (4, None)       # a kind ahead: unknown
    assert queue_position(base, "q2", now=now, max_parallel=2) == (2, 15.0)
    assert queue_position(base, "nope", now=now) == (0, 0.0)


def test_the_admin_lists_and_cancels_any_users_jobs(tmp_workspace):
    base = tmp_workspace.root.parent
    bob = open_workspace(base, "bob")
    with job_slot(base, "ann", "pretrain") as slot:
        run_id = submit(bob, SleepJob(), threads=1)
        assert [(e.user, e.origin, e.state) for e in all_jobs(base, active_only=True)] == [
            ("ann", "cli", "running"), ("bob", "app", "queued")]
        assert cancel_job(base, "bob", run_id, by="admin")
        assert bob.run(run_id).status == "cancelled"
        assert cancel_job(base, "ann", slot.run_id, by="admin")        # a running gex command
        assert slot.should_stop()
        with pytest.raises(Exception, match="cancelled from the job queue"):
            slot.stop_if_cancelled()
    assert [e.state for e in all_jobs(base)] == ["cancelled", "cancelled"]
    assert not cancel_job(base, "bob", run_id)
    events = [(e["event"], e["user"], e.get("by")) for e in audit.read(base)]
    assert ("job_submitted", "bob", None) in events
    assert ("job_cancelled", "bob", "admin") in events


def test_per_user_queue_limit_names_the_setting(tmp_workspace, monkeypatch):
    monkeypatch.setenv("GEX_MAX_QUEUED", "2")
    base = tmp_workspace.root.parent
    with job_slot(base, "other", "pretrain"):
        first = submit(tmp_workspace, SleepJob(), threads=1)
        submit(tmp_workspace, SleepJob(), threads=1)
        with pytest.raises(InputError, match=r"'tester' already has 2 job\(s\) queued or "
                                             r"running.*GEX_MAX_QUEUED=2"):
            submit(tmp_workspace, SleepJob(), threads=1)
        assert len(tmp_workspace.runs()) == 2                  # the refused run is not kept
        submit(open_workspace(base, "bob"), SleepJob(), threads=1)   # another user may queue
        cancel_job(base, "tester", first)
        submit(tmp_workspace, SleepJob(), threads=1)                 # a place freed up
        for run in tmp_workspace.runs(status="queued"):
            cancel_job(base, "tester", run.id)
        for run in open_workspace(base, "bob").runs(status="queued"):
            cancel_job(base, "bob", run.id)


def test_epoch_seed_and_disk_limits_name_the_setting(tmp_workspace, tiny_cohort, monkeypatch):
    cohort = tmp_workspace.add_cohort(tiny_cohort, "tiny")
    monkeypatch.setenv("GEX_MAX_EPOCHS", "50")
    monkeypatch.setenv("GEX_MAX_SEEDS", "3")
    with pytest.raises(InputError, match=r"asks for 80 epochs.*at most 50 \(GEX_MAX_EPOCHS=50\)"):
        submit(tmp_workspace, PretrainJob(cohort=cohort, method="scarf", train={"epochs": 80}))
    with pytest.raises(InputError, match=r"asks for 60 epochs"):      # nested config fields
        submit(tmp_workspace, EvaluateJob(cohort, "imputation",
                                          config=EvalConfig(finetune_epochs=60)))
    with pytest.raises(InputError, match=r"asks for 5 seeds.*GEX_MAX_SEEDS=3"):
        submit(tmp_workspace, EvaluateJob(cohort, "imputation", config=EvalConfig(seeds=5)))
    monkeypatch.setenv("GEX_MAX_DISK_GB", "0.00001")                  # the cohort is bigger
    with pytest.raises(InputError, match=r"workspace 'tester' uses .* GB.*GEX_MAX_DISK_GB"):
        submit(tmp_workspace, SleepJob())
    assert tmp_workspace.runs() == [] and all_jobs(tmp_workspace.root.parent) == []


def test_settings_come_from_env_then_jobs_toml_then_defaults(tmp_path, monkeypatch):
    for name in ("GEX_JOBS", "GEX_MAX_PARALLEL", "GEX_MAX_QUEUED", "GEX_SLURM_PARTITION"):
        monkeypatch.delenv(name, raising=False)
    assert job_settings(tmp_path).max_parallel == 1 and job_settings(tmp_path).jobs == "local"
    (tmp_path / "jobs.toml").write_text('jobs = "slurm"\nmax_parallel = 4\nmax_queued = 2\n'
                                        '[slurm]\npartition = "gpu"\ntimeout_min = 60\n')
    settings = job_settings(tmp_path)
    assert (settings.jobs, settings.max_parallel, settings.max_queued) == ("slurm", 4, 2)
    assert settings.slurm == {"gpus_per_node": 1, "timeout_min": 60, "partition": "gpu"}
    monkeypatch.setenv("GEX_MAX_PARALLEL", "2")
    monkeypatch.setenv("GEX_SLURM_PARTITION", "a100")
    settings = job_settings(tmp_path)
    assert settings.max_parallel == 2 and settings.slurm["partition"] == "a100"
    monkeypatch.setenv("GEX_JOBS", "kubernetes")
    with pytest.raises(InputError, match="GEX_JOBS='kubernetes'; expected one of local, slurm"):
        job_settings(tmp_path)
    monkeypatch.setenv("GEX_JOBS", "local")
    monkeypatch.setenv("GEX_MAX_PARALLEL", "two")
    with pytest.raises(InputError, match="GEX_MAX_PARALLEL='two'; expected an integer"):
        job_settings(tmp_path)
