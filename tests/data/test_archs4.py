"""ARCHS4 reader on small files written in ARCHS4's HDF5 layout (tests/fixtures/archs4_layout)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest

from gexcore.cli import main
from gexcore.data import archs4
from gexcore.data.archs4 import SampleSelection, archs4_summary, load_archs4, read_archs4
from gexcore.data.read import detect_format, read_cohort
from gexcore.errors import InputError
from tests.fixtures.archs4_layout import small_archs4, write_archs4


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same nine samples in both orientations and with fixed-length strings."""
    folder = tmp_path_factory.mktemp("archs4")
    path, counts, samples, genes = small_archs4(folder / "human_gene_v2.h5")
    by_samples = small_archs4(folder / "by_samples.h5", genes_by_samples=False)[0]
    fixed = small_archs4(folder / "fixed.h5", strings="fixed", chunks=(2, 2))[0]
    return {"path": path, "counts": counts, "samples": samples, "genes": genes,
            "by_samples": by_samples, "fixed": fixed, "folder": folder}


def _ids(parsed) -> list[str]:
    return list(parsed.samples)


def test_reads_every_sample_with_ids_metadata_and_counts(files):
    parsed = read_archs4(files["path"])
    assert parsed.values.dtype == np.float32 and parsed.values.shape == (9, 6)
    np.testing.assert_array_equal(parsed.values, files["counts"].astype(np.float32))
    assert _ids(parsed) == files["samples"]["geo_accession"]
    assert parsed.count_based and parsed.format == "archs4"
    assert parsed.orientation == "genes x samples"
    info = parsed.sample_info
    assert info.loc["GSM1005", "series_id"] == "GSE2,GSE3"
    assert info["singlecellprobability"].dtype.kind == "f"
    assert parsed.genes.loc["ENSG00000141510.18", "gene_symbol"] == "TP53"


def test_samples_by_genes_layout_gives_the_same_matrix(files):
    parsed = read_archs4(files["by_samples"])
    assert parsed.orientation == "samples x genes"
    np.testing.assert_array_equal(parsed.values, files["counts"].astype(np.float32))


def test_detected_by_layout_not_suffix(files, tmp_path):
    assert detect_format(files["path"]) == "archs4"
    renamed = tmp_path / "counts.h5ad"
    renamed.write_bytes(files["path"].read_bytes())
    assert detect_format(renamed) == "archs4"
    other = tmp_path / "cohort.h5"                      # an .h5ad under .h5 stays an .h5ad
    anndata.AnnData(np.ones((3, 2), np.float32)).write_h5ad(other)
    assert detect_format(other) == "h5ad"


def test_series_selection_matches_whole_ids_and_multi_series_samples(files):
    parsed = read_archs4(files["path"], select=SampleSelection(series=("GSE3",)))
    assert _ids(parsed) == ["GSM1005", "GSM1006", "GSM1007"]        # not GSE30's GSM1008
    np.testing.assert_array_equal(parsed.values, files["counts"][5:8].astype(np.float32))
    both = read_archs4(files["path"], select={"series": ["gse1", "GSE30"]})
    assert _ids(both) == ["GSM1000", "GSM1001", "GSM1002", "GSM1008"]


def test_regex_selection_over_fields_and_combined_with_other_filters(files):
    liver = read_archs4(files["path"], select=SampleSelection(meta_regex={"title": "^liver"}))
    assert _ids(liver) == ["GSM1000", "GSM1001", "GSM1002"]        # case-insensitive
    either = SampleSelection(meta_regex={"title,characteristics_ch1": "muscle|brain c"})
    assert _ids(read_archs4(files["path"], select=either)) == [
        "GSM1005", "GSM1006", "GSM1007"]
    both = SampleSelection(meta_regex={"characteristics_ch1": "liver"}, series=("GSE1",))
    assert _ids(read_archs4(files["path"], select=both)) == ["GSM1000", "GSM1001", "GSM1002"]


