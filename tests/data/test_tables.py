"""Plain tables: orientation detection, annotation columns, and every bad-input message."""

from __future__ import annotations

import gzip
import hashlib
import pickle

import numpy as np
import pandas as pd
import pytest

from gexcore.data import read_cohort
from gexcore.errors import InputError

GENES = ["TP53", "BRCA1", "EGFR", "MYC", "GAPDH"]
SAMPLES = ["TCGA-A1-A0SB-01", "TCGA-A1-A0SD-01", "TCGA-A1-A0SE-01"]


def _matrix() -> pd.DataFrame:
    """genes x samples with distinct values, so transposition mistakes show."""
    values = np.arange(15, dtype=float).reshape(5, 3) + 0.5
    return pd.DataFrame(values, index=pd.Index(GENES, name="gene"), columns=SAMPLES)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("sep,suffix", [(",", ".csv"), ("\t", ".tsv"), ("\t", ".txt.gz")])
def test_genes_by_samples_detected(tmp_path, sep, suffix):
    path = tmp_path / f"expr{suffix}"
    _matrix().to_csv(path, sep=sep)
    adata = read_cohort(path)
    assert list(adata.obs_names) == SAMPLES and list(adata.var_names) == GENES
    assert adata.X.dtype == np.float32
    assert adata.X[1, 2] == pytest.approx(_matrix().loc["EGFR", SAMPLES[1]])
    assert adata.uns["validation"]["orientation"] == "genes x samples"


def test_samples_by_genes_detected(tmp_path):
    path = tmp_path / "expr.csv"
    _matrix().T.rename_axis("sample").to_csv(path)
    adata = read_cohort(path)
    assert list(adata.var_names) == GENES
    assert adata.X[2, 4] == pytest.approx(_matrix().loc["GAPDH", SAMPLES[2]])


def test_orientation_override(tmp_path):
    path = tmp_path / "expr.csv"
    _matrix().to_csv(path)
    adata = read_cohort(path, orientation="samples_by_genes")
    assert list(adata.obs_names) == GENES


def test_ambiguous_ids_put_genes_on_longer_axis(tmp_path):
    frame = pd.DataFrame(np.ones((8, 3)), index=[str(i) for i in range(8)],
                         columns=["101", "102", "103"])
    frame.to_csv(tmp_path / "x.csv")
    assert read_cohort(tmp_path / "x.csv").shape == (3, 8)


def test_cbioportal_matrix_annotation_columns(tmp_path):
    """cBioPortal data_mrna files carry Hugo_Symbol and a numeric Entrez_Gene_Id column."""
    text = ("Hugo_Symbol\tEntrez_Gene_Id\tTCGA-A1-A0SB-01\tTCGA-A1-A0SD-01\n"
            "TP53\t7157\t1.5\t-0.2\nEGFR\t1956\t0.3\tNA\n")
    path = tmp_path / "data_mrna_seq_v2_rsem_zscores.txt"
    path.write_text(text)
    adata = read_cohort(path)
    assert adata.shape == (2, 2)
    assert adata.var.loc["TP53", "Entrez_Gene_Id"] == 7157
    assert np.isnan(adata.X[1, 1])


