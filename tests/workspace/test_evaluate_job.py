"""The evaluate job in a real worker: report folder in the run, metrics in the registry; its
nested EvalConfig survives the registry's JSON."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from gexcore.errors import InputError
from gexcore.evaluate.config import EvalConfig
from gexcore.workspace import EvaluateJob, submit
from gexcore.workspace.demo import ensure_demo
from gexcore.workspace.evaluate_job import REPORT_DIR
from tests.workspace.conftest import finished, wait_for


def test_evaluate_job_params_round_trip_through_json():
    job = EvaluateJob("c1", "survival", groups="tertiles",
                      config=EvalConfig(methods=("vime",), fractions=(1.0, 0.1), top_genes=50))
    params = json.loads(json.dumps(asdict(job)))
    assert (params["cohort"], params["task"]) == ("c1", "survival")
    assert params["config"]["fractions"] == [0.1, 1.0]
    assert EvaluateJob(**params) == job
    with pytest.raises(ValueError, match="unknown EvalConfig key"):
        EvaluateJob("c1", config={"epochs": 3})


def test_classification_report_lands_in_the_run(tmp_workspace, tiny_cohort):
    cohort = tmp_workspace.add_cohort(tiny_cohort, "tiny")
    job = EvaluateJob(cohort, "classification", label="cancer_type",
                      config=EvalConfig(methods=("scarf",), fractions=(1.0,), seeds=1,
                                        pretrain_epochs=1, finetune_epochs=1))
    run = wait_for(tmp_workspace, submit(tmp_workspace, job), finished)
    assert run.status == "done", run.error
    report = tmp_workspace.run_dir(run.id) / REPORT_DIR
    data = json.loads((report / "results.json").read_text())
    assert data["task"] == "classification" and (report / "predictions.csv").exists()
    assert run.metrics["metric"] == "macro_f1" and "scarf (fine-tuned)" in run.metrics


def test_whole_gene_imputation_report(tmp_workspace, tiny_cohort):
    cohort = tmp_workspace.add_cohort(tiny_cohort, "tiny")
    job = EvaluateJob(cohort, "imputation", missing="genes",
                      config=EvalConfig(methods=("vime",), seeds=1, pretrain_epochs=1))
    run = wait_for(tmp_workspace, submit(tmp_workspace, job), finished)
    assert run.status == "done", run.error
    assert run.name == "evaluate imputation of whole genes on tiny"
    data = json.loads((tmp_workspace.run_dir(run.id) / REPORT_DIR / "results.json").read_text())
    assert data["info"]["missing"] == "genes" and {r["model"] for r in data["scores"]} == {
        "mean", "knn", "vime"}
    with pytest.raises(InputError, match="missing must be 'cells' or 'genes'"):
        submit(tmp_workspace, EvaluateJob(cohort, "imputation", missing="rows"))


def test_bad_column_is_refused_before_queueing(tmp_workspace, tiny_cohort):
    cohort = tmp_workspace.add_cohort(tiny_cohort, "tiny")
    with pytest.raises(InputError, match="'subtype'.*columns are: .*cancer_type"):
        submit(tmp_workspace, EvaluateJob(cohort, "classification", label="subtype"))
    assert tmp_workspace.runs() == []


def test_demo_is_added_once(tmp_workspace):
    first = ensure_demo(tmp_workspace)
    second = ensure_demo(tmp_workspace)
    assert first == second and len(tmp_workspace.cohorts()) == 1
