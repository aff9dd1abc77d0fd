"""SCARF (Bahri et al. 2022): contrast each sample with a copy whose features were resampled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gexcore.config import FromDict
from gexcore.models.mlp import MLPEncoder
from gexcore.models.objectives.base import BankedObjective, LossOutput, observed_fraction

__all__ = ["SCARFConfig", "SCARFObjective", "nt_xent"]


@dataclass(frozen=True)
class SCARFConfig(FromDict):
    """Corruption rate, NT-Xent temperature and the pretraining-only projection head."""

    corruption: float = 0.3
    temperature: float = 1.0
    proj_dim: int = 128
    proj_layers: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.corruption < 1.0:
            raise ValueError(f"corruption must be in (0, 1), not {self.corruption}.")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, not {self.temperature}.")
        if self.proj_dim < 1:
            raise ValueError(f"proj_dim must be positive, not {self.proj_dim}.")
        if self.proj_layers < 1:
            raise ValueError(f"proj_layers must be at least 1, not {self.proj_layers}.")


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over 2B views: row i's positive is its other view, the other 2B - 2 negatives."""
    B = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)                # (2B, P)
    logits = z @ z.T / temperature                                     # (2B, 2B) cosine / t
    logits = logits.masked_fill(torch.eye(2 * B, dtype=torch.bool, device=z.device), float("-inf"))
    positive = torch.cat([torch.arange(B, 2 * B), torch.arange(B)]).to(z.device)
    return F.cross_entropy(logits, positive)


def _projection_head(in_dim: int, hidden: int, out_dim: int, n_layers: int) -> nn.Sequential:
    """(n_layers - 1) x [Linear, ReLU] then Linear to `out_dim`."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(n_layers - 1):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, out_dim))


class SCARFObjective(BankedObjective):
    """MLP encoder + projection head trained with NT-Xent between a sample and its corruption."""

    method: ClassVar[str] = "scarf"
    title: ClassVar[str] = "SCARF (contrastive MLP)"
    config_cls: ClassVar[type] = SCARFConfig

    def __init__(self, encoder: MLPEncoder, config: SCARFConfig | None = None):
        super().__init__(encoder)
        self.config = c = config or SCARFConfig()
        self.projector = _projection_head(encoder.out_dim, encoder.out_dim, c.proj_dim,
                                         c.proj_layers)

    def forward(self, x: torch.Tensor, missing: torch.Tensor,
                generator: torch.Generator | None = None) -> LossOutput:
        x_tilde, corrupted = self.corrupt(x, missing, self.config.corruption, generator)
        # One pass over both views: BatchNorm sees the 2B batch, as in SimCLR-style training.
        z1, z2 = self.projector(self.encoder(torch.cat([x, x_tilde]))).chunk(2)
        loss = nt_xent(z1, z2, self.config.temperature)
        with torch.no_grad():
            sim = F.normalize(z1.float(), dim=1) @ F.normalize(z2.float(), dim=1).T   # (B, B)
            top1 = (sim.argmax(dim=1) == torch.arange(x.shape[0], device=x.device)).float()
        return LossOutput(loss, {"nt_xent": loss.item(), "top1": top1.mean().item(),
                                 "corrupted_fraction": observed_fraction(corrupted, missing)})
