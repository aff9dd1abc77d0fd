"""Survival columns: detection on each clinical format, event and time parsing, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gexcore.data.clinical import read_clinical
from gexcore.data.survival import SurvivalColumns, detect_survival, survival_arrays
from gexcore.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clinical"
SHARED = Path(__file__).resolve().parents[2] / "assets" / "data"      # copies of ../shared/data


def _frame(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=pd.Index([f"S{i + 1}" for i in range(n)], name="sample"))


# -------------------------------------------------------------------------- survival detection

@pytest.mark.parametrize(("fixture", "expected"), [
    ("data_clinical_patient.txt", ("OS_MONTHS", "OS_STATUS", "months", "OS")),
    ("TCGA-ACC.survival.tsv", ("OS.time", "OS", "days", "OS")),
    ("clinical.tsv", ("days_to_death", "vital_status", "days", "OS")),
    ("clinical_plain.tsv", ("survival_time", "vital_status", "unknown", "OS")),
    ("clinical_rmangled.csv", ("OS.time", "OS", "days", "OS")),
    ("clinical_bad_event.csv", ("time", "event", "unknown", "unspecified")),
])
def test_detect_survival_on_each_format(fixture, expected):
    cols = detect_survival(read_clinical(FIXTURES / fixture))
    assert (cols.time_column, cols.event_column, cols.time_unit, cols.endpoint) == expected
    assert cols.candidates[0] == cols


def test_candidates_best_first():
    xena = detect_survival(read_clinical(FIXTURES / "TCGA-ACC.survival.tsv"))
    assert [c.endpoint for c in xena.candidates] == ["OS", "DSS", "PFI", "DFI"]
    assert [c.time_column for c in xena.candidates] == ["OS.time", "DSS.time", "PFI.time",
                                                         "DFI.time"]
    cbio = detect_survival(read_clinical(FIXTURES / "data_clinical_patient.txt"))
    assert [(c.time_column, c.event_column) for c in cbio.candidates] == [
        ("OS_MONTHS", "OS_STATUS"), ("DFS_MONTHS", "DFS_STATUS")]


def test_os_ranks_before_other_endpoints_regardless_of_column_order():
    df = _frame(DFS_MONTHS=[1.0], DFS_STATUS=["0:DiseaseFree"], OS_MONTHS=[2.0],
                OS_STATUS=["0:LIVING"])
    cols = detect_survival(df)
    assert cols.endpoint == "OS" and cols.candidates[1].endpoint == "DFS"


@pytest.mark.parametrize(("columns", "expected"), [
    (["tdm_days", "tdm_event"], ("tdm_days", "tdm_event", "days", "TDM")),
    (["time", "event"], ("time", "event", "unknown", "unspecified")),
    (["t.rfs", "e.rfs"], ("t.rfs", "e.rfs", "unknown", "RFS")),
    (["PFS_YEARS", "PFS_STATUS"], ("PFS_YEARS", "PFS_STATUS", "years", "PFS")),
    (["demographic.days_to_death", "demographic.vital_status"],
     ("demographic.days_to_death", "demographic.vital_status", "days", "OS")),
])
def test_pairing_by_shared_prefix(columns, expected):
    df = _frame(**{columns[0]: [10.0, 20.0], columns[1]: [1, 0], "age": [50, 60]})
    cols = detect_survival(df)
    assert (cols.time_column, cols.event_column, cols.time_unit, cols.endpoint) == expected


def test_unpaired_time_like_columns_are_ignored():
    df = _frame(age_years=[50.0], days_to_birth=[-18000.0], storage_time=[3.0])
    assert detect_survival(df).candidates == ()


def test_explicit_columns_override():
    df = read_clinical(FIXTURES / "data_clinical_patient.txt")
    cols = detect_survival(df, time_column="DFS_MONTHS", event_column="DFS_STATUS")
    assert (cols.time_column, cols.endpoint, cols.time_unit) == ("DFS_MONTHS", "DFS", "months")
    assert cols.candidates[0] == cols and len(cols.candidates) == 2
    assert detect_survival(df, time_column="DFS_MONTHS").event_column == "DFS_STATUS"
    custom = _frame(fu=[1.0, 2.0], dead_flag=[1, 0])
    assert not detect_survival(custom)
    named = detect_survival(custom, time_column="fu", event_column="dead_flag")
    assert (named.time_column, named.event_column, named.time_unit) == ("fu", "dead_flag",
                                                                        "unknown")


def test_explicit_bad_names_list_the_columns():
    df = read_clinical(FIXTURES / "data_clinical_patient.txt")
    with pytest.raises(InputError, match=r"data_clinical_patient.txt: no column 'OS_DAYS'.*"
                                         r"'OS_MONTHS'"):
        detect_survival(df, time_column="OS_DAYS")
    with pytest.raises(InputError, match="no column 'status'"):
        detect_survival(df, event_column="status")
    with pytest.raises(InputError, match="found no column to pair with 'AGE'"):
        detect_survival(df, time_column="AGE")


def test_survival_columns_as_dict_is_h5ad_safe():
    cols = detect_survival(read_clinical(FIXTURES / "data_clinical_patient.txt"))
    assert cols.as_dict() == {"time_column": "OS_MONTHS", "event_column": "OS_STATUS",
                              "time_unit": "months", "endpoint": "OS"}


# ---------------------------------------------------------------------------- survival arrays

def test_cbioportal_coded_status_parses_exactly():
    df = read_clinical(FIXTURES / "data_clinical_patient.txt")
    time, event = survival_arrays(df, detect_survival(df))
    np.testing.assert_array_equal(event, [0, 0, 1, 0, 1])
    np.testing.assert_allclose(time, [8.51, 14.36, 18.03, 110.77, 24.77])
    dfs = detect_survival(df, time_column="DFS_MONTHS", event_column="DFS_STATUS")
    _, dfs_event = survival_arrays(df, dfs)
    np.testing.assert_array_equal(dfs_event, [0, 0, 1, np.nan, 1])   # '[Not Available]' -> NaN
    assert time.dtype == np.float64 and event.dtype == np.float64


def test_gdc_time_is_death_if_dead_else_follow_up():
    df = read_clinical(FIXTURES / "clinical.tsv")
    cols = detect_survival(df)
    assert cols.censor_time_column == "days_to_last_follow_up"
    time, event = survival_arrays(df, cols)
    # A0SB alive 259; A04P dead 548 (not its follow-up 517); A0CM dead 754; A04Q alive 3370;
    # A0SD 'Not Reported' -> missing
    np.testing.assert_array_equal(time, [259, 548, 754, 3370, np.nan])
    np.testing.assert_array_equal(event, [0, 1, 1, 0, np.nan])


@pytest.mark.parametrize(("value", "expected"), [
    ("1:DECEASED", 1), ("0:LIVING", 0), ("1:Recurred/Progressed", 1), ("0:DiseaseFree", 0),
    ("1:DEAD WITH TUMOR", 1), ("0:ALIVE OR DEAD TUMOR FREE", 0),
    ("1", 1), ("0", 0), ("1.0", 1), (" 0 ", 0), (1, 1), (0, 0), (1.0, 1), (True, 1), (False, 0),
    ("TRUE", 1), ("false", 0), ("yes", 1), ("No", 0),
    ("Dead", 1), ("DECEASED", 1), ("died", 1), ("Alive", 0), ("LIVING", 0), ("censored", 0),
    ("", np.nan), ("NA", np.nan), ("[Not Available]", np.nan), ("'--", np.nan),
    ("Not Reported", np.nan), (None, np.nan),
])
def test_event_spellings(value, expected):
    df = _frame(time=[5.0, 6.0], event=pd.Series([value, 1], dtype=object).to_numpy())
    _, event = survival_arrays(df, SurvivalColumns("time", "event"))
    np.testing.assert_array_equal(event, [expected, 1])


def test_boolean_and_numeric_event_columns():
    bools = _frame(time=[1.0, 2.0], event=[True, False])
    assert list(survival_arrays(bools, detect_survival(bools))[1]) == [1, 0]
    floats = _frame(time=[1, 2, 3], event=[1.0, np.nan, 0.0])
    np.testing.assert_array_equal(survival_arrays(floats, detect_survival(floats))[1],
                                  [1, np.nan, 0])


def test_unrecognised_event_names_file_column_row_and_value():
    df = read_clinical(FIXTURES / "clinical_bad_event.csv")
    with pytest.raises(InputError, match=r"clinical_bad_event.csv: column 'event', row 3 "
                                         r"\(id 'S03'\) holds 'Lost to follow-up'.*1:DECEASED"):
        survival_arrays(df, detect_survival(df))


def test_r_one_two_event_coding_gets_a_hint():
    df = _frame(time=[1.0, 2.0], status=[1, 2])
    with pytest.raises(InputError, match=r"row 2 \(id 'S2'\) holds '2'.*subtract 1"):
        survival_arrays(df, detect_survival(df))


def test_negative_time_names_the_row(tmp_path):
    path = tmp_path / "neg.csv"
    path.write_text("sample,OS.time,OS\nA,10,1\nB,-3,0\nC,5,1\n")
    df = read_clinical(path)
    with pytest.raises(InputError, match=r"neg.csv: column 'OS.time', row 2 \(id 'B'\) has "
                                         r"negative time -3"):
        survival_arrays(df, detect_survival(df))


def test_non_numeric_time_names_the_row():
    df = _frame(OS_MONTHS=["3", "soon", "4"], OS_STATUS=["0:LIVING"] * 3)
    with pytest.raises(InputError, match=r"column 'OS_MONTHS', row 2 \(id 'S2'\) holds 'soon'"):
        survival_arrays(df, detect_survival(df))


def test_arrays_without_columns_say_what_to_do():
    with pytest.raises(InputError, match="time_column"):
        survival_arrays(_frame(age=[1]), SurvivalColumns())
