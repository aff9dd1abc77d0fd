"""Clinical tables: each public format, joins to expression ids, error paths."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gexcore import keys
from gexcore.data.clinical import JoinReport, join_clinical, patient_ids, read_clinical
from gexcore.data.survival import detect_survival, survival_arrays
from gexcore.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clinical"
SHARED = Path(__file__).resolve().parents[2] / "assets" / "data"      # copies of ../shared/data


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


def test_real_gse7390_clinical():
    df = read_clinical(SHARED / "gse7390_breast" / "clinical.csv")
    assert df.index.name == "sample" and df.shape == (198, 6)
    assert df.loc["gse7390_000", "tdm_days"] == 723 and df.loc["gse7390_001", "er"] == "positive"
    cols = detect_survival(df)
    assert (cols.time_column, cols.event_column) == ("tdm_days", "tdm_event")
    assert cols.time_unit == "days" and cols.endpoint == "TDM"
    time, event = survival_arrays(df, cols)
    assert np.nansum(event) == 51 and time[0] == 723


def test_real_tissue_clinical_has_no_survival():
    df = read_clinical(SHARED / "tissue_gene_expression" / "clinical.csv")
    assert df.shape == (189, 1) and df.loc["cerebellum_1", "tissue"] == "cerebellum"
    cols = detect_survival(df)
    assert not cols and cols.time_column is None and cols.candidates == ()


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
