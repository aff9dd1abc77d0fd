"""Column mapping before a cohort is saved: defaults from detected columns, standard obs keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gexcore import keys
from gexcore.errors import InputError
from gexcore.workspace.columns import ColumnMapping, apply_mapping, guess_mapping


@pytest.fixture
def cohort(tiny_cohort):
    obs = tiny_cohort.obs
    obs["OS_MONTHS"] = np.linspace(1, 60, tiny_cohort.n_obs)
    obs["OS_STATUS"] = ["1:DECEASED", "0:LIVING", ""] * (tiny_cohort.n_obs // 3)
    obs["Plate"] = ["p1", "p2"] * (tiny_cohort.n_obs // 2)
    return tiny_cohort


def test_guess_uses_standard_and_hinted_columns(cohort):
    guess = guess_mapping(cohort)
    assert guess == ColumnMapping(label="label", time="time", event="event", batch="batch",
                                  patient="patient_id")
    cohort.obs = cohort.obs.drop(columns=["label", "batch", "time", "event"])
    guess = guess_mapping(cohort)
    assert guess.label == "cancer_type" and guess.batch == "Plate" and guess.time is None


def test_apply_maps_columns_to_standard_keys(cohort):
    out = apply_mapping(cohort, ColumnMapping(label="sex", time="OS_MONTHS", event="OS_STATUS",
                                              batch="Plate", patient=None))
    obs = out.obs
    assert list(obs[keys.OBS_LABEL].cat.categories) == ["female", "male"]
    assert obs[keys.OBS_TIME].to_numpy() == pytest.approx(cohort.obs["OS_MONTHS"].to_numpy())
    assert obs[keys.OBS_EVENT].iloc[:3].tolist()[:2] == [1.0, 0.0]
    assert np.isnan(obs[keys.OBS_EVENT].iloc[2])
    assert out.uns[keys.UNS_SURVIVAL]["time_unit"] == "months"
    assert keys.OBS_PATIENT not in obs and obs["batch"].astype(str).iloc[0] == "p1"
    assert out.uns["column_mapping"]["patient"] == ""
    assert keys.OBS_PATIENT in cohort.obs and "OS_MONTHS" in out.obs        # input untouched


def test_apply_without_survival_drops_it(cohort):
    out = apply_mapping(cohort, ColumnMapping(label="label"))
    assert keys.OBS_TIME not in out.obs and keys.UNS_SURVIVAL not in out.uns


@pytest.mark.parametrize("mapping, match", [
    (ColumnMapping(time="OS_MONTHS"), "both a survival time and an event"),
    (ColumnMapping(label="nope"), "no column 'nope'"),
    (ColumnMapping(label="OS_STATUS", time="OS_MONTHS", event="sex"), "not an event value"),
])
def test_apply_refuses_bad_mappings(cohort, mapping, match):
    with pytest.raises(InputError, match=match):
        apply_mapping(cohort, mapping)


def test_label_needs_two_classes(cohort):
    cohort.obs["one"] = pd.Categorical(["x"] * cohort.n_obs)
    with pytest.raises(InputError, match="at least 2 classes"):
        apply_mapping(cohort, ColumnMapping(label="one"))
