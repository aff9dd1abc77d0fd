"""read_cohort end to end: format detection, clinical joins at each barcode level, provenance."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gexcore.data import detect_format, read_cohort
from gexcore.errors import InputError

FIX = Path(__file__).resolve().parents[1] / "fixtures"
CBIO = FIX / "clinical" / "data_clinical_patient.txt"
XENA = FIX / "clinical" / "TCGA-ACC.survival.tsv"


def _expression(tmp_path: Path, samples: list[str], name="expr.tsv") -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(5, 1, (4, len(samples))).round(3), columns=samples,
                         index=pd.Index(["TP53", "EGFR", "MYC", "ESR1"], name="gene"))
    path = tmp_path / name
    frame.to_csv(path, sep="\t")
    return path


def test_cbioportal_patients_join_tumour_and_normal_at_patient_level(tmp_path):
    samples = ["TCGA-A1-A0SB-01A-11R-A144-07", "TCGA-A1-A0SB-11A-13R-A144-07",
               "TCGA-A2-A04P-01A-31R-A034-07", "TCGA-ZZ-ZZZZ-01A-11R-A144-07"]
    adata = read_cohort(_expression(tmp_path, samples), CBIO)
    clinical = adata.uns["validation"]["clinical"]
    assert clinical["n_matched"] == 3 and clinical["match_level"] == "patient"
    assert list(adata.obs["patient_id"][:2]) == ["TCGA-A1-A0SB", "TCGA-A1-A0SB"]
    # 0:LIVING -> 0, 1:DECEASED -> 1; the unmatched sample has no survival.
    np.testing.assert_array_equal(adata.obs["event"].to_numpy()[:3], [0, 0, 1])
    assert adata.obs["time"].iloc[2] == pytest.approx(18.03)
    assert np.isnan(adata.obs["time"].iloc[3])
    assert adata.uns["survival"]["time_unit"] == "months"
    assert any("TCGA-ZZ-ZZZZ" in w for w in adata.uns["validation"]["warnings"])


def test_xena_survival_joins_sample_level(tmp_path):
    samples = ["TCGA-OR-A5J1-01A-11R-A29S-07", "TCGA-OR-A5J2-01A-11R-A29S-07"]
    adata = read_cohort(_expression(tmp_path, samples), XENA)
    assert adata.uns["validation"]["clinical"]["match_level"] == "sample"
    assert list(adata.obs["time"]) == [1355, 1677]
    assert adata.uns["survival"]["time_column"] == "OS.time"


def test_explicit_survival_columns_override_detection(tmp_path):
    samples = ["TCGA-OR-A5J1-01", "TCGA-OR-A5J2-01"]
    adata = read_cohort(_expression(tmp_path, samples), XENA,
                        time_column="PFI.time", event_column="PFI")
    assert list(adata.obs["time"]) == [754, 289]


def test_no_overlap_is_an_error_and_leaves_files_alone(tmp_path):
    expr = _expression(tmp_path, ["S1", "S2"])
    before = hashlib.sha256(expr.read_bytes()).hexdigest()
    with pytest.raises(InputError, match="TCGA-A1-A0SB"):
        read_cohort(expr, CBIO)
    assert hashlib.sha256(expr.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expr.tsv"]


def test_missing_expression_file():
    with pytest.raises(InputError, match="not found"):
        read_cohort("/nonexistent/expr.csv")


@pytest.mark.parametrize("content,expected", [
    (b"#1.2\n1\t1\n", "gct"), (b"!Series_title\t\"x\"\n", "geo"),
    (b"# gene-model: GENCODE v36\n", "gdc_star"), (b"gene,S1\nA,1\n", "table"),
    (b"PAR1xxxx", "parquet"), (b"\x89HDF\r\n\x1a\nxxxx", "h5ad"),
])
def test_detect_format_sniffs_content_not_suffix(tmp_path, content, expected):
    path = tmp_path / "file.dat"
    path.write_bytes(content)
    assert detect_format(path) == expected


def test_provenance_and_h5ad_safe_uns(tmp_path):
    adata = read_cohort(_expression(tmp_path, ["TCGA-OR-A5J1-01", "TCGA-OR-A5J2-01"]), XENA)
    assert adata.uns["provenance"]["simulated"] is False
    adata.write_h5ad(tmp_path / "out.h5ad")              # uns/obs must be writable as read