def test_single_cell_cut_keeps_samples_below_it(files):
    bulk = read_archs4(files["path"], select={"max_singlecell_prob": 0.5})
    assert "GSM1008" not in _ids(bulk) and len(_ids(bulk)) == 8
    strict = read_archs4(files["fixed"], select={"max_singlecell_prob": 0.05})
    assert _ids(strict) == ["GSM1000", "GSM1001", "GSM1002", "GSM1007"]


def test_single_cell_probability_stored_as_text(tmp_path, files):
    samples = {**files["samples"],
               "singlecellprobability": [str(v) for v in files["samples"]["singlecellprobability"]]}
    path = write_archs4(tmp_path / "old.h5", files["counts"], samples, files["genes"])
    assert len(_ids(read_archs4(path, select={"max_singlecell_prob": 0.5}))) == 8


def test_max_samples_is_a_seeded_sorted_subset_of_the_selection(files):
    pick = SampleSelection(max_singlecell_prob=0.5, max_samples=4, seed=3)
    first, again = (_ids(read_archs4(files["path"], select=pick)) for _ in range(2))
    assert first == again and len(first) == 4 and first == sorted(first)
    assert "GSM1008" not in first
    others = {tuple(_ids(read_archs4(files["path"], select={**pick.__dict__, "seed": s})))
              for s in range(6)}
    assert len(others) > 1                                   # the seed matters


def test_blocked_reads_equal_a_whole_read(files, monkeypatch):
    select = SampleSelection(series=("GSE1", "GSE3"))          # rows 0-2 and 5-7: two runs
    whole = read_archs4(files["fixed"], select=select)
    monkeypatch.setattr(archs4, "_BLOCK_BYTES", 1)             # one sample per block
    monkeypatch.setattr(archs4, "_META_ROWS", 2)               # metadata two entries a slab
    blocked = read_archs4(files["fixed"], select=select)
    np.testing.assert_array_equal(blocked.values, whole.values)
    pd.testing.assert_frame_equal(blocked.sample_info, whole.sample_info)
    rows = [0, 1, 2, 5, 6, 7]
    np.testing.assert_array_equal(blocked.values, files["counts"][rows].astype(np.float32))
    assert _ids(blocked) == [files["samples"]["geo_accession"][i] for i in rows]


def test_anndata_has_stripped_ensembl_ids_summed_duplicates_and_metadata(files):
    adata = load_archs4(files["path"], {"series": ["GSE2"]})
    assert adata.obs_names.tolist() == ["GSM1003", "GSM1004", "GSM1005"]
    assert list(adata.var_names) == ["TP53", "GAPDH", "ACTB", "MYC", "EGFR"]
    assert adata.var.loc["TP53", "ensembl_id"] == "ENSG00000141510"
    counts = files["counts"][3:6].astype(np.float32)
    np.testing.assert_array_equal(adata[:, "MYC"].X.ravel(), counts[:, 3] + counts[:, 4])
    assert adata.obs.loc["GSM1004", "title"] == "brain b"
    report = adata.uns["validation"]
    assert "3 of 9 samples" in report["notes"][0] and "MYC" in " ".join(report["warnings"])


def test_memory_budget_follows_the_selection(files):
    one_sample = archs4._FOOTPRINT.estimate(n_cells=6, n_text_cells=4)
    with pytest.raises(InputError, match=r"human_gene_v2\.h5: reading 9 samples .* select fewer"):
        read_archs4(files["path"], max_bytes=one_sample + 100)
    parsed = read_archs4(files["path"], select={"series": ["GSE30"]}, max_bytes=one_sample + 100)
    assert _ids(parsed) == ["GSM1008"]


def test_summary_reads_counts_of_samples_genes_and_series(files):
    summary = archs4_summary(files["path"])
    assert (summary.n_samples, summary.n_genes, summary.n_series) == (9, 6, 4)
    assert summary.orientation == "genes x samples" and summary.dtype == "uint32"
    assert "series_id" in summary.sample_fields


