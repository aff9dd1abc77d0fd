"""BYOL (Grill et al. 2020) on tabular views: an online network predicts its EMA target."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gexcore.config import FromDict
from gexcore.models.mlp import MLPEncoder
from gexcore.models.objectives.base import BankedObjective, LossOutput

__all__ = ["BYOLConfig", "BYOLObjective", "byol_tau", "ema_update"]


@dataclass(frozen=True)
class BYOLConfig(FromDict):
    """Head sizes, the EMA decay (and its cosine ramp to 1), and the two views' augmentations."""

    proj_dim: int = 128
    hidden: int = 256
    decay: float = 0.99
    cosine_decay: bool = True
    corruption: float = 0.3
    noise_std: float = 0.1

    def __post_init__(self) -> None:
        if self.proj_dim < 1:
            raise ValueError(f"proj_dim must be positive, not {self.proj_dim}.")
        if self.hidden < 1:
            raise ValueError(f"hidden must be positive, not {self.hidden}.")
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], not {self.decay}.")
        if not 0.0 <= self.corruption < 1.0:
            raise ValueError(f"corruption must be in [0, 1), not {self.corruption}.")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be non-negative, not {self.noise_std}.")


def byol_tau(step: int, total_steps: int, decay: float, cosine: bool = True) -> float:
    """EMA rate after `step` of `total_steps`: `decay` at 0, rising on a cosine to 1 at the end."""
    if not cosine or total_steps <= 0:
        return decay
    progress = min(max(step / total_steps, 0.0), 1.0)
    return 1.0 - (1.0 - decay) * (math.cos(math.pi * progress) + 1.0) / 2.0


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- tau * target + (1 - tau) * online for parameters; buffers (BN stats) copied."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(o, 1.0 - tau)
    for t, o in zip(target.buffers(), online.buffers(), strict=True):
        t.copy_(o)


def _head(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """BYOL's projector/predictor: Linear, BatchNorm, ReLU, Linear."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, out_dim))


def _regression(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z) per sample, averaged; z carries no gradient."""
    cos = F.cosine_similarity(p.float(), z.detach().float(), dim=1)
    return (2.0 - 2.0 * cos).mean()


class BYOLObjective(BankedObjective):
    """Online encoder + projector + predictor; target encoder + projector follow by EMA."""

    method: ClassVar[str] = "byol"
    title: ClassVar[str] = "BYOL (teacher-student MLP)"
    config_cls: ClassVar[type] = BYOLConfig

    def __init__(self, encoder: MLPEncoder, config: BYOLConfig | None = None):
        super().__init__(encoder)
        self.config = c = config or BYOLConfig()
        self.projector = _head(encoder.out_dim, c.hidden, c.proj_dim)
        self.predictor = _head(c.proj_dim, c.hidden, c.proj_dim)
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.tau = c.decay

    def forward(self, x: torch.Tensor, missing: torch.Tensor,
                generator: torch.Generator | None = None) -> LossOutput:
        views = torch.cat([self._view(x, missing, generator), self._view(x, missing, generator)])
        p1, p2 = self.predictor(self.projector(self.encoder(views))).chunk(2)
        with torch.no_grad():
            z1, z2 = self.target_projector(self.target_encoder(views)).chunk(2)
        loss = _regression(p1, z2) + _regression(p2, z1)
        return LossOutput(loss, {"byol": loss.item(), "tau": self.tau})

    def after_step(self, step: int, total_steps: int) -> None:
        """EMA-update the target; `step` counts optimiser steps done (1 after the first)."""
        self.tau = byol_tau(step, total_steps, self.config.decay, self.config.cosine_decay)
        ema_update(self.target_encoder, self.encoder, self.tau)
        ema_update(self.target_projector, self.projector, self.tau)

    def _view(self, x: torch.Tensor, missing: torch.Tensor,
              generator: torch.Generator | None) -> torch.Tensor:
        """Marginal corruption plus gaussian noise on observed cells; missing cells stay 0."""
        view, _ = self.corrupt(x, missing, self.config.corruption, generator)
        noise = torch.randn(x.shape, generator=generator, device=x.device) * self.config.noise_std
        return view + noise.masked_fill(missing, 0.0)
