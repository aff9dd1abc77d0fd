"""The fixed pieces of one `train` call: checked data on the device, the split, AdamW, schedule."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from gexcore.progress import ProgressCallback
from gexcore.train.batches import split_rows, steps_per_epoch
from gexcore.train.config import TrainConfig
from gexcore.train.device import Distributed, resolve_precision
from gexcore.train.schedule import warmup_cosine_scheduler

__all__ = ["Run", "check_inputs", "setup_run"]


@dataclass
class Run:
    """What the loop and its helpers share: fixed at setup, plus a few session counters."""

    objective: nn.Module
    config: TrainConfig
    dist: Distributed
    precision: str
    x: torch.Tensor                       # (N, G) on the device
    missing: torch.Tensor                 # (N, G) bool on the device
    train_rows: torch.Tensor              # (n_train,) CPU row indices
    val_rows: torch.Tensor                # (n_val,) row indices on the device
    steps_per_epoch: int
    total_steps: int
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator            # the objective's masks and corruptions
    checkpoint_dir: Path | None
    data_id: str                          # sha256 of x and missing; "" without checkpoint_dir
    progress: ProgressCallback | None
    started: float = field(default_factory=time.perf_counter)
    start_step: int = 0
    samples: int = 0                      # training rows this process saw in this session
    saved_at: tuple[int, int] = (-1, -1)  # (step, epoch) of the last train_state written

    @property
    def device(self) -> torch.device:
        return self.dist.device


def setup_run(objective: nn.Module, x: torch.Tensor, missing: torch.Tensor, config: TrainConfig,
              dist_run: Distributed, checkpoint_dir: str | Path | None,
              progress: ProgressCallback | None) -> Run:
    """Split rows; move data and model to the device once; build AdamW and the lr schedule."""
    device = dist_run.device
    train_rows, val_rows = split_rows(x.shape[0], config.val_fraction, config.seed)
    per_process = len(train_rows) // dist_run.world_size
    per_epoch = steps_per_epoch(per_process, config.batch_size)
    if per_epoch == 0:
        raise ValueError(f"{len(train_rows)} training rows over {dist_run.world_size} "
                         "process(es) leave fewer than 2 per process; use more rows or a "
                         "smaller val_fraction.")
    total_steps = config.epochs * per_epoch
    objective.to(device)
    optimizer = _adamw(objective, config, device)
    warmup_steps = round(config.warmup_fraction * total_steps)
    scheduler = warmup_cosine_scheduler(optimizer, total_steps, warmup_steps, config.min_lr_ratio)
    return Run(objective=objective, config=config, dist=dist_run,
               precision=resolve_precision(device, config.precision),
               x=x.to(device), missing=missing.to(device), train_rows=train_rows,
               val_rows=val_rows.to(device), steps_per_epoch=per_epoch, total_steps=total_steps,
               optimizer=optimizer, scheduler=scheduler, generator=torch.Generator(device),
               checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
               data_id="" if checkpoint_dir is None else _data_id(x, missing),
               progress=progress)


def check_inputs(x: torch.Tensor, missing: torch.Tensor) -> None:
    """Raise ValueError unless x is (N >= 2, G) finite float32 and missing a bool mask like it."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.dtype != torch.float32:
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a (samples, genes) float32 tensor; got {got}.")
    if (not isinstance(missing, torch.Tensor) or missing.dtype != torch.bool
            or missing.shape != x.shape):
        got = (f"{missing.dtype} {tuple(missing.shape)}" if isinstance(missing, torch.Tensor)
               else type(missing).__name__)
        raise ValueError(f"missing must be a bool tensor shaped like x {tuple(x.shape)}; "
                         f"got {got}.")
    if x.shape[0] < 2:
        raise ValueError(f"training needs at least 2 samples; x has {x.shape[0]}.")
    bad = ~torch.isfinite(x)
    if bad.any():
        row, col = bad.nonzero()[0].tolist()
        raise ValueError(f"x has {int(bad.sum()):,} non-finite values (first at row {row}, "
                         f"column {col}); set missing cells to 0 and mark them in `missing`.")


def _adamw(objective: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only, not on biases and norm scales (nanoGPT)."""
    params = [p for p in objective.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(objective).__name__} has no trainable parameters.")
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr,
                             fused=True if device.type == "cuda" else None)


def _data_id(x: torch.Tensor, missing: torch.Tensor) -> str:
    """sha256 of the data, so a resumed run can tell it trains on the same cohort."""
    digest = hashlib.sha256(str(tuple(x.shape)).encode())
    for tensor in (x, missing):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
