"""What every self-supervised objective gives the training loop: a loss and some metrics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["BankedObjective", "LossOutput", "Objective", "evaluating", "observed_fraction"]


@dataclass
class LossOutput:
    """`loss` is the scalar to backpropagate; `metrics` are detached floats for logging."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


class Objective(nn.Module):
    """An SSL method owning its encoder and heads; the loop only calls `forward` and `after_step`.

    Inputs are normalised values `x` (B, G) float32 with missing cells set to 0 and `missing`
    (B, G) bool, True where the gene was not measured. All randomness comes from `generator`.
    """

    encoder: nn.Module

    def forward(self, x: torch.Tensor, missing: torch.Tensor,
                generator: torch.Generator | None = None) -> LossOutput:
        raise NotImplementedError

    def after_step(self, step: int, total_steps: int) -> None:
        """Hook after each optimiser step (BYOL's EMA target update); default does nothing."""

    @torch.no_grad()
    def embed(self, x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        """(B, G) -> (B, D) sample embeddings from the encoder, in eval mode."""
        raise NotImplementedError


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside the block, then back to whatever mode `module` was in."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def observed_fraction(chosen: torch.Tensor, missing: torch.Tensor) -> float:
    """Share of the observed cells that `chosen` marks, for logging."""
    return ((chosen & ~missing).sum() / (~missing).sum().clamp(min=1)).item()


class BankedObjective(Objective):
    """An objective on an MLP encoder that corrupts cells with draws from each gene's marginal.

    The bank is the normalised training matrix, given once with `set_bank`; unset, each batch is
    its own bank. It is a plain attribute, not a buffer: DDP would broadcast a buffer every step.
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.bank: torch.Tensor | None = None            # (N, G) values, missing cells 0
        self.bank_missing: torch.Tensor | None = None    # (N, G) bool

    def set_bank(self, x: torch.Tensor, missing: torch.Tensor | None = None) -> None:
        """Draw corruptions from `x` (N, G); cells marked in `missing` are never drawn."""
        if missing is None:
            missing = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
        if x.ndim != 2 or x.shape != missing.shape or x.shape[0] < 1:
            raise ValueError(f"set_bank needs x and missing of one (N, G) shape with N >= 1, "
                             f"not {tuple(x.shape)} and {tuple(missing.shape)}.")
        device = next(self.parameters()).device
        self.bank = x.detach().to(device, torch.float32)
        self.bank_missing = missing.to(device, torch.bool)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        with evaluating(self.encoder):
            return self.encoder(x)

    def corrupt(self, x: torch.Tensor, missing: torch.Tensor, rate: float,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace ~`rate` of the observed cells by marginal draws -> (x_tilde, corrupted), (B, G).

        Missing cells stay 0 and are never corrupted; a draw that lands on a missing bank cell is
        skipped, so no value is invented where none was measured.
        """
        chosen = torch.rand(x.shape, generator=generator, device=x.device) < rate
        drawn, drawn_observed = self._draw_marginals(x, missing, generator)
        corrupted = chosen & ~missing & drawn_observed
        return torch.where(corrupted, drawn, x), corrupted

    def _draw_marginals(self, x: torch.Tensor, missing: torch.Tensor,
                        generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per cell, the same gene in a random bank row -> (values, drawn observed), (B, G)."""
        if self.bank is None:
            bank, bank_missing = x.detach(), missing
        else:
            if self.bank.device != x.device:                  # moved lazily: not a buffer
                self.bank = self.bank.to(x.device)
                self.bank_missing = self.bank_missing.to(x.device)
            bank, bank_missing = self.bank, self.bank_missing
        if bank.shape[1] != x.shape[1]:
            raise ValueError(f"the bank has {bank.shape[1]} genes but the batch has {x.shape[1]}.")
        rows = torch.randint(bank.shape[0], x.shape, generator=generator, device=x.device)
        return bank.gather(0, rows).to(x.dtype), ~bank_missing.gather(0, rows)