def test_r_write_table_header_without_rowname_cell(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("S1\tS2\nTP53\t1\t2\nEGFR\t3\t4\nMYC\t5\t6\n")
    adata = read_cohort(path)
    assert list(adata.obs_names) == ["S1", "S2"] and adata.X[1, 2] == 6


def test_missing_tokens_become_nan_and_are_reported(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("gene,S1,S2\nTP53,1,NA\nEGFR,,2\nMYC,null,3\n")
    adata = read_cohort(path)
    assert np.isnan(adata.X).sum() == 3
    assert adata.uns["validation"]["missing_fraction"] == pytest.approx(0.5)


def test_missing_refused_when_not_allowed(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("gene,S1,S2\nTP53,1,NA\nEGFR,4,2\n")
    with pytest.raises(InputError, match="sample 'S2', gene 'TP53' is missing"):
        read_cohort(path, allow_missing=False)


def test_non_numeric_cell_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("gene,S1,S2,S3\nTP53,1,2,3\nEGFR,4,5,6\nMYC,7,high,9\nGAPDH,1,1,1\n")
    before = _digest(path)
    with pytest.raises(InputError, match=r"bad.csv: gene 'MYC' \(row 3.*sample 'S2' holds 'high'"):
        read_cohort(path)
    assert _digest(path) == before


def test_infinite_cell_named(tmp_path):
    path = tmp_path / "inf.csv"
    path.write_text("gene,S1,S2\nTP53,1,inf\nEGFR,4,5\n")
    with pytest.raises(InputError, match="gene 'TP53', sample 'S2' is infinite"):
        read_cohort(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty.csv: the file is empty"):
        read_cohort(path)


def test_header_only(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("gene,S1,S2\n")
    with pytest.raises(InputError, match="header but no data rows"):
        read_cohort(path)


def test_truncated_text_last_line(tmp_path):
    path = tmp_path / "cut.tsv"
    path.write_text("gene\tS1\tS2\tS3\nTP53\t1\t2\t3\nEGFR\t4\t5")
    with pytest.raises(InputError, match="the last line has 3 fields but the header has 4.*truncated"):
        read_cohort(path)


def test_ragged_middle_line_named(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("gene,S1,S2\nTP53,1,2\nEGFR,4,5,7\nMYC,1,1\n")
    with pytest.raises(InputError, match="line 3 has 4 fields but the header has 3"):
        read_cohort(path)


def test_truncated_gzip(tmp_path):
    full = tmp_path / "full.csv.gz"
    _matrix().to_csv(full)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(full.read_bytes()[:-12])
    with pytest.raises(InputError, match="cut.csv.gz: the gzip stream is truncated or corrupt"):
        read_cohort(cut)


def test_binary_junk(tmp_path):
    path = tmp_path / "junk.csv"
    path.write_bytes(b"gene,S1\n" + bytes(range(256)) * 4)
    with pytest.raises(InputError, match="junk.csv: binary content"):
        read_cohort(path)


def test_pickle_is_refused_not_loaded(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("executed!",))

    path = tmp_path / "model.csv"
    path.write_bytes(pickle.dumps(Boom(), protocol=4))
    with pytest.raises(InputError, match="pickle"):
        read_cohort(path)


def test_matrix_too_large_for_memory_refused_before_reading(tmp_path):
    path = tmp_path / "big.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("gene," + ",".join(f"S{i}" for i in range(200)) + "\n")
        for g in range(300):
            fh.write(f"G{g}," + ",".join(["1.0"] * 200) + "\n")
    with pytest.raises(InputError, match="more than this machine can hold.*gex convert"):
        read_cohort(path, max_memory=30_000)


def test_duplicate_sample_ids_named(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("gene,S1,S2,S1\nTP53,1,2,3\nEGFR,4,5,6\nMYC,1,1,1\n")
    with pytest.raises(InputError, match="sample id 'S1' appears 2 times"):
        read_cohort(path)


def test_declared_counts_refuse_negatives(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("gene,S1,S2\nTP53,10,20\nEGFR,-4,5\nMYC,1,1\n")
    with pytest.raises(InputError, match="declared as counts but sample 'S1', gene 'EGFR' is -4"):
        read_cohort(path, scale="counts")


def test_parquet_round_trip(tmp_path):
    path = tmp_path / "expr.parquet"
    _matrix().T.rename_axis("sample").to_parquet(path)
    adata = read_cohort(path)
    assert adata.shape == (3, 5) and adata.uns["validation"]["format"] == "parquet"
    assert adata.X[0, 1] == pytest.approx(_matrix().loc["BRCA1", SAMPLES[0]])


def test_h5ad_round_trip_keeps_obs(tmp_path):
    src = tmp_path / "expr.csv"
    _matrix().to_csv(src)
    first = read_cohort(src)
    first.obs["tissue"] = ["a", "b", "a"]
    first.write_h5ad(tmp_path / "c.h5ad")
    second = read_cohort(tmp_path / "c.h5ad")
    np.testing.assert_array_equal(first.X, second.X)
    assert list(second.obs["tissue"]) == ["a", "b", "a"]


def test_corrupt_h5ad(tmp_path):
    path = tmp_path / "bad.h5ad"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(InputError, match="bad.h5ad: not a readable .h5ad"):
        read_cohort(path)


def test_report_survives_nan_text_and_values(tmp_path):
    """Regression: to_dict once replaced every "NaN" substring, corrupting notes and ids."""
    from gexcore.data.validate import ValidationReport

    report = ValidationReport(source="NaN_batch.csv", format="table", n_samples=0, n_genes=0,
                              notes=["column NaNcy kept"])
    d = report.to_dict()
    assert d["source"] == "NaN_batch.csv" and d["notes"] == ["column NaNcy kept"]
    assert d["value_min"] == "nan"
    assert "nan .. nan" in str(ValidationReport(**d))


def test_probe_ids_are_not_gene_symbols(tmp_path):
    path = tmp_path / "probes.csv"
    path.write_text("ID_REF,GSM1,GSM2\n200726_at,1,2\n1007_s_at,3,4\n")
    adata = read_cohort(path)
    assert "gene_symbol" not in adata.var
    assert adata.uns["validation"]["gene_ids"]["gene_id"].startswith("microarray probe ids")
