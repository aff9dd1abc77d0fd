"""The impute job: a smaller panel filled by a finished VIME run becomes a new cohort."""

from __future__ import annotations

import numpy as np
import pytest

from gexcore.data.validate import describe
from gexcore.errors import InputError
from gexcore.train.config import TrainConfig
from gexcore.workspace import ImputeJob, PretrainJob, submit
from gexcore.workspace.worker import run_job
from tests.workspace.conftest import queue


@pytest.fixture
def cohort_id(tmp_workspace, tiny_cohort) -> str:
    return tmp_workspace.add_cohort(tiny_cohort, "tiny")


def _pretrain(ws, cohort_id, method: str) -> str:
    run_id = queue(ws, PretrainJob(cohort=cohort_id, method=method, preset="small",
                                   train=TrainConfig(epochs=1, device="cpu")))
    assert run_job(ws, run_id, threads=1) == "done"
    return run_id


def test_impute_job_stores_the_filled_panel_as_a_new_cohort(tmp_workspace, cohort_id,
                                                             tiny_cohort):
    ws = tmp_workspace
    run_id = _pretrain(ws, cohort_id, "vime")
    panel = tiny_cohort[:, 8:].copy()                  # a panel without the first 8 genes
    panel.uns["validation"] = describe(panel, source="panel.csv", format="table").to_dict()
    panel_id = ws.add_cohort(panel, "panel")
    job = ImputeJob(cohort=panel_id, run=run_id)
    job.check(ws)
    impute = queue(ws, job)
    assert run_job(ws, impute, threads=1) == "done"

    metrics = ws.run(impute).metrics
    assert metrics["n_genes_added"] == 8
    new = ws.cohort(metrics["cohort"])
    assert new.name == f"panel (filled by {ws.run(run_id).name})" and new.n_vars == 40
    filled = ws.load_cohort(new.id)
    assert list(filled.var_names[-8:]) == list(tiny_cohort.var_names[:8])
    assert filled.layers["imputed"][:, -8:].all() and np.isfinite(filled.X[:, -8:]).all()
    assert metrics["n_cells"] == int(filled.layers["imputed"].sum())
    assert filled.uns["validation"]["n_genes"] == 40
    assert "cells filled by a vime encoder" in filled.uns["validation"]["notes"][-1]
    assert ws.load_cohort(panel_id).n_vars == 32                 # the original is untouched


def test_impute_job_needs_an_encoder_with_a_decoder(tmp_workspace, cohort_id):
    run_id = _pretrain(tmp_workspace, cohort_id, "scarf")
    with pytest.raises(InputError, match="no value decoder; fill genes with a transformer"):
        submit(tmp_workspace, ImputeJob(cohort=cohort_id, run=run_id))
