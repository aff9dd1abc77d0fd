"""Workspace storage: user names, cohorts, cached arrays, the SQLite file."""

from __future__ import annotations

import numpy as np
import pytest

from gexcore.errors import InputError
from gexcore.workspace import array_name, open_workspace


@pytest.mark.parametrize("user", ["", "../x", "a/b", ".slots", "x" * 65, "a..b", "al ice", "demo"])
def test_open_workspace_refuses_unsafe_user_names(tmp_path, user):
    with pytest.raises(InputError, match="not allowed"):
        open_workspace(tmp_path, user)
    assert list(tmp_path.iterdir()) == []


def test_open_workspace_lays_out_folders(tmp_path):
    ws = open_workspace(tmp_path, "alice.smith-2")
    assert ws.root == tmp_path / "alice.smith-2" and ws.user == "alice.smith-2"
    assert {p.name for p in ws.root.iterdir()} >= {"cohorts", "runs", "logs", "arrays",
                                                    "workspace.sqlite"}
    with ws.connect() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cohort_round_trip(tmp_workspace, tiny_cohort):
    cohort_id = tmp_workspace.add_cohort(tiny_cohort, "  Tiny  ")
    info = tmp_workspace.cohort(cohort_id)
    assert (info.name, info.n_obs, info.n_vars) == ("Tiny", 60, 40)
    assert info.simulated and info.source == "simulated"
    assert info.label == "Tiny (60 x 40) [simulated]"
    assert [c.id for c in tmp_workspace.cohorts()] == [cohort_id]
    back = tmp_workspace.load_cohort(cohort_id)
    np.testing.assert_array_equal(back.X, tiny_cohort.X)
    assert list(back.obs_names) == list(tiny_cohort.obs_names)
    assert list(back.var_names) == list(tiny_cohort.var_names)
    assert [p.name for p in (tmp_workspace.root / "cohorts").iterdir()] == [f"{cohort_id}.h5ad"]


def test_cohorts_newest_first_and_delete(tmp_workspace, tiny_cohort):
    first = tmp_workspace.add_cohort(tiny_cohort, "first")
    second = tmp_workspace.add_cohort(tiny_cohort[:10].copy(), "second", source="upload")
    assert [c.id for c in tmp_workspace.cohorts()] == [second, first]
    assert tmp_workspace.cohort(second).source == "upload"
    tmp_workspace.delete_cohort(first)
    assert [c.id for c in tmp_workspace.cohorts()] == [second]
    assert not tmp_workspace.cohort_path(first).exists()


def test_unknown_cohort_is_a_clear_error(tmp_workspace):
    with pytest.raises(InputError, match="no cohort 'nope'"):
        tmp_workspace.load_cohort("nope")
    with pytest.raises(InputError, match="not allowed"):
        tmp_workspace.cohort_path("../escape")


def test_cohort_needs_a_name(tmp_workspace, tiny_cohort):
    with pytest.raises(InputError, match="needs a name"):
        tmp_workspace.add_cohort(tiny_cohort, " ")
    assert tmp_workspace.cohorts() == []


def test_arrays_round_trip_atomically(tmp_workspace):
    coords = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
    name = array_name("umap", n_neighbors=15, min_dist=0.1, seed=0)
    assert tmp_workspace.load_array("run-1", name) is None
    path = tmp_workspace.save_array("run-1", name, coords)
    assert path.name == f"{name}.npy" and [p.name for p in path.parent.iterdir()] == [path.name]
    back = tmp_workspace.load_array("run-1", name)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, coords)
    tmp_workspace.delete_arrays("run-1")
    assert tmp_workspace.load_array("run-1", name) is None


def test_array_names_are_stable_per_parameters():
    a = array_name("umap", n_neighbors=15, min_dist=0.1)
    assert a == array_name("umap", min_dist=0.1, n_neighbors=15)
    assert a != array_name("umap", n_neighbors=30, min_dist=0.1)
    assert a.startswith("umap-")


def test_array_refuses_unsafe_names_and_object_arrays(tmp_workspace):
    with pytest.raises(InputError, match="not allowed"):
        tmp_workspace.save_array("../x", "emb", np.zeros(3))
    with pytest.raises(ValueError):
        tmp_workspace.save_array("run-1", "objects", np.array([{"a": 1}], dtype=object))
    assert not (tmp_workspace.root / "arrays" / "run-1").exists() or \
        list((tmp_workspace.root / "arrays" / "run-1").iterdir()) == []


def test_a_second_process_sees_the_same_workspace(tmp_workspace, tiny_cohort):
    cohort_id = tmp_workspace.add_cohort(tiny_cohort, "shared")
    again = open_workspace(tmp_workspace.root.parent, "tester")
    assert [c.id for c in again.cohorts()] == [cohort_id]
