"""Cohort data: readers to AnnData, clinical joins, validation, normalisation, demo cohorts."""

from __future__ import annotations

from gexcore.data.demo import DEMOS, list_demos, load_demo
from gexcore.data.genes import align_to_genes, harmonize_genes, strip_ensembl_version
from gexcore.data.normalize import NormalizeConfig, Normalizer
from gexcore.data.read import detect_format, read_cohort
from gexcore.data.validate import ValidationReport, detect_scale

__all__ = [
    "DEMOS",
    "NormalizeConfig",
    "Normalizer",
    "ValidationReport",
    "align_to_genes",
    "detect_format",
    "detect_scale",
    "harmonize_genes",
    "list_demos",
    "load_demo",
    "read_cohort",
    "strip_ensembl_version",
]
