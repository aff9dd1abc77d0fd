"""Attention-derived gene importance for the gene transformer, and per-group importance tables.

Attention says where the model looked, not why it decided: label it as attention in the app and
show integrated gradients beside it (`gexcore.explain.gradients`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch

from gexcore.data.genes import MIN_GENE_OVERLAP

if TYPE_CHECKING:
    from anndata import AnnData

    from gexcore.models.encoder import Encoder

__all__ = ["attention_importance", "importance_table", "select_rows"]

AttentionMode = Literal["cls", "rollout"]
_MAX_ATTENTION_CELLS = 2**27      # floats held by one chunk's attention maps (512 MiB)


def attention_importance(encoder: Encoder, adata: AnnData, *, mode: AttentionMode = "cls",
                         samples=None, body: torch.nn.Module | None = None,
                         batch_size: int = 32, min_overlap: float = MIN_GENE_OVERLAP) -> np.ndarray:
    """(n_samples, n_genes) attention each gene receives, over the encoder's gene vocabulary.

    Every observed gene of a sample is a token (as in `embed_all`); unobserved genes are NaN.
    "cls": attention from CLS to each gene in the last layer, averaged over heads. "rollout":
    attention rollout (Abnar & Zuidema 2020): per layer the head mean plus identity, rows
    renormalised, multiplied across layers; the CLS row is read. With mean pooling (no CLS)
    the query is the mean over all gene tokens, so a score is the attention a gene receives on
    average. Scores are probabilities: a sample's scores sum to at most 1 (the rest goes to CLS).
    `samples` (indices or a bool mask) picks rows of `adata`; `body` replaces the encoder's
    transformer (e.g. a fine-tuned `HeadNet.body`); chunks shrink for long gene lists.
    Masked pretraining never reads CLS, so prefer rollout there (see tests/explain for numbers).
    """
    from gexcore.models.encoder import cohort_tensors
    from gexcore.models.objectives.base import evaluating

    if mode not in AttentionMode.__args__:
        raise ValueError(f"mode must be one of {AttentionMode.__args__}, not {mode!r}.")
    model = _attention_body(encoder, body)
    rows = select_rows(adata.n_obs, samples)
    x, missing = cohort_tensors(adata[rows], encoder.normalizer, min_overlap=min_overlap)
    out = torch.full(x.shape, float("nan"))
    device = next(model.parameters()).device
    per_map = model.config.n_layers * model.config.n_heads * (x.shape[1] + 1) ** 2
    chunk = max(1, min(batch_size, _MAX_ATTENTION_CELLS // per_map))
    with evaluating(model), torch.no_grad():
        for start in range(0, len(x), chunk):
            part = slice(start, start + chunk)
            out[part] = _chunk_scores(model, x[part].to(device), missing[part].to(device),
                                      mode).cpu()
    return out.numpy()


def _chunk_scores(model, x: torch.Tensor, missing: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, G) -> (B, G) attention received per gene; NaN where the gene is not observed."""
    from gexcore.models.gene_transformer import select_genes

    gene_idx, pad = select_genes(~missing)                                   # (B, L)
    maps = model.attention_maps(gene_idx, x.gather(1, gene_idx), torch.zeros_like(pad), pad)
    maps = maps.float().mean(dim=2)                                          # (layers, B, L', L')
    n_special = maps.shape[-1] - gene_idx.shape[1]                           # 1 with CLS
    if mode == "rollout":
        eye = torch.eye(maps.shape[-1], device=maps.device)
        flow = maps[0] * 0.5 + eye * 0.5               # (A + I) / 2: rows of A already sum to 1
        for layer in maps[1:]:
            flow = (layer * 0.5 + eye * 0.5) @ flow                          # (B, L', L')
    else:
        flow = maps[-1]
    if n_special:
        query = flow[:, 0]                                                   # (B, L') CLS row
    else:   # mean pooling: the query is the average over real gene tokens
        weight = (~pad).float() / (~pad).sum(dim=1, keepdim=True).clamp(min=1)
        query = (weight.unsqueeze(1) @ flow).squeeze(1)                      # (B, L')
    scores = query[:, n_special:].masked_fill(pad, float("nan"))             # (B, L)
    out = torch.full(x.shape, float("nan"), device=x.device)
    return out.scatter(1, gene_idx, scores)       # pad slots point at unobserved genes: NaN


def _attention_body(encoder: Encoder, body: torch.nn.Module | None):
    """`body` or the encoder's body, if the method has attention maps; else CapabilityError."""
    from gexcore.models.methods import require

    encoder._check_ready()
    require(encoder.method, "has_attention")   # the wrong run for this view, not a type bug
    return encoder.body if body is None else body


def select_rows(n: int, samples=None) -> np.ndarray:
    """Row indices from None (all), a bool mask of length n, or integer indices."""
    if samples is None:
        return np.arange(n)
    picked = np.asarray(samples)
    if picked.dtype == bool:
        if picked.shape != (n,):
            raise ValueError(f"a boolean samples mask needs {n} entries, not {picked.shape}.")
        return np.flatnonzero(picked)
    if picked.dtype.kind not in "iu":
        raise ValueError(f"samples must be row indices or a boolean mask, not {picked.dtype}.")
    picked = picked.ravel()
    if picked.size and (picked.min() < -n or picked.max() >= n):
        raise ValueError(f"sample index out of range for {n} samples.")
    return picked % n if picked.size else picked.astype(int)


def importance_table(scores, genes, *, groups=None, absolute: bool = False) -> pd.DataFrame:
    """Per-gene mean score overall and per group -> wide table sorted by overall importance.

    Columns: gene, rank (1 = most important), importance (nan-mean over samples), n_samples
    (samples where the gene was scored), then one column per group (its mean score).
    With `absolute`, |scores| are averaged (signed attributions of either direction count).
    """
    values = np.asarray(scores, dtype=float)
    genes = [str(g) for g in genes]
    if values.ndim != 2 or values.shape[1] != len(genes):
        raise ValueError(f"scores must be (n_samples, {len(genes)} genes), not {values.shape}.")
    if absolute:
        values = np.abs(values)
    table = pd.DataFrame({"gene": genes, "importance": _nanmean(values),
                          "n_samples": np.isfinite(values).sum(axis=0)})
    if groups is not None:
        labels = pd.Series(np.asarray(groups, dtype=object)).astype(str)
        if len(labels) != len(values):
            raise ValueError(f"groups has {len(labels)} entries for {len(values)} samples.")
        for name in sorted(labels.unique()):
            if name in (*table.columns, "rank"):
                raise ValueError(f"group {name!r} clashes with a column of the table; "
                                 "rename the group.")
            table[name] = _nanmean(values[(labels == name).to_numpy()])
    table = table.sort_values("importance", ascending=False, kind="stable", na_position="last")
    table.insert(1, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN; NaN (no warning) where a column has no finite value."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=0)
    count = finite.sum(axis=0)
    return np.divide(total, count, out=np.full(values.shape[1], np.nan), where=count > 0)
