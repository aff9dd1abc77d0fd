"""Masked-expression pretraining (GexBERT-style): hide some observed genes, restore them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from gexcore.config import FromDict
from gexcore.models.gene_transformer import (
    GeneTransformer,
    GeneTransformerConfig,
    sample_genes,
    select_genes,
)
from gexcore.models.objectives.base import LossOutput, MarginalFill, Objective, evaluating

__all__ = ["MaskedConfig", "MaskedObjective", "hidden_count", "masked_mse"]


@dataclass(frozen=True)
class MaskedConfig(FromDict):
    """Objective-side options; mask ratio and genes per sample live in GeneTransformerConfig."""

    chunk: int = 32          # samples per forward pass in embed/restore, which see every gene

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise ValueError(f"chunk must be positive, not {self.chunk}.")


def hidden_count(k: int, mask_ratio: float) -> int:
    """Genes hidden out of k per sample: round(mask_ratio * k), at least 1, at most k - 1."""
    return min(k - 1, max(1, round(mask_ratio * k)))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the `masked` cells only, in float32; 0 (with a graph) if none."""
    sq = (pred.float() - target.float()).square() * masked
    return sq.sum() / masked.sum().clamp(min=1)


class MaskedObjective(Objective):
    """Draw `genes_per_sample` observed genes per sample, hide `mask_ratio` of them, restore."""

    method: ClassVar[str] = "transformer"
    title: ClassVar[str] = "Masked-expression transformer"
    model_config_cls: ClassVar[type] = GeneTransformerConfig
    config_cls: ClassVar[type] = MaskedConfig
    body_cls: ClassVar[type] = GeneTransformer
    can_restore: ClassVar[bool] = True
    has_attention: ClassVar[bool] = True
    # Binned values (the default) make the output a step function of each value; a
    # continuous-value model is differentiable, which `gene_attributions` checks per model.
    input_gradients: ClassVar[bool] = False
    # With ~256 of 2,000 genes per step, a gene rarely meets its co-expressed partners and the
    # transformer learns only batch effects; 500 top-variance genes let it learn the types.
    default_top_genes: ClassVar[int | None] = 500

    @classmethod
    def presets(cls) -> dict[str, Any]:
        # `small` is for short CPU runs, where dropout only slows learning. 256 genes per sample:
        # the demo cohort (3,000 x 2,000) pretrains 5 epochs in about a minute on 2 cores.
        # `corpus` is for GPU pretraining on thousands of samples x all genes (bf16).
        return {"small": GeneTransformerConfig(d_model=64, n_heads=4, n_layers=2, dropout=0.0,
                                               genes_per_sample=256),
                "base": GeneTransformerConfig(),
                "corpus": GeneTransformerConfig(d_model=512, n_heads=8, n_layers=8, dropout=0.0,
                                                genes_per_sample=2048)}

    def __init__(self, model: GeneTransformer, config: MaskedConfig | None = None):
        super().__init__()
        self.encoder = model
        self.config = config or MaskedConfig()
        # Fewest observed genes of any row `fit_data` saw (a plain int, not state): when it is
        # at least genes_per_sample, a step needs no device -> host read to size its subsets.
        self.fewest_observed: int | None = None

    def forward(self, x: torch.Tensor, missing: torch.Tensor,
                generator: torch.Generator | None = None) -> LossOutput:
        """Masked MSE of `mask_ratio` of k observed genes per sample, restored from the rest.

        Every sample gets the same k = min(genes_per_sample, fewest observed genes of any
        sample in the batch) genes, drawn uniformly from its observed ones, of which exactly
        round(mask_ratio * k) are hidden; equal counts leave no padding, so attention runs
        without a mask (`GeneTransformer.encode_and_restore`). A sample with many missing
        genes shrinks the subsets of its whole batch: drawing k per sample instead would need
        padding, hence a mask. Before, k genes were drawn per sample, padded, and each hidden
        with probability mask_ratio (`_masked_forward`, still used where k < 2).
        """
        k = self._genes_per_step(missing)
        if k < 2:                                  # nothing to hide and keep: padded path
            return self._masked_forward(x, missing, generator)
        gene_idx, _ = sample_genes(missing, k, generator)   # (B, k) observed, random order
        n_hidden = hidden_count(k, self.encoder.config.mask_ratio)
        values = x.gather(1, gene_idx)
        visible_idx, hidden_idx = gene_idx.split([k - n_hidden, n_hidden], dim=1)
        visible_values, targets = values.split([k - n_hidden, n_hidden], dim=1)
        _, restored = self.encoder.encode_and_restore(visible_idx, visible_values, hidden_idx)
        loss = (restored.float() - targets.float()).square().mean()
        # No `.item()` here: the loop reads the loss when it logs, not at every step.
        return LossOutput(loss, {"masked_fraction": n_hidden / k})

    def _masked_forward(self, x: torch.Tensor, missing: torch.Tensor,
                        generator: torch.Generator | None) -> LossOutput:
        """k genes per sample (padded where fewer are observed), each hidden with mask_ratio."""
        c = self.encoder.config
        gene_idx, pad = sample_genes(missing, c.genes_per_sample, generator)    # (B, k)
        values = x.gather(1, gene_idx)
        draw = torch.rand(gene_idx.shape, generator=generator, device=x.device)
        masked = (draw < c.mask_ratio) & ~pad          # padding is missing: never a target
        _, restored = self.encoder(gene_idx, values, masked, pad)
        loss = masked_mse(restored, values, masked)
        fraction = masked.sum() / (~pad).sum().clamp(min=1)
        return LossOutput(loss, {"masked_fraction": fraction.item()})

    def _genes_per_step(self, missing: torch.Tensor) -> int:
        """Genes per sample this step: genes_per_sample, or fewer if some sample has fewer."""
        k = min(self.encoder.config.genes_per_sample, missing.shape[1])
        if self.training and self.fewest_observed is not None and self.fewest_observed >= k:
            return k
        # Unknown data (or validation, where a host read costs nothing): count this batch.
        fewest = int((~missing).sum(dim=1).min()) if missing.shape[0] else 0
        return min(k, fewest)

    def fit_data(self, x: torch.Tensor, missing: torch.Tensor,
                 generator: torch.Generator | None = None) -> None:
        """Value bins at quantiles of the observed training values; note the fewest observed
        genes of any row, as training batches are rows of this `x`."""
        self.encoder.fit_bins(x, missing, generator=generator)
        self.fewest_observed = int((~missing).sum(dim=1).min()) if missing.shape[0] else 0

    @torch.no_grad()
    def embed(self, x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        """Pooled embedding over every observed gene (deterministic), in eval mode."""
        with evaluating(self.encoder):
            return self.encoder.embed_all(x, missing, chunk=self.config.chunk)

    @torch.no_grad()
    def restore(self, x: torch.Tensor, missing: torch.Tensor, targets: torch.Tensor,
                fill: MarginalFill | None = None) -> torch.Tensor:
        """Predict `targets` cells (B, G) from every other observed gene -> (B, G), NaN elsewhere.

        Targets may be missing genes (imputation) or observed ones held out for scoring. They
        become mask-token queries, so `fill` (for models that read every cell) is not used.
        """
        out = []
        with evaluating(self.encoder):
            for start in range(0, x.shape[0], self.config.chunk):
                rows = slice(start, start + self.config.chunk)
                out.append(self._restore_chunk(x[rows], missing[rows], targets[rows]))
        pred = torch.cat(out) if out else x.new_zeros(0, x.shape[1])
        return pred.masked_fill(~targets, float("nan"))

    def _restore_chunk(self, x: torch.Tensor, missing: torch.Tensor,
                       targets: torch.Tensor) -> torch.Tensor:
        gene_idx, pad = select_genes(~missing | targets)                          # (B, L)
        hide = targets.gather(1, gene_idx) & ~pad
        _, restored = self.encoder(gene_idx, x.gather(1, gene_idx), hide, pad)
        # Padding slots point at genes that are neither context nor target; restore() NaNs them.
        return torch.zeros_like(x).scatter(1, gene_idx, restored.float().to(x.dtype))