@pytest.mark.parametrize("select, match", [
    ({"series": ["GSE404"]}, r"no sample of 9 passes .*series: 0"),
    ({"meta_regex": {"tissue": "liver"}}, r"no per-sample field 'meta/samples/tissue'"),
    ({"meta_regex": {"title": "(liver"}}, r"not a valid regular expression"),
])
def test_selection_mistakes_are_named(files, select, match):
    with pytest.raises(InputError, match=match):
        read_archs4(files["path"], select=select)


def test_selection_on_another_format_is_refused(tmp_path):
    table = tmp_path / "expr.csv"
    table.write_text("gene,S1,S2\nTP53,1,2\nMYC,3,4\n")
    with pytest.raises(InputError, match="applies to ARCHS4 files only"):
        read_cohort(table, select={"series": ["GSE1"]})


def _damaged(folder: Path, name: str, edit) -> Path:
    path, *_ = small_archs4(folder / name)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


@pytest.mark.parametrize("name, edit, match", [
    ("no_ids.h5", lambda f: f.__delitem__("meta/samples/geo_accession"), "geo_accession"),
    ("short.h5", lambda f: f["meta/samples"].create_dataset("x", data=[1]) and
     f.__delitem__("meta/samples/geo_accession") or
     f["meta/samples"].create_dataset("geo_accession", data=np.array([b"GSM1"] * 4)),
     r"shape \(6, 9\) but the metadata lists 6 genes and 4 samples"),
    ("no_genes.h5", lambda f: [f.__delitem__(f"meta/genes/{k}") for k in list(f["meta/genes"])],
     "the gene ids"),
])
def test_malformed_layouts_are_input_errors(tmp_path, name, edit, match):
    path = _damaged(tmp_path, name, edit)
    with pytest.raises(InputError, match=match):
        read_archs4(path)


def test_truncated_file_is_one_clear_line_and_left_unchanged(tmp_path, files, capsys):
    path = tmp_path / "cut.h5"
    data = files["path"].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(InputError, match=r"cut\.h5: .*(truncated|damaged)"):
        read_cohort(path, format="archs4")
    assert main(["info", str(path)]) == 2        # detection cannot open it either
    err = capsys.readouterr().err
    assert err.startswith("gex info: error: cut.h5:") and "Traceback" not in err
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_cli_options_build_a_selection():
    assert SampleSelection.from_options() is None
    pick = SampleSelection.from_options(series=["GSE1"], meta_regex=["title,source=a=b"],
                                        max_singlecell_prob=0.5, max_samples=10, seed=2)
    assert pick.meta_regex == {"title,source": "a=b"} and pick.series == ("GSE1",)
    with pytest.raises(InputError, match="FIELD=REGEX"):
        SampleSelection.from_options(meta_regex=["liver"])


def test_cli_selects_archs4_samples(files, tmp_path, capsys):
    assert main(["info", str(files["path"]), "--series", "GSE2", "GSE3",
                 "--max-singlecell-prob", "0.5", "--meta-regex", "title=brain|muscle",
                 "--max-samples", "4", "--json"]) == 0
    import json
    report = json.loads(capsys.readouterr().out)
    assert (report["n_samples"], report["n_genes"]) == (4, 5) and report["format"] == "archs4"
    out = tmp_path / "subset.h5ad"
    assert main(["convert", str(files["path"]), str(out), "--meta-regex",
                 "characteristics_ch1=liver", "--max-singlecell-prob", "0.5"]) == 0
    assert anndata.read_h5ad(out).obs_names.tolist() == ["GSM1000", "GSM1001", "GSM1002"]
    table = tmp_path / "expr.csv"
    table.write_text("gene,S1,S2\nTP53,1,2\nMYC,3,4\n")
    assert main(["info", str(table), "--series", "GSE1"]) == 2
    assert "ARCHS4 files only" in capsys.readouterr().err
