"""Pooling cohorts into a corpus: harmonised genes, intersection / union, the cohort column."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest

from gexcore import keys
from gexcore.data.corpus import OBS_COHORT, UNS_CORPUS, CorpusSource, pool_cohorts, read_corpus
from gexcore.errors import InputError
from tests.fixtures.archs4_layout import small_archs4


def _cohort(values, genes, samples, *, symbols=None, ensembl=None, obs=None):
    var = pd.DataFrame(index=genes)
    if symbols is not None:
        var[keys.VAR_SYMBOL] = symbols
    if ensembl is not None:
        var[keys.VAR_ENSEMBL] = ensembl
    frame = pd.DataFrame(obs or {}, index=samples)
    return anndata.AnnData(np.asarray(values, dtype=np.float32), obs=frame, var=var)


@pytest.fixture
def two():
    a = _cohort([[100, 200, 300], [400, 500, 600]], ["TP53", "MYC", "EGFR"], ["a1", "a2"],
                symbols=["TP53", "MYC", "EGFR"],
                obs={keys.OBS_PATIENT: ["P1", "P2"], "batch": ["x", "y"]})
    b = _cohort([[70, 80, 90]], ["KRAS", "EGFR", "TP53"], ["b1"],
                symbols=["KRAS", "EGFR", "TP53"], obs={keys.OBS_PATIENT: ["P1"]})
    return {"A": a, "B": b}


def test_intersection_aligns_genes_by_name_and_keeps_the_cohort(two):
    corpus = pool_cohorts(two)
    assert list(corpus.var_names) == ["TP53", "EGFR"]
    frame = corpus.to_df()
    assert frame.loc["b1", "TP53"] == 90 and frame.loc["b1", "EGFR"] == 80     # B's order differs
    assert frame.loc["a2", "EGFR"] == 600
    assert list(corpus.obs[OBS_COHORT]) == ["A", "A", "B"]
    # Patients of different cohorts never share a split group.
    assert corpus.obs[keys.OBS_PATIENT].nunique() == 3
    record = corpus.uns[UNS_CORPUS]
    assert record["genes"] == "intersection" and record["n_genes"] == 2
    assert record["sources"]["B"]["n_genes_kept"] == 2


def test_union_marks_genes_a_cohort_lacks_as_missing(two):
    corpus = pool_cohorts(two, genes="union")
    assert list(corpus.var_names) == ["TP53", "MYC", "EGFR", "KRAS"]
    frame = corpus.to_df()
    assert np.isnan(frame.loc["b1", "MYC"]) and np.isnan(frame.loc["a1", "KRAS"])
    assert frame.loc["b1", "KRAS"] == 70
    assert list(corpus.var["n_cohorts"]) == [2, 1, 2, 1]


def test_ensembl_ids_match_across_versions_when_a_cohort_has_no_symbols():
    a = _cohort([[100, 200]], ["TP53", "MYC"], ["a1"], symbols=["TP53", "MYC"],
                ensembl=["ENSG00000141510", "ENSG00000136997"])
    b = _cohort([[300, 400]], ["ENSG00000136997.21", "ENSG00000141510.18"], ["b1"])
    corpus = pool_cohorts({"A": a, "B": b})
    assert corpus.uns[UNS_CORPUS]["gene_key"] == "ensembl"
    assert list(corpus.var_names) == ["ENSG00000141510", "ENSG00000136997"]
    assert corpus.to_df().loc["b1"].tolist() == [400, 300]
    assert corpus.var.loc["ENSG00000141510", keys.VAR_SYMBOL] == "TP53"


def test_genes_sharing_a_key_are_merged_as_the_reader_merges_them():
    counts = _cohort([[100, 5, 200]], ["ENSG00000136997", "ENSG00000999999", "ENSG00000141510"],
                     ["a1"], symbols=["MYC", "MYC", "TP53"])
    other = _cohort([[1000, 2000]], ["MYC", "TP53"], ["b1"], symbols=["MYC", "TP53"])
    corpus = pool_cohorts({"A": counts, "B": other})
    assert corpus.to_df().loc["a1", "MYC"] == 105                  # counts: summed


def test_clashing_sample_ids_are_prefixed_and_the_originals_kept(two):
    two["B"].obs_names = ["a1"]
    corpus = pool_cohorts(two)
    assert list(corpus.obs_names) == ["A/a1", "A/a2", "B/a1"]
    assert list(corpus.obs["source_sample_id"]) == ["a1", "a2", "a1"]
    assert list(pool_cohorts({"A": two["A"]}).obs_names) == ["a1", "a2"]


def test_mixed_scales_are_refused_unless_allowed(two):
    two["B"].X = np.log1p(two["B"].X)
    with pytest.raises(InputError, match=r"different scales \(A: counts, B: log\)"):
        pool_cohorts(two)
    assert pool_cohorts(two, allow_mixed_scales=True).n_obs == 3


def test_no_common_gene_is_an_error(two):
    two["B"] = _cohort([[100.0]], ["KRAS"], ["b1"], symbols=["KRAS"])
    with pytest.raises(InputError, match="no gene is common to all 2 cohorts"):
        pool_cohorts(two)


def test_read_corpus_from_an_archs4_selection_and_a_table(tmp_path):
    path, counts, _, _ = small_archs4(tmp_path / "human_gene_v2.h5")
    table = tmp_path / "lab_counts.csv"
    table.write_text("gene,L1,L2\nTP53,10,20\nEGFR,30,40\nBRCA1,50,60\n")
    corpus = read_corpus([CorpusSource(path, select={"series": ["GSE1"]}), table])
    assert corpus.shape == (5, 2) and list(corpus.var_names) == ["TP53", "EGFR"]
    assert list(corpus.obs[OBS_COHORT]) == ["human_gene_v2"] * 3 + ["lab_counts"] * 2
    np.testing.assert_array_equal(corpus.X[:3, 0], counts[:3, 0].astype(np.float32))
    assert corpus.obs.loc["GSM1000", "series_id"] == "GSE1"
    corpus.write_h5ad(tmp_path / "corpus.h5ad")                  # every slot is writable
    assert anndata.read_h5ad(tmp_path / "corpus.h5ad").uns[UNS_CORPUS]["n_samples"] == 5
