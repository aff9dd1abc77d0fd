"""GEO series matrix reader on tests/fixtures/geo/GSE999901_series_matrix.txt.gz."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from gexcore.data.geo import is_geo_series_matrix, read_geo_series_matrix
from gexcore.errors import InputError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "geo" / "GSE999901_series_matrix.txt.gz"
GSM = ["GSM4000001", "GSM4000002", "GSM4000003", "GSM4000004"]
PROBES = ["1007_s_at", "1053_at", "117_at", "121_at", "1255_g_at"]


def _fixture_text() -> str:
    with gzip.open(FIXTURE, "rt", newline="") as fh:
        return fh.read()


def _write(tmp_path: Path, text: str, name: str = "GSE999901_series_matrix.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    text = _fixture_text()
    assert old in text
    return _write(tmp_path, text.replace(old, new))


def test_values_probes_and_samples():
    parsed = read_geo_series_matrix(FIXTURE)
    assert parsed.values.shape == (4, 5) and parsed.values.dtype == np.float32
    assert list(parsed.samples) == GSM and list(parsed.genes.index) == PROBES
    assert parsed.values[0, 0] == np.float32(11.8722)      # 1007_s_at, GSM4000001
    assert parsed.values[1, 3] == np.float32(9.882)        # 121_at, GSM4000002
    assert math.isnan(parsed.values[2, 1])                 # 'null'
    assert math.isnan(parsed.values[3, 2])                 # empty cell
    assert int(np.isnan(parsed.values).sum()) == 2
    assert parsed.format == "geo" and not parsed.count_based


def test_sample_fields_and_characteristics_become_columns():
    info = read_geo_series_matrix(FIXTURE).sample_info
    assert list(info.index) == GSM
    assert list(info["title"]) == ["tumour_A", "tumour_B", "tumour_C", "tumour_D"]
    assert list(info["age"]) == ["45", "61", "38", "52"]
    assert list(info["e.dmfs"]) == ["0", "1", "0", "1"]
    assert info.loc["GSM4000002", "grade"] == "3" and info["grade"].isna().sum() == 2
    assert info.loc["GSM4000004", "node"] == "0" and info["node"].isna().sum() == 3
    assert info.loc["GSM4000001", "characteristics_ch1"] == "left breast"   # cell without ':'
    assert info.loc["GSM4000003", "data_processing"] == (
        "MAS5.0 signal, log2 transformed; scaled to target intensity 500")
    assert "geo_accession" not in info.columns
    assert list(info.columns).index("node") < list(info.columns).index("molecule_ch1")


def test_channel_two_and_clashing_keys_keep_their_channel(tmp_path: Path):
    extra = ('!Sample_characteristics_ch1\t"title: a"\t"title: b"\t"title: c"\t"title: d"\n'
             '!Sample_characteristics_ch2\t"age: 1"\t"age: 2"\t"age: 3"\t"age: 4"\n')
    path = _edited(tmp_path, "!Sample_molecule_ch1", extra + "!Sample_molecule_ch1")
    info = read_geo_series_matrix(path).sample_info
    assert info.loc["GSM4000002", "title"] == "tumour_B"
    assert info.loc["GSM4000002", "title_ch1"] == "b"
    assert info.loc["GSM4000003", "age"] == "38" and info.loc["GSM4000003", "age_ch2"] == "3"


def test_series_fields_and_notes():
    parsed = read_geo_series_matrix(FIXTURE)
    series = parsed.sample_info.attrs["series"]
    assert series["geo_accession"] == "GSE999901" and series["platform_id"] == "GPL96"
    assert series["title"].startswith("Tiny breast tumour series")
    assert series["summary"].endswith("; Keywords: disease state analysis")
    notes = " ".join(parsed.notes)
    assert "GEO series GSE999901: Tiny breast tumour series" in notes
    assert "GPL96" in notes and "platform annotation" in notes
    assert "2 cell(s) were null or empty" in notes


def test_plain_text_with_windows_line_endings(tmp_path: Path):
    path = _write(tmp_path, _fixture_text().replace("\n", "\r\n"))
    parsed = read_geo_series_matrix(path)
    assert list(parsed.samples) == GSM and list(parsed.genes.index) == PROBES
    assert parsed.values[3, 4] == np.float32(4.0127)
    assert parsed.sample_info.loc["GSM4000004", "title"] == "tumour_D"


def test_sniffing(tmp_path: Path):
    assert is_geo_series_matrix(FIXTURE)
    soft = _write(tmp_path, "^SERIES = GSE1\n!Series_title = x\n", "GSE1_family.soft")
    assert not is_geo_series_matrix(soft)
    assert not is_geo_series_matrix(Path(__file__).parents[1] / "fixtures" / "gct"
                                    / "gtex_style_v12.gct")


def test_missing_table_block(tmp_path: Path):
    text = _fixture_text()
    path = _write(tmp_path, text[:text.index("!series_matrix_table_begin")])
    with pytest.raises(InputError, match="GSE999901_series_matrix.txt: no "
                                         "'!series_matrix_table_begin' line"):
        read_geo_series_matrix(path)


def test_missing_end_marker_says_truncated(tmp_path: Path):
    path = _edited(tmp_path, "!series_matrix_table_end\n", "")
    with pytest.raises(InputError, match="no '!series_matrix_table_end' line, so the file is "
                                         "truncated"):
        read_geo_series_matrix(path)


def test_gzip_cut_short(tmp_path: Path):
    data = gzip.compress(_fixture_text().encode())
    path = tmp_path / "GSE999901_series_matrix.txt.gz"
    path.write_bytes(data[:-40])
    with pytest.raises(InputError, match=r"GSE999901_series_matrix.txt.gz: the gzip stream is "
                                         "truncated or corrupt"):
        read_geo_series_matrix(path)


def test_gzip_cut_short_with_a_memory_budget(tmp_path: Path):
    """Regression: a cut gzip's garbage size trailer was reported as a file too big to load."""
    data = gzip.compress(_fixture_text().encode())
    path = tmp_path / "GSE999901_series_matrix.txt.gz"
    path.write_bytes(data[:-40])
    with pytest.raises(InputError, match="gzip stream is truncated or corrupt"):
        read_geo_series_matrix(path, max_bytes=2**20)


