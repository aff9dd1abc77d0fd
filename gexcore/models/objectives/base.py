"""What every self-supervised objective gives the training loop, and what it declares it can do.

An Objective subclass is one SSL method: its ClassVars register it (name, config classes,
encoder class) and say what its trained model can do; callers ask those, never the name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from gexcore.errors import CapabilityError
from gexcore.models.mlp import MLPConfig, MLPEncoder

__all__ = ["BankedObjective", "LossOutput", "MarginalFill", "Objective", "evaluating",
           "observed_fraction"]


@dataclass
class LossOutput:
    """`loss` is the scalar to backpropagate; `metrics` are floats or 0-dim tensors for logging.

    The loop reads tensors when it logs, not per step; a float from `.item()` costs a wait for
    the device at every step on CUDA.
    """

    loss: torch.Tensor
    metrics: dict[str, float | torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class MarginalFill:
    """Fill blank cells with the same gene of a random `bank` row, averaging `n_draws` draws.

    `bank` is (N, G) normalised float32 with NaN where unmeasured (a NaN draw fills 0); `seed`
    seeds the row draws. Only models that read every input cell use it (VIME).
    """

    bank: torch.Tensor
    n_draws: int = 8
    seed: int = 0


class Objective(nn.Module):
    """An SSL method owning its encoder and heads; the loop only calls `forward` and `after_step`.

    Inputs are normalised values `x` (B, G) float32 with missing cells set to 0 and `missing`
    (B, G) bool, True where the gene was not measured. All randomness comes from `generator`.

    A subclass declares, as ClassVars: `method` (its name in configs and checkpoints),
    `model_config_cls` and `body_cls` (the encoder's config and `nn.Module`, built as
    `body_cls(n_genes, model_config)`), `config_cls` (its own options), and what it can do:
    `can_restore` (`restore` predicts hidden values), `has_attention` (the body has
    `attention_maps`), `input_gradients` (integrated gradients through the body's input are
    defined for every model of the method) and `default_top_genes` (None = every gene).
    A body has `out_dim`, `label`, `differentiable_inputs`, `encode(x, missing, generator)`
    and `embed_all(x, missing)` (see `MLPEncoder`).
    """

    method: ClassVar[str]
    model_config_cls: ClassVar[type]
    config_cls: ClassVar[type]
    body_cls: ClassVar[type[nn.Module]]
    title: ClassVar[str] = ""                     # how forms and tables name the method
    can_restore: ClassVar[bool] = False
    has_attention: ClassVar[bool] = False
    input_gradients: ClassVar[bool] = False
    default_top_genes: ClassVar[int | None] = None

    encoder: nn.Module

    @classmethod
    def build(cls, n_genes: int, model_config: Any | None = None,
              config: Any | None = None) -> Objective:
        """A fresh body wrapped in this objective; None configs take the defaults."""
        model_config = cls.model_config_cls() if model_config is None else model_config
        config = cls.config_cls() if config is None else config
        for name, cfg, expected in (("model_config", model_config, cls.model_config_cls),
                                    ("objective_config", config, cls.config_cls)):
            if not isinstance(cfg, expected):
                raise TypeError(f"{name} for method {cls.method!r} must be a "
                                f"{expected.__name__}, not {type(cfg).__name__}.")
        return cls(cls.body_cls(n_genes, model_config), config)

    @classmethod
    def presets(cls) -> dict[str, Any]:
        """Model configs by size name ("small" for CPUs, "base" for GPUs); default: one each."""
        return {"small": cls.model_config_cls(), "base": cls.model_config_cls()}

    @property
    def body(self) -> nn.Module:
        """The encoder network (`body_cls`); heads used only in pretraining are not part of it."""
        return self.encoder

    def forward(self, x: torch.Tensor, missing: torch.Tensor,
                generator: torch.Generator | None = None) -> LossOutput:
        raise NotImplementedError

    def after_step(self, step: int, total_steps: int) -> None:
        """Hook after each optimiser step (BYOL's EMA target update); default does nothing."""

    def fit_data(self, x: torch.Tensor, missing: torch.Tensor,
                 generator: torch.Generator | None = None) -> None:
        """Set data-dependent parts from the training rows (N, G) before training; default none."""

    @torch.no_grad()
    def embed(self, x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        """(B, G) -> (B, D) sample embeddings from every observed gene, in eval mode."""
        with evaluating(self.encoder):
            return self.encoder.embed_all(x, missing)

    @torch.no_grad()
    def restore(self, x: torch.Tensor, missing: torch.Tensor, targets: torch.Tensor,
                fill: MarginalFill | None = None) -> torch.Tensor:
        """Predict the `targets` cells (B, G) from the other observed ones -> (B, G), else NaN.

        Targets may be missing genes (imputation) or observed ones held out for scoring; their
        values in `x` are never read. `fill` is for models that read every cell (see
        MarginalFill); others ignore it. Only methods with `can_restore` implement this.
        """
        raise CapabilityError(f"{type(self).__name__} ({self.method!r}) does not restore values; "
                              "it has no value decoder.")


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

    The bank is the normalised training matrix, given once with `set_bank` (by `fit_data`);
    unset, each batch is its own bank. It is a plain attribute, not a buffer: DDP would
    broadcast a buffer every step.
    """

    model_config_cls: ClassVar[type] = MLPConfig
    body_cls: ClassVar[type[nn.Module]] = MLPEncoder
    input_gradients: ClassVar[bool] = True        # the MLP is differentiable in every input

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

    def fit_data(self, x: torch.Tensor, missing: torch.Tensor,
                 generator: torch.Generator | None = None) -> None:
        """The training rows become the bank of marginal draws."""
        self.set_bank(x, missing)

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
