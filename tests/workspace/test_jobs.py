"""Submitting, cancelling and recovering jobs; a queued job waits for the slot."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from gexcore.errors import InputError
from gexcore.workspace import (
    INTERRUPTED,
    PretrainJob,
    all_jobs,
    cancel,
    queue_position,
    recover,
    register_job_kind,
    submit,
)
from gexcore.workspace.jobs import job_kind_of
from gexcore.workspace.runs import insert_run, update_run
from gexcore.workspace.slot import job_slot
from tests.workspace._sleep_job import SleepJob
from tests.workspace.conftest import finished, settled, wait_for


def _row(ws, status="running", pid=None, kind="sleep") -> str:
    with ws.connect() as conn:
        run_id = insert_run(conn, kind, "r", {})
        update_run(conn, run_id, status=status, pid=pid)
    return run_id


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_queued_job_waits_for_the_slot_then_runs(tmp_workspace):
    """No process waits for a queued job: it starts when the job holding the slot ends."""
    base = tmp_workspace.root.parent
    with job_slot(base, "other", "pretrain"):            # a gex command holds the only slot
        run_id = submit(tmp_workspace, SleepJob(steps=2), threads=1)
        run = tmp_workspace.run(run_id)
        assert run.status == "queued" and run.pid is None
        assert [(e.user, e.state) for e in all_jobs(base)] == [("other", "running"),
                                                               ("tester", "queued")]
        assert queue_position(base, run_id) == (1, None)  # no finished pretrain job: unknown
    run = wait_for(tmp_workspace, run_id, finished, timeout=60)   # the slot's end started it
    assert run.status == "done", run.error
    assert run.metrics == {"steps": 2} and run.progress["fraction"] == 1.0
    assert (tmp_workspace.run_dir(run_id) / "result.txt").read_text() == "slept"
    assert [e.state for e in settled(base)] == ["done", "done"]


def test_cancel_while_queued_never_starts_a_worker(tmp_workspace):
    base = tmp_workspace.root.parent
    with job_slot(base, "other", "pretrain"):
        run_id = submit(tmp_workspace, SleepJob(), threads=1)
        assert cancel(tmp_workspace, run_id)
        assert tmp_workspace.run(run_id).status == "cancelled"
    (_, entry) = all_jobs(base)
    assert entry.state == "cancelled" and entry.handle == "" and entry.pid is None
    assert tmp_workspace.run(run_id).status == "cancelled"
    assert not tmp_workspace.run_dir(run_id).exists()
    assert not cancel(tmp_workspace, run_id)             # already over


def test_submit_checks_the_job_before_queueing(tmp_workspace):
    with pytest.raises(InputError, match="no cohort 'nope'"):
        submit(tmp_workspace, PretrainJob(cohort="nope", method="scarf"))
    assert tmp_workspace.runs() == []


def test_submit_refuses_bad_settings(tmp_workspace, tiny_cohort):
    cohort_id = tmp_workspace.add_cohort(tiny_cohort, "tiny")
    with pytest.raises(InputError, match="method must be one of"):
        submit(tmp_workspace, PretrainJob(cohort=cohort_id, method="bert"))
    with pytest.raises(InputError, match="preset must be one of"):
        submit(tmp_workspace, PretrainJob(cohort=cohort_id, method="scarf", preset="huge"))
    with pytest.raises(ValueError, match="TrainConfig.epochs must be an integer >= 1"):
        PretrainJob(cohort=cohort_id, method="scarf", train={"epochs": 0})
    assert tmp_workspace.runs() == []


def test_recover_fails_runs_whose_worker_is_gone(tmp_workspace):
    dead = _row(tmp_workspace, "running", pid=_dead_pid())
    reused = _row(tmp_workspace, "queued", pid=os.getpid())   # alive, but not this run's worker
    fresh = _row(tmp_workspace, "queued", pid=None)            # submit has not recorded a pid
    done = _row(tmp_workspace, "done", pid=_dead_pid())
    tmp_workspace.save_array(dead, "embedding-x", [1.0])
    stale = tmp_workspace.root / "runs" / f".{dead}.abc123.tmp"
    stale.mkdir()
    assert sorted(recover(tmp_workspace)) == sorted([dead, reused])
    for run_id in (dead, reused):
        run = tmp_workspace.run(run_id)
        assert run.status == "failed" and run.error == INTERRUPTED and run.finished
    assert tmp_workspace.run(fresh).status == "queued"
    assert tmp_workspace.run(done).status == "done"
    assert not stale.exists() and tmp_workspace.load_array(dead, "embedding-x") is None
    assert recover(tmp_workspace, grace_s=0.0) == [fresh]
    assert recover(tmp_workspace) == []


def test_register_job_kind_needs_a_dataclass_and_submit_a_registered_job(tmp_workspace):
    with pytest.raises(TypeError, match="must be a dataclass"):
        register_job_kind("odd", dict, lambda job, ctx: {})
    with pytest.raises(InputError, match="not allowed"):
        register_job_kind("bad kind", SleepJob, lambda job, ctx: {})

    @dataclasses.dataclass(frozen=True)
    class Unregistered:
        x: int = 1

    with pytest.raises(TypeError, match="not a registered job class"):
        submit(tmp_workspace, Unregistered())
    assert job_kind_of(SleepJob()).modules == ("tests.workspace._sleep_job",)


def test_a_worker_starts_without_the_job_kinds_it_does_not_run():
    """Each worker once imported every job kind (anndata, pandas: ~1 s per job start); the
    built-in kinds now load on first use, and a worker loads only its run's modules."""
    code = ("import sys, gexcore.workspace.worker, gexcore.workspace as w; "
            "print('anndata' in sys.modules, w.PretrainJob.__name__, 'anndata' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "PretrainJob", "False"]
