"""Learning-rate schedule: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["warmup_cosine", "warmup_cosine_scheduler"]


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Multiplier of the base lr for the optimiser step that follows `step` completed steps.

    Warm-up rises linearly, (step + 1) / (warmup_steps + 1), so the first step already moves;
    then a cosine goes from 1 at `warmup_steps` to `min_ratio` at `total_steps` and stays there.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                            warmup_steps: int, min_ratio: float) -> LambdaLR:
    """A `LambdaLR` over optimiser steps; call `scheduler.step()` after each `optimizer.step()`."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], "
                         f"got {warmup_steps}.")
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}.")
    schedule = partial(warmup_cosine, total_steps=total_steps, warmup_steps=warmup_steps,
                       min_ratio=min_ratio)
    return LambdaLR(optimizer, schedule)
