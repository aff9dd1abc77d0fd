"""VIME self-supervised stage (Yoon et al. 2020): from a corrupted sample, find mask and values."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gexcore.config import FromDict
from gexcore.models.mlp import MLPEncoder
from gexcore.models.objectives.base import BankedObjective, LossOutput, observed_fraction

__all__ = ["VIMEConfig", "VIMEObjective", "vime_loss"]


@dataclass(frozen=True)
class VIMEConfig(FromDict):
    """Masking probability and the weight `alpha` of the value-reconstruction term."""

    p_mask: float = 0.3
    alpha: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 < self.p_mask < 1.0:
            raise ValueError(f"p_mask must be in (0, 1), not {self.p_mask}.")
        if self.alpha < 0:
            raise ValueError(f"alpha must be non-negative, not {self.alpha}.")


def vime_loss(mask_logits: torch.Tensor, values_pred: torch.Tensor, mask: torch.Tensor,
              x: torch.Tensor, observed: torch.Tensor,
              alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BCE(mask) + alpha * MSE(values), each averaged over `observed` cells -> (loss, bce, mse)."""
    weight = observed.float()
    n = weight.sum().clamp(min=1)
    bce = F.binary_cross_entropy_with_logits(mask_logits.float(), mask.float(), reduction="none")
    mse = (values_pred.float() - x.float()).square()
    bce, mse = (bce * weight).sum() / n, (mse * weight).sum() / n
    return bce + alpha * mse, bce, mse


class VIMEObjective(BankedObjective):
    """MLP encoder + mask estimator (logits) + feature estimator, both linear over all genes."""

    def __init__(self, encoder: MLPEncoder, config: VIMEConfig | None = None):
        super().__init__(encoder)
        self.config = config or VIMEConfig()
        self.mask_head = nn.Linear(encoder.out_dim, encoder.n_genes)
        self.value_head = nn.Linear(encoder.out_dim, encoder.n_genes)

    def forward(self, x: torch.Tensor, missing: torch.Tensor,
                generator: torch.Generator | None = None) -> LossOutput:
        x_tilde, mask = self.corrupt(x, missing, self.config.p_mask, generator)
        h = self.encoder(x_tilde)
        # Missing cells are neither masked nor scored: their "value" 0 is a placeholder.
        loss, bce, mse = vime_loss(self.mask_head(h), self.value_head(h), mask, x, ~missing,
                                   self.config.alpha)
        return LossOutput(loss, {"bce": bce.item(), "mse": mse.item(),
                                 "masked_fraction": observed_fraction(mask, missing)})
