"""The built-in jobs, run by real worker processes: pretrain (done, cancelled), embed; the
pretrain job's nested TrainConfig survives the registry's JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from gexcore.models.encoder import Encoder
from gexcore.train.config import TrainConfig
from gexcore.workspace import EmbedJob, PretrainJob, cancel, new_encoder, submit
from gexcore.workspace.worker import run_job
from tests.workspace.conftest import finished, queue, wait_for


@pytest.fixture
def cohort_id(tmp_workspace, tiny_cohort) -> str:
    return tmp_workspace.add_cohort(tiny_cohort, "tiny")


def test_new_encoder_matches_the_cli_defaults():
    assert new_encoder("transformer", preset="small").normalize.n_top_genes == 500
    assert new_encoder("scarf", preset="small").normalize.n_top_genes is None
    assert new_encoder("transformer", preset="small", top_genes=0).normalize.n_top_genes is None
    assert new_encoder("vime", preset="small", top_genes=20).normalize.n_top_genes == 20


def test_pretrain_job_params_round_trip_through_json():
    job = PretrainJob(cohort="c1", method="vime", top_genes=0,
                      train=TrainConfig(epochs=3, patience=None, grad_clip=None, device="cpu"))
    params = json.loads(json.dumps(asdict(job)))
    assert params["method"] == "vime" and params["train"]["epochs"] == 3
    assert PretrainJob(**params) == job


def test_pretrain_job_runs_in_a_worker_process(tmp_workspace, cohort_id, tiny_cohort):
    job = PretrainJob(cohort=cohort_id, method="scarf", preset="small",
                      train=TrainConfig(epochs=2, device="cpu"))
    run_id = submit(tmp_workspace, job, threads=1)
    run = wait_for(tmp_workspace, run_id, finished)
    assert run.status == "done", f"{run.error}\n{tmp_workspace.read_log(run_id)}"
    assert run.name == "scarf on tiny" and run.params["train"]["epochs"] == 2
    assert run.fraction == 1.0 and run.progress["fraction"] == 1.0
    assert run.metrics["epochs"] == 2 and run.metrics["method"] == "scarf"
    assert (run.metrics["n_samples"], run.metrics["n_genes"]) == (60, 40)
    assert run.metrics["best_val_loss"] is not None and run.metrics["seconds"] > 0
    encoder = Encoder.load(tmp_workspace.run_dir(run_id))
    embedding = tmp_workspace.embedding(cohort_id, run_id)
    assert embedding.shape == (60, encoder.dim) and embedding.dtype == np.float32
    np.testing.assert_allclose(encoder.embed(tiny_cohort), embedding, rtol=1e-5, atol=1e-5)
    assert "pretrain" in tmp_workspace.read_log(run_id)


def test_cancelled_pretrain_leaves_no_run_folder(tmp_workspace, cohort_id):
    job = PretrainJob(cohort=cohort_id, method="scarf", preset="small",
                      train=TrainConfig(epochs=100_000, patience=None, device="cpu"))
    run_id = submit(tmp_workspace, job, threads=1)
    run = wait_for(tmp_workspace, run_id, lambda r: r.progress.get("step", 0) > 0 or not r.active)
    assert run.status == "running", run.error
    environ = Path(f"/proc/{run.pid}/environ")
    if environ.exists():                         # the thread cap reached the worker
        assert b"OMP_NUM_THREADS=1\0" in environ.read_bytes()
    assert cancel(tmp_workspace, run_id)
    run = wait_for(tmp_workspace, run_id, finished, timeout=60)
    assert run.status == "cancelled" and 0 < run.progress["fraction"] < 1
    assert not tmp_workspace.run_dir(run_id).exists()
    assert [p.name for p in (tmp_workspace.root / "runs").iterdir()] == []
    assert tmp_workspace.embedding(cohort_id, run_id) is None


def test_embed_job_stores_the_embedding_under_the_encoder_run(tmp_workspace, cohort_id,
                                                              tiny_cohort):
    pretrain = queue(tmp_workspace, PretrainJob(cohort=cohort_id, method="vime", preset="small",
                                                 train=TrainConfig(epochs=1, device="cpu")))
    assert run_job(tmp_workspace, pretrain, threads=1) == "done"
    other = tmp_workspace.add_cohort(tiny_cohort[:25].copy(), "first 25")
    job = EmbedJob(cohort=other, run=pretrain)
    job.check(tmp_workspace)
    embed = queue(tmp_workspace, job)
    assert run_job(tmp_workspace, embed, threads=1) == "done"
    assert tmp_workspace.run(embed).metrics["n_samples"] == 25
    np.testing.assert_allclose(tmp_workspace.embedding(other, pretrain),
                               tmp_workspace.embedding(cohort_id, pretrain)[:25], atol=1e-5)


def test_embed_job_needs_a_finished_pretrain_run(tmp_workspace, cohort_id):
    from gexcore.errors import InputError

    queued = queue(tmp_workspace, PretrainJob(cohort=cohort_id, method="scarf"))
    with pytest.raises(InputError, match="queued pretrain run; pick a finished"):
        submit(tmp_workspace, EmbedJob(cohort=cohort_id, run=queued))
