"""Fill a cohort's missing genes with a pretrained encoder, in the cohort's own units.

Genes of the model's vocabulary that a cohort lacks (a smaller panel) and cells left empty
become the model's predictions from the genes that were measured: masked restoration for the
transformer, the value decoder for VIME. Predictions go back through the normaliser's inverse,
so they sit beside the measured values (clipped at 0 when the input has no negative values);
measured cells are never changed and `layers["imputed"]` marks every filled cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from gexcore import keys
from gexcore.data.genes import MIN_GENE_OVERLAP
from gexcore.data.validate import summarize_values
from gexcore.tasks.imputation import EncoderImputer

__all__ = ["impute_cohort"]


def impute_cohort(encoder, adata: AnnData, *,
                  min_overlap: float = MIN_GENE_OVERLAP) -> AnnData:
    """`adata` plus the model's genes it lacked, every missing cell of those genes filled.

    Returns a new AnnData: the cohort's genes first (in order), then the added ones;
    `var["observed"]` says which genes the cohort had, `layers["imputed"]` which cells were
    filled, `uns["imputation"]` how (slot names in `gexcore.keys`). Genes outside the model's
    vocabulary are kept as they are. Raises `GeneMismatchError` when the cohort shares under
    `min_overlap` of the model's genes, CapabilityError (a ValueError) for an encoder that
    cannot restore values (`encoder.can_restore` False: SCARF, BYOL).
    """
    norm = encoder.normalizer
    z = norm.transform(adata, min_overlap=min_overlap).X
    hide = np.isnan(z)
    imputer = EncoderImputer(encoder).fit(z)          # refuses encoders without a decoder
    predicted = imputer.predict(z, hide) if hide.any() else z
    raw = np.asarray(adata.X, dtype=np.float32)
    values = norm.inverse_transform(predicted, library_size=np.nansum(raw, axis=1))
    if np.nanmin(raw, initial=np.inf) >= 0:          # counts, TPM, log2(x+1): never negative
        values = np.maximum(values, 0.0)

    genes = pd.Index(adata.var_names.astype(str))
    added = pd.Index(norm.genes_).difference(genes, sort=False)
    every = genes.append(added)
    X = np.full((adata.n_obs, len(every)), np.nan, dtype=np.float32)
    X[:, : len(genes)] = raw
    pos = every.get_indexer(norm.genes_)
    filled = np.zeros(X.shape, dtype=bool)
    filled[:, pos] = hide
    X[:, pos] = np.where(hide, values, X[:, pos])

    out = AnnData(X=X, obs=adata.obs.copy(), var=_extend_var(adata.var, every))
    out.var[keys.VAR_OBSERVED] = np.arange(len(every)) < len(genes)
    out.layers[keys.LAYER_IMPUTED] = filled
    out.obsm = dict(adata.obsm)
    info = {"method": encoder.method, "n_cells": int(filled.sum()), "n_genes_added": len(added),
            "units": norm.input_scale_, "model_genes": len(norm.genes_)}
    out.uns = {**adata.uns, keys.UNS_IMPUTATION: info}
    if keys.UNS_VALIDATION in adata.uns:             # the Data page shows the new shape
        before = adata.uns[keys.UNS_VALIDATION]
        report = {**before, "n_genes": out.n_vars, **summarize_values(X),
                  "scale": before.get("scale", "unknown")}  # the input's, as measured
        report["notes"] = [*report.get("notes", []),
                           f"{info['n_cells']:,} cells filled by a {encoder.method} encoder "
                           f"({len(added):,} genes added); layers['imputed'] marks them"]
        out.uns[keys.UNS_VALIDATION] = report
    return out


def _extend_var(var: pd.DataFrame, genes: pd.Index) -> pd.DataFrame:
    """The cohort's gene annotations, reindexed; added genes get empty text, False or NaN."""
    out = var.reindex(genes.astype(str))
    for name, column in var.items():
        if isinstance(column.dtype, pd.CategoricalDtype):
            continue                                    # NaN is a valid missing category
        if pd.api.types.is_bool_dtype(column):
            out[name] = out[name].astype("boolean").fillna(False).astype(bool)
        elif pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
            out[name] = out[name].fillna("").astype(str)
    out.index.name = var.index.name
    return out
