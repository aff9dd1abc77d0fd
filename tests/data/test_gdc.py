"""GDC STAR - Counts reader: fixtures in tests/fixtures/gdc/download are a GDC cart download."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from gexcore.data.gdc import find_sample_sheet, is_gdc_star_file, parse_star_file, read_gdc_star
from gexcore.errors import InputError

DOWNLOAD = Path(__file__).parents[1] / "fixtures" / "gdc" / "download"
SHEET = DOWNLOAD / "gdc_sample_sheet.2024-05-14.tsv"
FILE_A = (DOWNLOAD / "0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8"
          / "9f8e7d6c-5b4a-4392-8a1b-0c1d2e3f4a5b.rna_seq.augmented_star_gene_counts.tsv")
FILE_B_NAME = "8e7d6c5b-4a39-4281-9b0a-1c2d3e4f5a6b.rna_seq.augmented_star_gene_counts.tsv"
FILE_C_NAME = "7d6c5b4a-3928-4170-8c9f-2d3e4f5a6b7c.rna_seq.augmented_star_gene_counts.tsv"
SAMPLES = ["TCGA-A1-A0SB-01A", "TCGA-A1-A0SB-11A", "TCGA-BH-A0DG-01A"]


@pytest.fixture
def download(tmp_path: Path) -> Path:
    """A writable copy of the fixture download folder."""
    return Path(shutil.copytree(DOWNLOAD, tmp_path / "download"))


def _file_b(folder: Path) -> Path:
    return folder / "1c2d3e4f-5061-4b72-9c83-a4b5c6d7e8f9" / FILE_B_NAME


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_folder_with_sample_sheet_names_samples_by_barcode():
    parsed = read_gdc_star(DOWNLOAD, sample_sheet=SHEET)
    assert parsed.values.shape == (3, 7) and parsed.values.dtype == np.float32
    assert list(parsed.samples) == SAMPLES
    genes = list(parsed.genes.index)
    assert genes[0] == "ENSG00000000003.15" and "ENSG00000002586.20_PAR_Y" in genes
    assert not any(g.startswith("N_") for g in genes)
    assert parsed.values[0, 0] == 3013                     # TSPAN6, file A
    assert parsed.values[2, 1] == 31                       # TNMD, file C (gzip)
    assert parsed.values[1, genes.index("ENSG00000243485.5")] == 5
    assert parsed.genes.loc["ENSG00000000003.15", "gene_symbol"] == "TSPAN6"
    assert parsed.genes.loc["ENSG00000000003.15", "ensembl_id"] == "ENSG00000000003.15"
    assert parsed.genes.loc["ENSG00000243485.5", "gene_type"] == "lncRNA"
    assert parsed.count_based and parsed.format == "gdc_star"


def test_sample_info_comes_from_the_sheet():
    info = read_gdc_star(DOWNLOAD, sample_sheet=SHEET).sample_info
    assert list(info.columns) == ["project_id", "case_id", "patient_id", "sample_type", "file_id",
                                  "file_name"]
    assert list(info.index) == SAMPLES
    assert info.loc["TCGA-A1-A0SB-11A", "sample_type"] == "Solid Tissue Normal"
    assert info.loc["TCGA-A1-A0SB-11A", "patient_id"] == "TCGA-A1-A0SB"
    assert info.loc["TCGA-BH-A0DG-01A", "file_id"] == "2d3e4f50-6172-4c83-ad94-b5c6d7e8f9a0"
    assert info.loc["TCGA-BH-A0DG-01A", "file_name"] == FILE_C_NAME
    assert (info["project_id"] == "TCGA-BRCA").all()


def test_notes_name_gene_model_and_dropped_rows():
    notes = " ".join(read_gdc_star(DOWNLOAD, sample_sheet=SHEET).notes)
    assert "GENCODE v36" in notes and "N_unmapped" in notes and "'unstranded'" in notes


def test_tpm_column_is_not_count_based():
    parsed = read_gdc_star(DOWNLOAD, sample_sheet=SHEET, value="tpm_unstranded")
    assert parsed.values[0, 0] == np.float32(34.0592)
    assert not parsed.count_based


def test_without_sample_sheet_samples_are_file_stems():
    parsed = read_gdc_star(DOWNLOAD)
    assert list(parsed.samples) == ["9f8e7d6c-5b4a-4392-8a1b-0c1d2e3f4a5b",
                                    "8e7d6c5b-4a39-4281-9b0a-1c2d3e4f5a6b",
                                    "7d6c5b4a-3928-4170-8c9f-2d3e4f5a6b7c"]
    assert parsed.sample_info["file_id"].iloc[0] == "0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8"
    assert any("No GDC sample sheet" in n for n in parsed.notes)
    assert parsed.values[0, 0] == 3013


def test_explicit_file_uses_only_its_row_of_the_sheet():
    parsed = read_gdc_star([FILE_A], sample_sheet=SHEET)
    assert list(parsed.samples) == ["TCGA-A1-A0SB-01A"]
    assert parsed.values.shape == (1, 7)


def test_parse_star_file_drops_summary_rows():
    star = parse_star_file(FILE_A, value="fpkm_uq_unstranded")
    assert len(star.values) == 7 and star.values.index[0] == "ENSG00000000003.15"
    assert star.values.iloc[0] == np.float32(11.0516)
    assert star.gene_model == "GENCODE v36"
    assert star.genes.loc["ENSG00000000005.6", "gene_symbol"] == "TNMD"


def test_sniffing_and_sheet_discovery(tmp_path: Path):
    gz = next(DOWNLOAD.rglob("*.tsv.gz"))
    assert is_gdc_star_file(FILE_A) and is_gdc_star_file(gz)
    assert not is_gdc_star_file(SHEET) and not is_gdc_star_file(DOWNLOAD / "MANIFEST.txt")
    assert not is_gdc_star_file(tmp_path / "absent.tsv")
    assert find_sample_sheet(DOWNLOAD) == SHEET
    assert find_sample_sheet(tmp_path) is None


def test_sheet_file_missing_from_folder(download: Path):
    shutil.rmtree(download / "2d3e4f50-6172-4c83-ad94-b5c6d7e8f9a0")
    with pytest.raises(InputError, match=rf"1 file\(s\) in the sample sheet are not in "
                                         rf"download/ \(e.g. '{FILE_C_NAME}', line 4\)"):
        read_gdc_star(download, sample_sheet=download / SHEET.name)


def test_star_file_not_in_sheet_is_skipped_with_note(download: Path):
    sheet = download / SHEET.name
    sheet.write_text("\n".join(sheet.read_text().splitlines()[:3]) + "\n")
    parsed = read_gdc_star(download, sample_sheet=sheet)
    assert list(parsed.samples) == SAMPLES[:2]
    assert any("1 STAR file(s) not listed" in n and "7d6c5b4a" in n for n in parsed.notes)


def test_files_with_different_genes(download: Path):
    _edit(_file_b(download), "ENSG00000243485.5\t", "ENSG00000243485.6\t")
    with pytest.raises(InputError, match=rf"9f8e7d6c.*\.tsv and {FILE_B_NAME} list different "
                                         r"genes \(2 gene id\(s\) differ"):
        read_gdc_star(download, sample_sheet=download / SHEET.name)


def test_missing_value_column_lists_the_columns():
    with pytest.raises(InputError, match=r"9f8e7d6c.*: no column 'tpm'; the file has unstranded, "
                                         r"stranded_first, .*fpkm_uq_unstranded"):
        read_gdc_star(DOWNLOAD, sample_sheet=SHEET, value="tpm")


def test_negative_count_names_file_and_gene(download: Path):
    _edit(_file_b(download), "TSPAN6\tprotein_coding\t4120\t", "TSPAN6\tprotein_coding\t-4120\t")
    with pytest.raises(InputError, match=rf"{FILE_B_NAME}: gene 'ENSG00000000003.15' has "
                                         r"unstranded = -4120"):
        read_gdc_star(download, sample_sheet=download / SHEET.name)


def test_two_files_for_one_sample(download: Path):
    sheet = download / SHEET.name
    _edit(sheet, "TCGA-BH-A0DG-01A", "TCGA-A1-A0SB-01A")
    with pytest.raises(InputError, match=r"sample 'TCGA-A1-A0SB-01A' has more than one STAR file "
                                         r"\(0b1c2d3e.*, 2d3e4f50.*\).*duplicates='first'"):
        read_gdc_star(download, sample_sheet=sheet)
    parsed = read_gdc_star(download, sample_sheet=sheet, duplicates="first")
    assert list(parsed.samples) == SAMPLES[:2]
    assert parsed.values[0, 0] == 3013                     # the first file listed, not file C
    assert any("more than one STAR file" in n for n in parsed.notes)


def test_sample_id_list_takes_the_first(download: Path):
    sheet = download / SHEET.name
    _edit(sheet, "TCGA-BH-A0DG\tTCGA-BH-A0DG-01A\tPrimary Tumor",
          "TCGA-BH-A0DG, TCGA-BH-A0DG\tTCGA-BH-A0DG-01A, TCGA-BH-A0DG-11A\t"
          "Primary Tumor, Solid Tissue Normal")
    parsed = read_gdc_star(download, sample_sheet=sheet)
    assert parsed.samples[2] == "TCGA-BH-A0DG-01A"
    assert parsed.sample_info.loc["TCGA-BH-A0DG-01A", "case_id"] == "TCGA-BH-A0DG"
    assert parsed.sample_info.loc["TCGA-BH-A0DG-01A", "sample_type"] == "Primary Tumor"
    assert any("1 file(s) list several samples" in n for n in parsed.notes)


def test_folder_without_star_files(tmp_path: Path):
    shutil.copy(DOWNLOAD / "MANIFEST.txt", tmp_path)
    with pytest.raises(InputError, match="no GDC STAR gene-count files"):
        read_gdc_star(tmp_path)


def test_sheet_without_sample_id_column(download: Path):
    sheet = download / SHEET.name
    _edit(sheet, "\tSample ID\t", "\tSample\t")
    with pytest.raises(InputError, match=rf"{SHEET.name}: no Sample ID column"):
        read_gdc_star(download, sample_sheet=sheet)


def test_truncated_star_file(download: Path):
    path = _file_b(download)
    path.write_bytes(path.read_bytes()[:-25])              # cut inside the last gene row
    with pytest.raises(InputError, match=rf"{FILE_B_NAME}: the last line has .* truncated"):
        read_gdc_star(download, sample_sheet=download / SHEET.name)


def test_gzip_star_file_cut_short(download: Path):
    path = next(download.rglob("*.tsv.gz"))
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(InputError, match="gzip stream is truncated"):
        read_gdc_star(download, sample_sheet=download / SHEET.name)


def test_not_a_star_file():
    with pytest.raises(InputError, match="MANIFEST.txt: line 1 is not a GDC STAR header"):
        parse_star_file(DOWNLOAD / "MANIFEST.txt")


def test_gzip_fixture_is_really_gzip():
    path = next(DOWNLOAD.rglob("*.tsv.gz"))
    with gzip.open(path, "rt") as fh:
        assert fh.readline() == "# gene-model: GENCODE v36\n"


def test_gene_rows_in_another_order_are_aligned(download: Path):
    path = _file_b(download)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:6] + lines[6:][::-1]))   # gene rows reversed
    parsed = read_gdc_star(download, sample_sheet=download / SHEET.name)
    assert parsed.values[1, 0] == 4120                     # TSPAN6 of file B, still column 0
    assert parsed.values[1, 6] == 5                        # MIR1302-2HG of file B


def test_sheet_rows_for_other_file_types_are_ignored(download: Path):
    sheet = download / SHEET.name
    sheet.write_text(sheet.read_text() + "3e4f5061-7283-4d94-8ea5-c6d7e8f9a0b1\t"
                     "nationwidechildrens.org_clinical.TCGA-A1-A0SB.xml\tClinical\t"
                     "Clinical Supplement\tTCGA-BRCA\tTCGA-A1-A0SB\t\t\n")
    parsed = read_gdc_star(download, sample_sheet=sheet)
    assert list(parsed.samples) == SAMPLES
    assert any("1 row(s) for other file types" in n for n in parsed.notes)


def test_summary_row_moved_to_the_end_is_still_dropped(download: Path):
    path = _file_b(download)
    lines = path.read_text().splitlines(keepends=True)
    assert lines[5].startswith("N_ambiguous")
    path.write_text("".join(lines[:5] + lines[6:] + lines[5:6]))
    parsed = read_gdc_star(download, sample_sheet=download / SHEET.name)
    assert parsed.values.shape == (3, 7)
    assert parsed.values[1, 6] == 5                        # last gene, not N_ambiguous
