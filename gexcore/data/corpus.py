"""A corpus: several cohorts pooled into one AnnData for pretraining, genes harmonised.

Each cohort's genes get one key (gene symbol, or Ensembl id without its version), duplicated
keys are merged as `genes.harmonize_genes` merges them (counts summed, other values averaged),
and the cohorts are aligned to the intersection of their genes (default: every sample measures
every gene) or to the union (genes a cohort lacks are NaN, i.e. not measured, never zero).
The source cohort of each sample is kept in `obs['cohort']`; `uns['corpus']` records the
sources. Normalisation is left to the model's `Normalizer`, fitted on the pooled corpus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from gexcore import keys
from gexcore.data.genes import (
    Duplicates,
    align_to_genes,
    harmonize_genes,
    looks_like_ensembl,
    strip_ensembl_version,
)
from gexcore.data.validate import detect_scale
from gexcore.errors import InputError

__all__ = ["OBS_COHORT", "UNS_CORPUS", "CorpusSource", "pool_cohorts", "read_corpus"]

OBS_COHORT = "cohort"               # which source cohort a sample came from (the batch)
UNS_CORPUS = "corpus"               # the sources, gene policy and per-source counts
OBS_SOURCE_ID = "source_sample_id"  # a sample's id in its own cohort, where ids were prefixed

GeneSet = Literal["intersection", "union"]
GeneKey = Literal["auto", "symbol", "ensembl"]

# Scales that may be pooled as they are; mixing families needs a normalisation first.
_SCALE_FAMILY = {"counts": "linear", "linear": "linear", "log": "log", "z-scored": "centred",
                 "centred": "centred", "empty": "empty"}


@dataclass(frozen=True)
class CorpusSource:
    """One cohort of a corpus: a file `read_cohort` reads, its name (default: the file name
    without suffixes), and for an ARCHS4 file the samples to take (`SampleSelection`)."""

    path: str | Path
    name: str | None = None
    select: Mapping | object | None = None
    options: Mapping = field(default_factory=dict)     # other read_cohort options


def read_corpus(sources: Sequence[CorpusSource | str | Path], *, genes: GeneSet = "intersection",
                gene_key: GeneKey = "auto", duplicates: Duplicates = "auto",
                allow_mixed_scales: bool = False, max_memory: int | None = None) -> AnnData:
    """Read each source with `read_cohort` and pool them (`pool_cohorts`)."""
    from gexcore.data.read import read_cohort

    cohorts: dict[str, AnnData] = {}
    for source in (s if isinstance(s, CorpusSource) else CorpusSource(s) for s in sources):
        path = Path(source.path)
        name = _unique_name(source.name or path.name.split(".")[0], cohorts)
        cohorts[name] = read_cohort(path, select=source.select, max_memory=max_memory,
                                    **dict(source.options))
    return pool_cohorts(cohorts, genes=genes, gene_key=gene_key, duplicates=duplicates,
                        allow_mixed_scales=allow_mixed_scales)


def pool_cohorts(cohorts: Mapping[str, AnnData], *, genes: GeneSet = "intersection",
                 gene_key: GeneKey = "auto", duplicates: Duplicates = "auto",
                 allow_mixed_scales: bool = False) -> AnnData:
    """One AnnData of every sample of `cohorts` ({name: cohort}), on harmonised genes.

    `gene_key="auto"` keys genes by symbol when every cohort has symbols, else by Ensembl id
    when every cohort has those. Writes `obs['cohort']`, `var` (`gene_symbol`, `ensembl_id`,
    `n_cohorts`: how many sources measure the gene) and `uns['corpus']`. Sample ids are kept
    unless two cohorts share one; then every id becomes `<cohort>/<id>` (the original in
    `obs['source_sample_id']`). Patient ids are always prefixed with the cohort, so patients
    of different cohorts never share a split group. Raises `InputError` when no gene is common
    to all cohorts (intersection) or their value scales differ (counts vs log vs z-scores).
    """
    if len(cohorts) < 1:
        raise InputError("a corpus needs at least one cohort.")
    if genes not in ("intersection", "union"):
        raise ValueError(f"genes must be 'intersection' or 'union', not {genes!r}.")
    scales = {name: detect_scale(np.asarray(a.X, dtype=np.float32)) for name, a in cohorts.items()}
    _check_scales(scales, allow_mixed_scales)
    key = _gene_key(cohorts, gene_key)
    keyed = {name: _keyed(a, key, duplicates, scales[name]) for name, a in cohorts.items()}
    vocabulary = _vocabulary(keyed, genes, key)
    X = np.empty((sum(a.n_obs for a in cohorts.values()), len(vocabulary)), dtype=np.float32)
    start = 0
    for values, var in keyed.values():
        X[start:start + len(values)] = align_to_genes(values, var.index, vocabulary)[0]
        start += len(values)
    obs = _pooled_obs(cohorts)
    adata = AnnData(X=X, obs=obs, var=_pooled_var(keyed, vocabulary))
    adata.uns[UNS_CORPUS] = _record(cohorts, keyed, scales, genes, key, vocabulary)
    adata.uns[keys.UNS_PROVENANCE] = {
        "source": "; ".join(str(a.uns.get(keys.UNS_PROVENANCE, {}).get("source", n))
                            for n, a in cohorts.items()),
        "format": "corpus", "clinical": "",
        "simulated": any(bool(a.uns.get(keys.UNS_PROVENANCE, {}).get("simulated", False))
                         for a in cohorts.values())}
    return adata


def _unique_name(name: str, taken: Mapping[str, object]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    return out


def _check_scales(scales: dict[str, str], allowed: bool) -> None:
    families = {_SCALE_FAMILY.get(s, s) for s in scales.values()} - {"empty"}
    if len(families) > 1 and not allowed:
        shown = ", ".join(f"{n}: {s}" for n, s in scales.items())
        raise InputError(f"the cohorts hold values on different scales ({shown}); pooled as "
                         "they are, one normalisation cannot fit them all. Pool cohorts on one "
                         "scale (e.g. all counts), or allow mixed scales if they were already "
                         "normalised alike.")


def _gene_key(cohorts: Mapping[str, AnnData], gene_key: GeneKey) -> str:
    if gene_key != "auto":
        return gene_key
    if all(keys.VAR_SYMBOL in a.var for a in cohorts.values()):
        return "symbol"
    if all(keys.VAR_ENSEMBL in a.var or looks_like_ensembl(a.var_names).mean() > 0.5
           for a in cohorts.values()):
        return "ensembl"
    return "symbol"                 # symbols where known, else the cohort's own gene names


def _keyed(adata: AnnData, key: str, duplicates: Duplicates,
           scale: str) -> tuple[np.ndarray, pd.DataFrame]:
    """The cohort's values and gene table with genes keyed by `key`, duplicates merged."""
    column = keys.VAR_SYMBOL if key == "symbol" else keys.VAR_ENSEMBL
    names = pd.Series(adata.var_names, index=adata.var_names, dtype=object)
    if column in adata.var:
        given = adata.var[column].astype(object)
        names = given.where(given.notna() & (given.astype(str).str.strip() != ""), names)
    table = adata.var[[c for c in (keys.VAR_SYMBOL, keys.VAR_ENSEMBL) if c in adata.var]].copy()
    table.index = strip_ensembl_version(pd.Index(names.astype(str)))
    values, var, _ = harmonize_genes(np.asarray(adata.X, dtype=np.float32), table,
                                     gene_id="as_is", duplicates=duplicates,
                                     count_based=scale == "counts")
    return values, var


