"""Saving a selection as a clinical column of a stored cohort (`Workspace.add_annotation`)."""

from __future__ import annotations

import pandas as pd
import pytest

from gexcore.errors import InputError
from gexcore.workspace import open_workspace
from gexcore.workspace.sharing import qualify


def test_a_selection_becomes_a_new_column_and_nothing_else_changes(tmp_workspace, tiny_cohort):
    cohort = tmp_workspace.add_cohort(tiny_cohort, "tiny")
    tmp_workspace.add_annotation(cohort, " my cluster ", [3, 1, 3, 7])
    adata = tmp_workspace.load_cohort(cohort)
    column = adata.obs["my cluster"]
    assert column.notna().sum() == 3 and set(column.dropna()) == {"my cluster"}
    assert column.iloc[[1, 3, 7]].tolist() == ["my cluster"] * 3
    pd.testing.assert_frame_equal(adata.obs.drop(columns="my cluster"), tiny_cohort.obs)
    assert (adata.X == tiny_cohort.X)[~pd.isna(tiny_cohort.X)].all()

    tmp_workspace.add_annotation(cohort, "other", [0, 2], value="group B")
    assert tmp_workspace.load_cohort(cohort).obs["other"].iloc[0] == "group B"


@pytest.mark.parametrize("name", ["cancer_type", "CANCER_TYPE", "label", "time"])
def test_existing_and_reserved_columns_are_never_overwritten(tmp_workspace, tiny_cohort, name):
    cohort = tmp_workspace.add_cohort(tiny_cohort, "tiny")
    before = tmp_workspace.cohort_path(cohort).read_bytes()
    with pytest.raises(InputError, match="never overwritten"):
        tmp_workspace.add_annotation(cohort, name, [0, 1])
    assert tmp_workspace.cohort_path(cohort).read_bytes() == before


@pytest.mark.parametrize("name", ["", "  ", "../x", "<b>x</b>", "a" * 65, "_hidden"])
def test_unsafe_column_names_and_empty_selections_are_refused(tmp_workspace, tiny_cohort, name):
    cohort = tmp_workspace.add_cohort(tiny_cohort, "tiny")
    with pytest.raises(InputError, match="not allowed"):
        tmp_workspace.add_annotation(cohort, name, [0])
    with pytest.raises(InputError, match="selected samples"):
        tmp_workspace.add_annotation(cohort, "fine", [])
    with pytest.raises(InputError, match="selected samples"):
        tmp_workspace.add_annotation(cohort, "fine", [tiny_cohort.n_obs])


def test_shared_cohorts_are_read_only(tmp_path, tiny_cohort):
    alice, bob = open_workspace(tmp_path, "alice"), open_workspace(tmp_path, "bob")
    cohort = alice.add_cohort(tiny_cohort, "alice's")
    alice.share("cohort", cohort, ["bob"])
    before = alice.cohort_path(cohort).read_bytes()
    with pytest.raises(InputError, match="read-only"):
        bob.add_annotation(qualify("alice", cohort), "bobs", [0, 1])
    assert alice.cohort_path(cohort).read_bytes() == before
