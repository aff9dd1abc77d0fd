"""Clinical tables: each public format, survival detection and parsing, joins, error paths."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gexcore import keys
from gexcore.data.clinical import (
    JoinReport,
    SurvivalColumns,
    detect_survival,
    join_clinical,
    patient_ids,
    read_clinical,
    survival_arrays,
)
from gexcore.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clinical"
SHARED = Path("/work/shared/data")
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="shared real data not present")


def _frame(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=pd.Index([f"S{i + 1}" for i in range(n)], name="sample"))


# ------------------------------------------------------------------------------------ reading

def test_cbioportal_patient_file():
    df = read_clinical(FIXTURES / "data_clinical_patient.txt")
    assert df.index.name == "PATIENT_ID"
    assert list(df.columns) == ["OS_MONTHS", "OS_STATUS", "DFS_MONTHS", "DFS_STATUS", "AGE", "SEX"]
    assert df.loc["TCGA-A2-A04P", "OS_MONTHS"] == pytest.approx(18.03)
    assert df.loc["TCGA-A2-A04P", "OS_STATUS"] == "1:DECEASED"
    assert np.isnan(df.loc["TCGA-A2-A04Q", "DFS_MONTHS"])          # '[Not Available]'
    assert pd.isna(df.loc["TCGA-A2-A04Q", "DFS_STATUS"])
    assert df["AGE"].dtype.kind == "i" and df.loc["TCGA-A1-A0SB", "AGE"] == 70
    assert df.attrs["format"] == "cbioportal"
    assert df.attrs["display_names"]["OS_MONTHS"] == "Overall Survival (Months)"
    assert df.attrs["datatypes"]["OS_STATUS"] == "STRING"
    assert df.attrs["source"] == "data_clinical_patient.txt"


def test_cbioportal_sample_file_prefers_sample_id():
    df = read_clinical(FIXTURES / "data_clinical_sample.txt")
    assert df.index.name == "SAMPLE_ID"
    assert df.loc["TCGA-A1-A0SD-01", "PATIENT_ID"] == "TCGA-A1-A0SD"
    assert df.loc["TCGA-A1-A0SB-01", "TUMOR_PURITY"] == pytest.approx(0.62)
    assert np.isnan(df.loc["TCGA-A2-A04P-01", "TUMOR_PURITY"])
    assert not detect_survival(df)                               # no survival: falsy, not an error


def test_cbioportal_sample_file_by_patient_column():
    df = read_clinical(FIXTURES / "data_clinical_sample.txt", sample_column="PATIENT_ID")
    assert df.index.name == "PATIENT_ID" and "SAMPLE_ID" in df.columns
    assert df.loc["TCGA-A2-A04Q", "SAMPLE_ID"] == "TCGA-A2-A04Q-01"


def test_xena_survival_file():
    df = read_clinical(FIXTURES / "TCGA-ACC.survival.tsv")
    assert df.index.name == "sample" and df.attrs["format"] == "xena"
    assert df.loc["TCGA-OR-A5J1-01", "OS.time"] == 1355
    assert df.loc["TCGA-OR-A5J3-01", "_PATIENT"] == "TCGA-OR-A5J3"
    assert np.isnan(df.loc["TCGA-OR-A5J1-01", "DFI.time"])       # empty cell


def test_gdc_clinical_tsv_missing_marker_and_duplicates():
    df = read_clinical(FIXTURES / "clinical.tsv")
    assert df.index.name == "case_submitter_id" and df.attrs["format"] == "gdc"
    assert np.isnan(df.loc["TCGA-A1-A0SB", "days_to_death"])     # GDC's "'--"
    assert df.loc["TCGA-A2-A04P", "days_to_death"] == 548
    assert df["days_to_death"].dtype.kind == "f"
    assert df.attrs["n_duplicates_dropped"] == 1                 # one row per treatment in GDC
    assert df.attrs["duplicate_ids"] == ["TCGA-A1-A0SB"]
    assert df.loc["TCGA-A1-A0SB", "treatment_type"] == "Pharmaceutical Therapy, NOS"  # first kept
    assert len(df) == 5


def test_plain_tsv_keeps_text_ids_and_first_duplicate():
    df = read_clinical(FIXTURES / "clinical_plain.tsv")
    assert df.index.name == "ID" and list(df.index) == ["007", "008", "009"]
    assert df.loc["008", "survival_time"] == 30                  # first of two '008' rows
    assert df.loc["007", "batch_id"] == "01"                     # id-like column stays text
    assert pd.isna(df.loc["008", "stage"]) and np.isnan(df.loc["009", "survival_time"])
    assert df.attrs["n_duplicates_dropped"] == 1


def test_r_write_csv_unnamed_id_column():
    df = read_clinical(FIXTURES / "clinical_rmangled.csv")
    assert df.index.name == "id"
    assert df.loc["TCGA.A2.A04P.01", "subtype"] == "Basal"
    assert df.loc["TCGA.A2.A04P.01", "OS"] == 1


def test_r_write_table_header_without_id_field(tmp_path):
    path = tmp_path / "clin.txt"                 # R's write.table(sep="\t", quote=FALSE)
    path.write_text("OS.time\tOS\nTCGA.A1.A0SB.01\t259\t0\nTCGA.A2.A04P.01\t548\t1\n")
    df = read_clinical(path)
    assert df.index.name == "id" and list(df.columns) == ["OS.time", "OS"]
    assert df.loc["TCGA.A2.A04P.01", "OS.time"] == 548 and df.loc["TCGA.A2.A04P.01", "OS"] == 1


def test_gzip_and_separator_detection(tmp_path):
    path = tmp_path / "clinical.txt.gz"
    with open(FIXTURES / "clinical_bad_event.csv", "rb") as src, gzip.open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    df = read_clinical(path)
    assert df.index.name == "sample_id" and df.loc["S02", "time"] == 300
    semicolon = tmp_path / "c.txt"
    semicolon.write_text("sample;age\nA;1.5\nB;2\n")
    assert read_clinical(semicolon).loc["B", "age"] == 2


def test_id_column_falls_back_to_first_column(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("donor,age\nd1,40\nd2,50\n")
    df = read_clinical(path)
    assert df.index.name == "donor" and df.loc["d2", "age"] == 50


@needs_shared
def test_real_gse7390_clinical():
    df = read_clinical(SHARED / "gse7390_breast" / "clinical.csv")
    assert df.index.name == "sample" and df.shape == (198, 6)
    assert df.loc["gse7390_000", "tdm_days"] == 723 and df.loc["gse7390_001", "er"] == "positive"
    cols = detect_survival(df)
    assert (cols.time_column, cols.event_column) == ("tdm_days", "tdm_event")
    assert cols.time_unit == "days" and cols.endpoint == "TDM"
    time, event = survival_arrays(df, cols)
    assert np.nansum(event) == 51 and time[0] == 723


@needs_shared
def test_real_tissue_clinical_has_no_survival():
    df = read_clinical(SHARED / "tissue_gene_expression" / "clinical.csv")
    assert df.shape == (189, 1) and df.loc["cerebellum_1", "tissue"] == "cerebellum"
    cols = detect_survival(df)
    assert not cols and cols.time_column is None and cols.candidates == ()


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


# --------------------------------------------------------------------------------------- join

def test_join_exact():
    clinical = read_clinical(FIXTURES / "clinical_bad_event.csv")
    obs, report = join_clinical(["S02", "S01", "S09"], clinical)
    assert report.match_level == "exact"
    assert (report.n_samples, report.n_matched, report.n_unmatched) == (3, 2, 1)
    assert report.unmatched_samples == ("S09",)
    assert report.unused_clinical_ids == ("S03", "S04") and report.n_unused_clinical == 2
    assert list(obs.index) == ["S02", "S01", "S09"]
    assert obs.loc["S02", "time"] == 300 and np.isnan(obs.loc["S09", "time"])
    assert list(obs["clinical_id"].iloc[:2]) == ["S02", "S01"]
    assert pd.isna(obs["clinical_id"].iloc[2])
    assert report.summary() == ("2 of 3 samples matched clinical rows (exact ids); unmatched: "
                                "S09; 2 clinical row(s) unused")


def test_join_sample_level_from_full_barcodes():
    clinical = read_clinical(FIXTURES / "TCGA-ACC.survival.tsv")
    samples = ["TCGA-OR-A5J1-01A-11R-A29S-07", "TCGA-OR-A5J2-01A-11R-A29S-07",
               "TCGA-OR-A5J3-01A-11R-A29S-07", "TCGA-OR-A5J9-01A-11R-A29S-07"]
    obs, report = join_clinical(samples, clinical)
    assert report.match_level == "sample" and report.n_matched == 3
    assert report.unmatched_samples == ("TCGA-OR-A5J9-01A-11R-A29S-07",)
    assert report.n_unused_clinical == 2
    assert obs.loc[samples[1], "OS.time"] == 1677
    assert obs.loc[samples[0], "clinical_id"] == "TCGA-OR-A5J1-01"
    assert "sample-level barcodes" in report.summary()


def test_join_patient_level_maps_tumour_and_normal_to_one_row():
    clinical = read_clinical(FIXTURES / "data_clinical_patient.txt")
    samples = ["TCGA-A2-A04P-01A-31R-A034-07", "TCGA-A2-A04P-11A-33R-A034-07",
               "TCGA-A1-A0SB-01A-11R-A144-07"]
    obs, report = join_clinical(samples, clinical)
    assert report.match_level == "patient"
    assert (report.n_matched, report.n_samples) == (3, 3)
    assert report.n_unused_clinical == 3 and report.unmatched_samples == ()
    assert list(obs["OS_STATUS"]) == ["1:DECEASED", "1:DECEASED", "0:LIVING"]
    assert report.summary() == ("3 of 3 samples matched clinical rows (patient-level barcodes, "
                                "first 12 characters); 3 clinical row(s) unused")


def test_join_r_mangled_ids():
    clinical = read_clinical(FIXTURES / "clinical_rmangled.csv")
    exact, report = join_clinical(["TCGA-A1-A0SB-01", "tcga-a2-a04p-01 "], clinical)
    assert report.match_level == "exact" and report.n_matched == 2
    assert list(exact["OS.time"]) == [259, 548]
    full, report = join_clinical(["TCGA-A2-A04Q-01A-11R-A034-07"], clinical)
    assert report.match_level == "sample" and full.iloc[0]["subtype"] == "LumA"


def test_join_prefers_level_that_matches_most():
    clinical = _frame(age=[1, 2])
    clinical.index = pd.Index(["TCGA-AA-0001-01", "TCGA-AA-0002"], name="sample")
    # exact: 1 (the -01 sample); patient: 2 (both)
    _, report = join_clinical(["TCGA-AA-0001-01", "TCGA-AA-0002-01A"], clinical)
    assert (report.match_level, report.n_matched) == ("patient", 2)


def test_join_with_no_overlap_shows_examples_and_hint():
    clinical = read_clinical(FIXTURES / "clinical_bad_event.csv")
    with pytest.raises(InputError, match=r"clinical_bad_event.csv: none of the 4 .*'GSM1', "
                                         r"'GSM2', 'GSM3'.*'S01', 'S02', 'S03'.*sample_column"):
        join_clinical(["GSM1", "GSM2", "GSM3", "GSM4"], clinical)


@needs_shared
def test_join_real_gse7390_exact():
    clinical = read_clinical(SHARED / "gse7390_breast" / "clinical.csv")
    obs, report = join_clinical(clinical.index[::-1], clinical)
    assert (report.match_level, report.n_matched, report.n_unused_clinical) == ("exact", 198, 0)
    assert obs["tdm_event"].sum() == 51 and obs.index[0] == clinical.index[-1]


def test_join_report_as_dict():
    report = JoinReport(n_samples=3, n_matched=2, match_level="exact", unmatched_samples=("x",))
    out = report.as_dict()
    assert out["unmatched_samples"] == ["x"] and out["summary"].startswith("2 of 3 samples")


def test_patient_ids():
    ids = ["TCGA-A2-A04P-01A-31R-A034-07", "TCGA.A2.A04P.11", "TCGA-A1-A0SB", "gse7390_000",
           "TARGET-20-PADZCG-04A-01R"]
    out = patient_ids(ids)
    assert out.name == keys.OBS_PATIENT and list(out.index) == ids
    assert list(out) == ["TCGA-A2-A04P", "TCGA-A2-A04P", "TCGA-A1-A0SB", "gse7390_000",
                         "TARGET-20-PADZCG"]


# ------------------------------------------------------------------------------- read errors

def test_missing_sample_column_lists_columns():
    with pytest.raises(InputError, match=r"clinical_bad_event.csv: no column 'barcode'.*"
                                         r"'sample_id', 'time', 'event', 'group'"):
        read_clinical(FIXTURES / "clinical_bad_event.csv", sample_column="barcode")


def test_header_without_rows(tmp_path):
    path = tmp_path / "header_only.csv"
    path.write_text("sample,OS.time,OS\n")
    with pytest.raises(InputError, match="header_only.csv: has a header .* no data rows"):
        read_clinical(path)


def test_cbioportal_comments_without_header(tmp_path):
    path = tmp_path / "data_clinical_patient.txt"
    path.write_text("#Patient Identifier\n#x\n#STRING\n#1\n")
    with pytest.raises(InputError, match="no header line"):
        read_clinical(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty.csv: the file is empty"):
        read_clinical(path)
