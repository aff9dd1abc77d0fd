"""Progress reports that long calls hand to a callback (tqdm in the CLI, a bar in the app)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "ProgressCallback", "StopCallback"]


@dataclass(frozen=True)
class Progress:
    """One report: where a long call is, and how fast it goes."""

    phase: str                       # "pretrain", "evaluate", "read", ...
    step: int                        # optimiser steps (or items) done
    total_steps: int
    epoch: int = 0                   # 1-based; 0 when not applicable
    epochs: int = 0
    loss: float = float("nan")       # running training loss
    val_loss: float = float("nan")   # last validation loss
    samples_per_s: float = 0.0
    eta_s: float = float("nan")
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


ProgressCallback = Callable[[Progress], None]
StopCallback = Callable[[], bool]
