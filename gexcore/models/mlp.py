"""The tabular-SSL encoder of Dradjat et al. (2025): n x [Linear, BatchNorm, ReLU, Dropout]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from gexcore.config import FromDict

__all__ = ["MLPConfig", "MLPEncoder"]


@dataclass(frozen=True)
class MLPConfig(FromDict):
    """Depth, width and dropout of the MLP encoder; the embedding width is `hidden`."""

    n_layers: int = 4
    hidden: int = 256
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, not {self.n_layers}.")
        if self.hidden < 1:
            raise ValueError(f"hidden must be positive, not {self.hidden}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}.")


class MLPEncoder(nn.Module):
    """(B, G) normalised values, missing cells 0 -> (B, hidden) embedding."""

    label: ClassVar[str] = "MLP"
    differentiable_inputs: ClassVar[bool] = True      # integrated gradients are defined

    def __init__(self, n_genes: int, config: MLPConfig | None = None):
        super().__init__()
        if n_genes < 1:
            raise ValueError(f"n_genes must be positive, not {n_genes}.")
        self.config = config or MLPConfig()
        self.n_genes = n_genes
        self.out_dim = self.config.hidden
        layers: list[nn.Module] = []
        width = n_genes
        for _ in range(self.config.n_layers):
            layers += [nn.Linear(width, self.config.hidden), nn.BatchNorm1d(self.config.hidden),
                       nn.ReLU(), nn.Dropout(self.config.dropout)]
            width = self.config.hidden
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def encode(self, x: torch.Tensor, missing: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, G) -> (B, hidden), in training or eval mode; the MLP reads every cell."""
        return self(x)

    def embed_all(self, x: torch.Tensor, missing: torch.Tensor, chunk: int = 32) -> torch.Tensor:
        """(B, G) -> (B, hidden); the gene transformer's signature, one pass for the MLP."""
        return self(x)