def test_table_columns_must_match_accessions(tmp_path: Path):
    path = _edited(tmp_path, '\t"GSM4000004"\n"1007_s_at"', '\t"GSM4000099"\n"1007_s_at"')
    with pytest.raises(InputError, match=r"do not match '!Sample_geo_accession': 1 column\(s\) "
                                         r"are not among .* \(first: 'GSM4000099'\)"):
        read_geo_series_matrix(path)


def test_non_numeric_cell_names_probe_and_sample(tmp_path: Path):
    path = _edited(tmp_path, "\t9.882\t", "\t9,882\t")
    with pytest.raises(InputError, match=r"probe '121_at' \(row 4 of the data\), sample "
                                         r"'GSM4000002' holds '9,882'"):
        read_geo_series_matrix(path)


def test_sample_line_with_wrong_cell_count(tmp_path: Path):
    path = _edited(tmp_path, '\t"tumour_D"\n', "\n")
    with pytest.raises(InputError, match=r"'!Sample_title' has 3 values but "
                                         r"'!Sample_geo_accession' has 4"):
        read_geo_series_matrix(path)


def test_ragged_table_row(tmp_path: Path):
    path = _edited(tmp_path, '"117_at"\t6.5573\t7.0211\t6.8854\t\n', '"117_at"\t6.5573\t7.0211\n')
    with pytest.raises(InputError, match=r"line \d+ has 3 fields but the header has 5"):
        read_geo_series_matrix(path)


def test_table_without_rows(tmp_path: Path):
    text = _fixture_text()
    header_end = text.index("\n", text.index('"ID_REF"')) + 1
    path = _write(tmp_path, text[:header_end] + "!series_matrix_table_end\n")
    with pytest.raises(InputError, match="header but no probe rows"):
        read_geo_series_matrix(path)
