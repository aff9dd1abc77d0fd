"""Cohort rules: which rows enter a fit, which columns can be a label or survival, uns records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gexcore.data.rules import (
    has_survival,
    is_label_column,
    label_columns,
    labelled_rows,
    survival_columns,
    survival_info,
    survival_rows,
    time_unit,
)
from gexcore.errors import InputError


def test_labelled_rows_drop_missing_labels_and_singleton_classes():
    obs = pd.DataFrame({"type": ["a", "a", "b", "b", "c", None]})
    keep, y = labelled_rows(obs, "type")
    assert keep.tolist() == [True, True, True, True, False, False]
    assert y[:4].tolist() == ["a", "a", "b", "b"]
    with pytest.raises(InputError, match="two classes with 2\\+ samples"):
        labelled_rows(pd.DataFrame({"type": ["a", "a", "b"]}), "type")
    with pytest.raises(InputError, match="columns are: type"):
        labelled_rows(obs, "tissue")


def test_survival_rows_need_positive_times_and_binary_events():
    obs = pd.DataFrame({"t": np.r_[np.arange(1.0, 13.0), 0.0, np.nan],
                        "e": [1, 0] * 6 + [1, 1]})
    keep, t, e = survival_rows(obs, "t", "e")
    assert keep.sum() == 12 and not keep[12:].any()          # time 0 and NaN are out
    assert e.dtype.kind == "i" and e[~keep].sum() == 0
    assert t[:3].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(InputError, match="at least 10 samples"):
        survival_rows(obs.iloc[:9], "t", "e")
    bools = obs.assign(e=obs["e"].astype(bool))
    assert survival_rows(bools, "t", "e")[0].sum() == 12


def test_one_label_rule_for_the_pages_and_the_column_guess():
    obs = pd.DataFrame({
        "cancer_type": ["x", "y"] * 10,
        "label": ["p", "q", "r", "s"] * 5,
        "age": np.linspace(30, 80, 20),                       # continuous: not a label
        "stage": [1, 2, 3, 4] * 5,                            # few numeric values: a label
        "sample": [f"s{i}" for i in range(20)],               # one class per sample
        "one": ["same"] * 20,
    })
    assert label_columns(obs) == ["cancer_type", "label", "stage"]
    assert not is_label_column(obs["sample"]) and not is_label_column(obs["one"])


def test_survival_candidates_and_records():
    obs = pd.DataFrame({"os": np.arange(20.0), "dead": [0, 1] * 10, "time": np.arange(20.0),
                        "event": [1, 0] * 10, "name": list("abcdefghijklmnopqrst")})
    times, events = survival_columns(obs)
    assert times[0] == "time" and "os" in times and events[0] == "event" and "dead" in events
    assert has_survival(obs) and not has_survival(obs.drop(columns="event"))
    info = survival_info("os", "dead", "months", "OS", obs["os"].to_numpy(),
                         obs["dead"].to_numpy())
    assert info["n_with_time"] == 20 and info["n_events"] == 10
    uns = {"survival": info}
    assert time_unit(uns, "time") == ("months", "OS")         # obs['time'] was read from "os"
    assert time_unit(uns, "os") == ("months", "OS")
    assert time_unit(uns, "age") == ("", "")
    assert time_unit({"survival": {**info, "time_unit": "unknown"}}, "time") == ("", "OS")
