"""The simulator's planted truth: how well a gene ranking finds the planted modules."""

from __future__ import annotations

import numpy as np
from anndata import AnnData

__all__ = ["planted_genes", "planted_hits"]


def planted_genes(adata: AnnData, group: str | None = None) -> list[str]:
    """Genes of the simulator's planted modules: of class `group` (`type_<group>*`), or all.

    Empty for a cohort that is not simulated or a class without a module (e.g. Normal).
    """
    modules = adata.uns.get("simulation", {}).get("module_genes", {})
    if group is None:
        return sorted({g for genes in modules.values() for g in genes})
    own = [genes for name, genes in modules.items()
           if name == f"type_{group}" or name.startswith(f"type_{group}_")]
    return sorted({g for genes in own for g in genes})


def planted_hits(ranked_genes, adata: AnnData, group: str | None = None, *,
                 k: int = 20) -> tuple[int, int, float] | None:
    """(planted genes among the first `k`, k, share of planted genes among all ranked genes):
    how well a ranking finds the simulator's modules; None without a planted module."""
    planted = planted_genes(adata, group)
    if not planted:
        return None
    genes = np.asarray([str(g) for g in ranked_genes], dtype=object)
    k = min(k, len(genes))
    return int(np.isin(genes[:k], planted).sum()), k, float(np.isin(genes, planted).mean())
