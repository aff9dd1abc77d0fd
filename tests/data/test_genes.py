"""Gene ids: Ensembl versions, symbol/Ensembl columns, duplicate merging, vocabulary alignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gexcore.data.genes import align_to_genes, harmonize_genes, strip_ensembl_version
from gexcore.errors import GeneMismatchError


def test_strip_ensembl_version():
    ids = pd.Index(["ENSG00000000003.15", "ENSG00000228572.7_PAR_Y", "TP53", "ENST00000269305.9"])
    assert list(strip_ensembl_version(ids)) == [
        "ENSG00000000003", "ENSG00000228572_PAR_Y", "TP53", "ENST00000269305"]


def test_symbols_preferred_and_both_ids_kept():
    genes = pd.DataFrame({"gene_symbol": ["TSPAN6", "TNMD"]},
                         index=["ENSG00000000003.15", "ENSG00000000005.6"])
    values, var, summary = harmonize_genes(np.ones((2, 2), np.float32), genes)
    assert list(var.index) == ["TSPAN6", "TNMD"]
    assert list(var["ensembl_id"]) == ["ENSG00000000003", "ENSG00000000005"]
    assert summary["gene_id"] == "symbol+ensembl"
    _, var_e, _ = harmonize_genes(np.ones((2, 2), np.float32), genes, gene_id="ensembl")
    assert list(var_e.index) == ["ENSG00000000003", "ENSG00000000005"]


def test_duplicates_summed_for_counts_and_averaged_otherwise():
    genes = pd.DataFrame(index=["A", "B", "A", "C"])
    X = np.array([[1, 2, 3, 4], [5, 6, 7, np.nan]], np.float32)
    summed, var, summary = harmonize_genes(X, genes, count_based=True)
    assert list(var.index) == ["A", "B", "C"]
    np.testing.assert_array_equal(summed[:, 0], [4, 12])
    assert summary["n_duplicated_genes"] == 1 and summary["duplicates_merged_by"] == "sum"
    mean, _, summary = harmonize_genes(X, genes)
    np.testing.assert_array_equal(mean[:, 0], [2, 6])
    assert np.isnan(mean[1, 2]) and summary["duplicates_merged_by"] == "mean"


def test_versions_that_collide_after_stripping_are_merged():
    genes = pd.DataFrame(index=["ENSG00000000003.14", "ENSG00000000003.15"])
    values, var, summary = harmonize_genes(np.array([[1, 3]], np.float32), genes,
                                           duplicates="mean")
    assert list(var.index) == ["ENSG00000000003"] and values[0, 0] == 2


def test_align_marks_missing_genes_as_nan_not_zero():
    X = np.array([[1, 2], [3, 4]], np.float32)
    aligned, observed = align_to_genes(X, pd.Index(["B", "A"]), ["A", "B", "C"])
    np.testing.assert_array_equal(aligned[:, :2], [[2, 1], [4, 3]])
    assert np.isnan(aligned[:, 2]).all() and list(observed) == [True, True, False]


def test_align_no_overlap_names_genes():
    with pytest.raises(GeneMismatchError, match=r"only 0 of 2 expected genes.*missing e.g. A, B"):
        align_to_genes(np.ones((1, 1), np.float32), pd.Index(["ENSG00000000003"]), ["A", "B"])
