"""VIME self-supervised stage (Yoon et al. 2020): from a corrupted sample, find mask and values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gexcore.config import FromDict
from gexcore.models.mlp import MLPEncoder
from gexcore.models.objectives.base import (
    BankedObjective,
    LossOutput,
    MarginalFill,
    evaluating,
    observed_fraction,
)

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

    method: ClassVar[str] = "vime"
    title: ClassVar[str] = "VIME (mask + reconstruct MLP)"
    config_cls: ClassVar[type] = VIMEConfig
    can_restore: ClassVar[bool] = True             # the feature estimator is a value decoder

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

    @torch.no_grad()
    def restore(self, x: torch.Tensor, missing: torch.Tensor, targets: torch.Tensor,
                fill: MarginalFill | None = None) -> torch.Tensor:
        """The value decoder at `targets` (B, G), NaN elsewhere; it reads every cell, so blank
        ones (missing or targets) are filled first: with 0, the training mean after z-scoring
        (the value missing cells had in pretraining), or as `fill` says, averaged over draws.
        """
        blank = missing | targets
        x = x.masked_fill(blank, 0.0)
        with evaluating(self.encoder):
            if fill is None:
                pred = self.value_head(self.encoder(x))
            else:
                pred = self._marginal_values(x, blank, fill)
        return pred.masked_fill(~targets, float("nan"))

    def _marginal_values(self, x: torch.Tensor, blank: torch.Tensor,
                         fill: MarginalFill) -> torch.Tensor:
        """Decoder output averaged over `fill.n_draws` marginal fills of the blank cells."""
        # NumPy draws the rows, as the imputer did before restore moved here: same numbers.
        rng = np.random.default_rng(fill.seed)
        total = torch.zeros_like(x)
        for _ in range(fill.n_draws):
            rows = torch.from_numpy(rng.integers(fill.bank.shape[0], size=tuple(x.shape)))
            drawn = fill.bank.gather(0, rows.to(fill.bank.device)).to(x.device)     # (B, G)
            total += self.value_head(self.encoder(torch.where(blank, torch.nan_to_num(drawn), x)))
        return total / fill.n_draws