def _vocabulary(keyed: dict, genes: GeneSet, key: str) -> pd.Index:
    """Genes in the first cohort's order; the union appends each later cohort's new genes."""
    indexes = [var.index for _, var in keyed.values()]
    vocabulary = indexes[0]
    for other in indexes[1:]:
        vocabulary = (vocabulary.intersection(other, sort=False) if genes == "intersection"
                      else vocabulary.append(other.difference(vocabulary, sort=False)))
    if not len(vocabulary):
        examples = "; ".join(f"{n}: {', '.join(map(str, v.index[:3]))}"
                             for n, (_, v) in keyed.items())
        raise InputError(f"no gene is common to all {len(keyed)} cohorts (genes keyed by {key}; "
                         f"e.g. {examples}); check that they name genes alike (symbols vs "
                         "Ensembl ids), or pool the union of their genes.")
    return pd.Index(vocabulary, dtype=object)


def _pooled_var(keyed: dict, vocabulary: pd.Index) -> pd.DataFrame:
    """Symbol and Ensembl id of each gene from the first cohort that has them."""
    var = pd.DataFrame(index=vocabulary)
    for column in (keys.VAR_SYMBOL, keys.VAR_ENSEMBL):
        found = pd.Series(np.nan, index=vocabulary, dtype=object)
        for _, table in keyed.values():
            if column in table:
                found = found.fillna(table[column].reindex(vocabulary).astype(object))
        if found.notna().any():
            var[column] = found.fillna("").astype(str)
    var["n_cohorts"] = sum(vocabulary.isin(t.index).astype(np.int64) for _, t in keyed.values())
    var.index.name = None                   # an index named like a column cannot be written
    return var


def _pooled_obs(cohorts: Mapping[str, AnnData]) -> pd.DataFrame:
    """Every cohort's obs stacked, with `cohort`, prefixed patient ids and unique sample ids."""
    from gexcore.data.read import h5ad_safe

    frames = []
    for name, adata in cohorts.items():
        obs = adata.obs.astype(object).copy()            # categories differ between cohorts
        obs[OBS_COHORT] = name
        patient = obs[keys.OBS_PATIENT] if keys.OBS_PATIENT in obs else obs.index.to_series()
        obs[keys.OBS_PATIENT] = [f"{name}/{p}" for p in patient]
        frames.append(obs)
    obs = pd.concat(frames, axis=0, join="outer")
    if obs.index.has_duplicates:
        obs[OBS_SOURCE_ID] = obs.index.astype(str)
        obs.index = pd.Index([f"{c}/{i}" for c, i in zip(obs[OBS_COHORT], obs.index)])
    obs.index = pd.Index(obs.index.astype(str), name=None)
    return h5ad_safe(obs)


def _record(cohorts, keyed, scales, genes: str, key: str, vocabulary: pd.Index) -> dict:
    """`uns['corpus']`: h5ad-safe (dicts of plain values, no None)."""
    sources = {}
    for name, adata in cohorts.items():
        provenance = adata.uns.get(keys.UNS_PROVENANCE, {})
        sources[name] = {"source": str(provenance.get("source", name)),
                         "format": str(provenance.get("format", "")),
                         "n_samples": int(adata.n_obs), "n_genes_read": int(adata.n_vars),
                         "n_genes_kept": int(keyed[name][1].index.isin(vocabulary).sum()),
                         "scale": scales[name]}
    return {"sources": sources, "genes": genes, "gene_key": key,
            "n_genes": len(vocabulary),
            "n_samples": int(sum(a.n_obs for a in cohorts.values()))}
