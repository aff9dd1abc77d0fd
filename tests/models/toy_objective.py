"""A toy SSL method in one file: a denoising autoencoder on the MLP encoder.

Importing this module registers it; nothing else in gexcore changes. The worked example of
docs/recipes/add-ssl-method.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from gexcore.config import FromDict
from gexcore.models.mlp import MLPConfig, MLPEncoder
from gexcore.models.objectives import LossOutput, Objective, register_objective
from gexcore.models.objectives.base import MarginalFill, evaluating


@dataclass(frozen=True)
class DAEConfig(FromDict):
    """Share of the observed cells blanked per step; they are the reconstruction targets."""

    noise: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 < self.noise < 1.0:
            raise ValueError(f"noise must be in (0, 1), not {self.noise}.")


@register_objective
class DAEObjective(Objective):
    """Blank some observed cells, reconstruct them from the rest with a linear decoder."""

    method: ClassVar[str] = "toy_dae"
    title: ClassVar[str] = "Denoising autoencoder (toy)"
    model_config_cls: ClassVar[type] = MLPConfig
    config_cls: ClassVar[type] = DAEConfig
    body_cls: ClassVar[type] = MLPEncoder
    can_restore: ClassVar[bool] = True            # the decoder predicts blanked values
    input_gradients: ClassVar[bool] = True        # an MLP body is differentiable

    def __init__(self, encoder: MLPEncoder, config: DAEConfig | None = None):
        super().__init__()
        self.encoder, self.config = encoder, config or DAEConfig()
        self.decoder = nn.Linear(encoder.out_dim, encoder.n_genes)

    def forward(self, x: torch.Tensor, missing: torch.Tensor,
                generator: torch.Generator | None = None) -> LossOutput:
        noise = torch.rand(x.shape, generator=generator, device=x.device)
        blank = (noise < self.config.noise) & ~missing                         # (B, G)
        recon = self.decoder(self.encoder(x.masked_fill(blank, 0.0)))
        loss = (recon - x).square().mul(blank).sum() / blank.sum().clamp(min=1)
        return LossOutput(loss, {"mse": loss.item()})

    @torch.no_grad()
    def restore(self, x: torch.Tensor, missing: torch.Tensor, targets: torch.Tensor,
                fill: MarginalFill | None = None) -> torch.Tensor:
        with evaluating(self.encoder):
            recon = self.decoder(self.encoder(x.masked_fill(missing | targets, 0.0)))
        return recon.masked_fill(~targets, float("nan"))
