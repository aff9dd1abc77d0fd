"""Backends: the submitit path (GEX_JOBS=slurm) run through submitit's local executor, which
runs the same job code through the same API; the Slurm parameters as sbatch would get them."""

from __future__ import annotations

import os

import pytest

from gexcore.workspace import all_jobs, cancel, submit
from gexcore.workspace.backends import SubmititBackend
from gexcore.workspace.settings import job_settings
from tests.workspace._sleep_job import SleepJob
from tests.workspace.conftest import finished, settled, wait_for

submitit = pytest.importorskip("submitit")


def test_submitit_local_executor_runs_a_job_with_progress_and_cancel(tmp_workspace,
                                                                     monkeypatch):
    monkeypatch.setenv("GEX_JOBS", "submitit-local")
    monkeypatch.setenv("GEX_MAX_PARALLEL", "2")
    base = tmp_workspace.root.parent
    done_id = submit(tmp_workspace, SleepJob(steps=4, step_s=0.05), threads=1)
    long_id = submit(tmp_workspace, SleepJob(steps=100_000, step_s=0.01), threads=1)

    run = wait_for(tmp_workspace, done_id, finished, timeout=120)
    assert run.status == "done", (run.error, tmp_workspace.read_log(done_id))
    assert run.metrics == {"steps": 4} and run.progress["fraction"] == 1.0
    assert run.progress["step"] == 4 and run.progress["total_steps"] == 4
    assert (tmp_workspace.run_dir(done_id) / "result.txt").read_text() == "slept"

    wait_for(tmp_workspace, long_id, lambda r: r.progress.get("step", 0) > 0, timeout=120)
    assert cancel(tmp_workspace, long_id)
    run = wait_for(tmp_workspace, long_id, finished, timeout=60)
    assert run.status == "cancelled" and not tmp_workspace.run_dir(long_id).exists()

    entries = settled(base)
    assert [(e.backend, e.state) for e in entries] == [("submitit-local", "done"),
                                                       ("submitit-local", "cancelled")]
    for entry in entries:                # the handle is submitit's job id, its log is the run's
        job = submitit.local.local.LocalJob(SubmititBackend("local", base).folder, entry.handle)
        assert job.paths.submitted_pickle.exists()
        assert "INFO" in tmp_workspace.read_log(entry.run_id)
    assert all_jobs(base, active_only=True) == []


def test_slurm_settings_become_sbatch_options(tmp_path, monkeypatch):
    """No cluster here: check that submitit's Slurm executor accepts the settings and writes
    them into the batch script it would submit (it only looks for `srun` on the PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "jobs.toml").write_text(
        'jobs = "slurm"\n[slurm]\npartition = "gpu"\ngpus_per_node = 2\ntimeout_min = 90\n'
        'cpus_per_task = 8\nadditional = { account = "lab" }\n')
    for name in ("GEX_JOBS", "GEX_SLURM_PARTITION", "GEX_SLURM_GPUS", "GEX_SLURM_TIME_MIN"):
        monkeypatch.delenv(name, raising=False)
    settings = job_settings(tmp_path)
    from gexcore.workspace.queue import QueueEntry

    entry = QueueEntry(seq=1, user="ann", run_id="r1", kind="pretrain", name="", origin="app",
                       state="starting", submitted=0.0)
    executor = submitit.AutoExecutor(folder=tmp_path / ".submitit", cluster="slurm")
    executor.update_parameters(**SubmititBackend._parameters(entry, settings))
    script = executor._executor._make_submission_file_text("python -c pass", "uid")
    for option in ("--partition=gpu", "--gpus-per-node=2", "--time=90", "--cpus-per-task=8",
                   "--account=lab", "--job-name=gex-pretrain-ann", "--ntasks-per-node=1"):
        assert f"#SBATCH {option}" in script, script
