"""The run registry: insert, list, guarded updates, JSON-safe values."""

from __future__ import annotations

import math

import pytest

from gexcore.errors import InputError
from gexcore.workspace.runs import insert_run, update_run


def _insert(ws, kind="pretrain", name="r", params=None) -> str:
    with ws.connect() as conn:
        return insert_run(conn, kind, name, params or {}, modules=("m1", "m2"))


def test_insert_and_read_back(tmp_workspace):
    run_id = _insert(tmp_workspace, params={"cohort": "c1", "epochs": 2, "top": None})
    run = tmp_workspace.run(run_id)
    assert (run.kind, run.name, run.status) == ("pretrain", "r", "queued")
    assert run.params == {"cohort": "c1", "epochs": 2, "top": None}
    assert run.modules == ("m1", "m2") and run.active and run.fraction == 0.0
    assert run.label == "r (pretrain, queued)" and run.elapsed_s == 0.0
    assert tmp_workspace.run_dir(run_id) == tmp_workspace.root / "runs" / run_id


def test_list_filters_by_kind_and_status(tmp_workspace):
    a = _insert(tmp_workspace, "pretrain")
    b = _insert(tmp_workspace, "embed")
    c = _insert(tmp_workspace, "pretrain")
    with tmp_workspace.connect() as conn:
        update_run(conn, c, status="done")
    assert [r.id for r in tmp_workspace.runs()] == [c, b, a]
    assert [r.id for r in tmp_workspace.runs(kind="pretrain")] == [c, a]
    assert [r.id for r in tmp_workspace.runs(status="done")] == [c]
    assert [r.id for r in tmp_workspace.runs(kind="pretrain", status=("queued", "running"))] == [a]


def test_guarded_update_changes_only_matching_status(tmp_workspace):
    run_id = _insert(tmp_workspace)
    with tmp_workspace.connect() as conn:
        assert update_run(conn, run_id, status="running", only_if=("queued",))
        assert not update_run(conn, run_id, status="failed", only_if=("queued",))
        assert update_run(conn, run_id, status="done", only_if=("running",))
    run = tmp_workspace.run(run_id)
    assert run.status == "done" and run.fraction == 1.0 and not run.active


def test_non_finite_numbers_become_null(tmp_workspace):
    run_id = _insert(tmp_workspace)
    with tmp_workspace.connect() as conn:
        update_run(conn, run_id, metrics={"loss": math.nan, "auc": 0.5},
                   progress={"fraction": 0.25, "eta_s": math.inf})
    run = tmp_workspace.run(run_id)
    assert run.metrics == {"loss": None, "auc": 0.5}
    assert run.progress == {"fraction": 0.25, "eta_s": None} and run.fraction == 0.25


def test_unknown_columns_and_runs_are_refused(tmp_workspace):
    run_id = _insert(tmp_workspace)
    with tmp_workspace.connect() as conn, pytest.raises(ValueError, match="no column"):
        update_run(conn, run_id, id="x")
    with pytest.raises(InputError, match="no run 'missing'"):
        tmp_workspace.run("missing")


def test_delete_run_refuses_active_runs(tmp_workspace):
    run_id = _insert(tmp_workspace)
    with pytest.raises(InputError, match="cancel it first"):
        tmp_workspace.delete_run(run_id)
    with tmp_workspace.connect() as conn:
        update_run(conn, run_id, status="failed")
    tmp_workspace.run_dir(run_id).mkdir()
    tmp_workspace.save_array(run_id, "emb", [1.0])
    tmp_workspace.delete_run(run_id)
    assert tmp_workspace.runs() == [] and not tmp_workspace.run_dir(run_id).exists()
    assert tmp_workspace.load_array(run_id, "emb") is None
