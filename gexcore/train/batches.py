"""Seeded rows and random streams: the train/val split, each epoch's batches, per-process seeds.

Every random choice of a run comes from its own stream, mixed from the seed (and the epoch or
rank) by `SeedSequence`, so a run repeats exactly and a resumed run continues exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from gexcore.train.config import TrainConfig
from gexcore.train.device import Distributed

__all__ = ["epoch_batches", "seed_generators", "split_rows", "steps_per_epoch",
           "validation_batches", "validation_generator"]

# Independent random streams of one run.
_SPLIT, _SHUFFLE, _OBJECTIVE, _DROPOUT, _VALIDATION = range(5)


def split_rows(n_rows: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train_rows, val_rows), sorted; at least 1 val row when val_fraction > 0, N >= 2."""
    n_val = 0
    if val_fraction > 0 and n_rows >= 2:
        n_val = min(max(1, round(val_fraction * n_rows)), n_rows - 1)
    order = torch.randperm(n_rows, generator=_generator(seed, _SPLIT))
    return order[n_val:].sort().values, order[:n_val].sort().values


def steps_per_epoch(rows_per_process: int, batch_size: int) -> int:
    """Batches per epoch and process; a last batch of one row is dropped."""
    full, rest = divmod(rows_per_process, batch_size)
    return full + (rest >= 2)


def epoch_batches(train_rows: torch.Tensor, epoch: int, config: TrainConfig,
                  dist: Distributed) -> list[torch.Tensor]:
    """This process's batches of one epoch: slices of its shard of a seeded permutation."""
    n_train = len(train_rows)
    order = torch.randperm(n_train, generator=_generator(config.seed, _SHUFFLE, epoch))
    per_process = n_train // dist.world_size
    shard = train_rows[order[dist.rank * per_process:(dist.rank + 1) * per_process]]
    batches = list(torch.split(shard.to(dist.device), config.batch_size))
    if len(batches[-1]) < 2:                   # a batch of one breaks BatchNorm in train mode
        batches.pop()
    return batches


def validation_batches(rows: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Validation batches; a last batch of one row joins the one before it."""
    if len(rows) == 0:
        return []
    batches = list(torch.split(rows, size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def validation_generator(seed: int, device: torch.device) -> torch.Generator:
    """The same masks every epoch, so validation losses are comparable across epochs."""
    return torch.Generator(device).manual_seed(_seed(seed, _VALIDATION))


def seed_generators(seed: int, dist: Distributed, generator: torch.Generator) -> None:
    """Fresh seeds: global RNG (dropout) and the objective's generator, distinct per process."""
    torch.random.default_generator.manual_seed(_seed(seed, _DROPOUT, dist.rank))
    if dist.device.type == "cuda":
        with torch.cuda.device(dist.device):
            torch.cuda.manual_seed(_seed(seed, _DROPOUT, dist.rank))
    generator.manual_seed(_seed(seed, _OBJECTIVE, dist.rank))


def _seed(seed: int, *stream: int) -> int:
    """A well-mixed 63-bit seed for one random stream (split, shuffle, masks...) of a run."""
    state = np.random.SeedSequence([seed, *stream]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def _generator(seed: int, *stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(seed, *stream))
