"""GCT 1.2 / 1.3 reader on the files in tests/fixtures/gct."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from gexcore.data.gct import is_gct, read_gct
from gexcore.errors import InputError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "gct"
GTEX = FIXTURES / "gtex_style_v12.gct"
SYMBOLS = FIXTURES / "symbols_v12.gct.gz"
CMAP = FIXTURES / "cmap_style_v13.gct.gz"
GTEX_SAMPLES = ["GTEX-1A2B3-0011-R10a-SM-4AD4C", "GTEX-1C4D5-2126-SM-5EGIV",
                "GTEX-1E6F7-0526-SM-7DHLN"]


def _edited(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = gzip.decompress(source.read_bytes()).decode() if source.suffix == ".gz" \
        else source.read_text()
    assert old in text
    path = tmp_path / source.name.removesuffix(".gz")
    path.write_text(text.replace(old, new, 1))
    return path


def test_v12_gtex_style():
    parsed = read_gct(GTEX)
    assert parsed.values.shape == (3, 5) and parsed.values.dtype == np.float32
    assert list(parsed.samples) == GTEX_SAMPLES
    assert parsed.genes.index[1] == "ENSG00000227232.5"
    assert parsed.values[1, 1] == np.float32(11.04)        # WASH7P, second sample
    assert parsed.values[2, 4] == np.float32(0.0621)       # FAM138A, third sample
    assert parsed.genes.loc["ENSG00000227232.5", "Description"] == "WASH7P"
    assert parsed.genes.loc["ENSG00000278267.1", "gene_symbol"] == "MIR6859-1"
    assert parsed.genes.loc["ENSG00000278267.1", "ensembl_id"] == "ENSG00000278267.1"
    assert parsed.sample_info is None and parsed.format == "gct"
    assert parsed.notes[0] == "GCT 1.2: 5 genes x 3 samples."
    assert any("'Description'" in n for n in parsed.notes)


def test_v12_free_text_description_is_not_a_symbol():
    parsed = read_gct(SYMBOLS)
    assert list(parsed.samples) == ["ALL_1", "AML_1"]
    assert list(parsed.genes.index) == ["TP53", "EGFR", "MYC", "ESR1"]
    assert "gene_symbol" not in parsed.genes and "ensembl_id" not in parsed.genes
    assert parsed.genes.loc["TP53", "Description"] == "tumor protein p53"
    assert parsed.genes["Description"].isna().sum() == 2   # 'na' and empty
    assert parsed.values[1, 1] == np.float32(301.25)
    assert math.isnan(parsed.values[1, 2])                 # 'NaN' cell


def test_v13_row_and_column_metadata():
    parsed = read_gct(CMAP)
    assert parsed.values.shape == (3, 4)
    assert list(parsed.genes.index) == ["5720", "466", "6009", "2309"]   # Entrez ids stay text
    assert parsed.values[0, 0] == np.float32(-0.4512)
    assert parsed.values[1, 3] == np.float32(0.0001)
    assert math.isnan(parsed.values[2, 2])
    assert parsed.genes.loc["466", "pr_gene_title"] == "activating transcription factor 1"
    assert parsed.genes.loc["466", "gene_symbol"] == "ATF1"
    info = parsed.sample_info
    assert list(info.index) == ["CPC004_A375_6H:K06", "CPC004_A375_6H:K07", "CPC004_PC3_6H:K06"]
    assert list(info.columns) == ["cell_id", "pert_iname", "pert_dose"]
    assert info.loc["CPC004_PC3_6H:K06", "cell_id"] == "PC3"
    assert info.loc["CPC004_A375_6H:K06", "pert_dose"] == "10"
    assert math.isnan(info.loc["CPC004_A375_6H:K07", "pert_dose"])   # CMap's -666
    assert "2 row- and 3 column-metadata fields" in parsed.notes[0]


def test_sniffing():
    assert is_gct(GTEX) and is_gct(SYMBOLS) and is_gct(CMAP)
    assert not is_gct(FIXTURES.parent / "geo" / "GSE999901_series_matrix.txt.gz")
    assert not is_gct(FIXTURES / "absent.gct")


def test_bad_version_line(tmp_path: Path):
    with pytest.raises(InputError, match=r"gtex_style_v12.gct: line 1 is '#1.4', but a GCT file "
                                         "starts with '#1.2' or '#1.3'"):
        read_gct(_edited(tmp_path, GTEX, "#1.2", "#1.4"))


def test_bad_dimensions_line(tmp_path: Path):
    with pytest.raises(InputError, match=r"line 2 is '5\tthree', but GCT 1.2 expects 2 whole "
                                         "numbers"):
        read_gct(_edited(tmp_path, GTEX, "5\t3\n", "5\tthree\n"))
    with pytest.raises(InputError, match="GCT 1.3 expects 4 whole numbers"):
        read_gct(_edited(tmp_path, CMAP, "4\t3\t2\t3\n", "4\t3\n"))


def test_declared_columns_differ_from_header(tmp_path: Path):
    with pytest.raises(InputError, match=r"line 2 declares 4 columns \(samples\) but the header "
                                         "on line 3 has 3"):
        read_gct(_edited(tmp_path, GTEX, "5\t3\n", "5\t4\n"))


def test_declared_rows_differ_when_lines_are_missing(tmp_path: Path):
    text = GTEX.read_text()
    path = tmp_path / GTEX.name
    path.write_text("".join(text.splitlines(keepends=True)[:-2]))
    with pytest.raises(InputError, match=r"line 2 declares 5 rows \(genes\) but 3 data rows were "
                                         "found; the file looks truncated"):
        read_gct(path)


def test_v13_declared_rows_too_few(tmp_path: Path):
    with pytest.raises(InputError, match=r"declares 3 rows \(genes\) but 4 data rows were found; "
                                         "correct the row count"):
        read_gct(_edited(tmp_path, CMAP, "4\t3\t2\t3\n", "3\t3\t2\t3\n"))


def test_line_cut_short(tmp_path: Path):
    path = tmp_path / GTEX.name
    path.write_bytes(GTEX.read_bytes()[:-9])               # inside the last data row
    with pytest.raises(InputError, match=r"the last line has 4 fields but the header has 5\. "
                                         "The file looks truncated"):
        read_gct(path)


def test_non_numeric_cell(tmp_path: Path):
    with pytest.raises(InputError, match=r"gene 'ENSG00000227232.5' \(row 2 of the data\), sample "
                                         r"'GTEX-1C4D5-2126-SM-5EGIV' holds '11.04x'"):
        read_gct(_edited(tmp_path, GTEX, "\t11.04\t", "\t11.04x\t"))


def test_duplicate_sample_ids(tmp_path: Path):
    with pytest.raises(InputError, match="sample 'ALL_1' appears more than once"):
        read_gct(_edited(tmp_path, SYMBOLS, "ALL_1\tAML_1", "ALL_1\tALL_1"))


def test_spreadsheet_export_with_padding_and_crlf(tmp_path: Path):
    text = GTEX.read_text().replace("#1.2\n", "#1.2\t\t\t\t\n").replace("5\t3\n", "5\t3\t\t\t\n")
    path = tmp_path / "saved_from_excel.gct"
    path.write_bytes(text.replace("\n", "\r\n").encode())
    parsed = read_gct(path)
    assert list(parsed.samples) == GTEX_SAMPLES            # no '\r' on the last sample id
    assert parsed.values[1, 1] == np.float32(11.04)
    assert parsed.genes.loc["ENSG00000237613.2", "gene_symbol"] == "FAM138A"
