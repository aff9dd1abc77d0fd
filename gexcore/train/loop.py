"""The one training loop: every SSL objective, CPU or CUDA, one process or a torchrun job.

Batches are slices of a seeded permutation of in-memory tensors, and every random choice comes
from a seeded generator, so a run repeats exactly, and so does a run resumed from `train_state/`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gexcore.models.objectives.base import LossOutput, Objective
from gexcore.progress import Progress, ProgressCallback, StopCallback
from gexcore.train import state as train_state
from gexcore.train.device import (
    Distributed,
    Precision,
    autocast_context,
    resolve_precision,
    setup_distributed,
)
from gexcore.train.schedule import warmup_cosine_scheduler
from gexcore.train.state import LoopState, tensors_to_cpu

__all__ = ["History", "TrainConfig", "split_rows", "steps_per_epoch", "train"]

logger = logging.getLogger(__name__)

# Independent random streams of one run, mixed with the seed (and epoch or rank) by SeedSequence.
_SPLIT, _SHUFFLE, _OBJECTIVE, _DROPOUT, _VALIDATION = range(5)


@dataclass(frozen=True)
class TrainConfig:
    """How to train; `asdict` goes to run metadata and `train_state/state.json`."""

    epochs: int = 20
    batch_size: int = 128                 # per process under torchrun
    lr: float = 1e-3                      # peak, after warm-up
    weight_decay: float = 1e-4            # AdamW, on weight matrices only
    warmup_fraction: float = 0.05         # of all optimiser steps
    min_lr_ratio: float = 0.01            # cosine floor, as a fraction of lr
    grad_clip: float | None = 1.0         # max global grad norm; None = no clipping
    val_fraction: float = 0.1             # seeded held-out rows for validation, early stopping
    patience: int | None = 5              # epochs without val improvement; None = never stop
    seed: int = 0
    device: str = "auto"                  # "auto", "cpu", "cuda", "cuda:N"
    precision: Precision = "auto"         # auto = bf16 on CUDA, fp32 on CPU
    checkpoint_every: int | None = None   # optimiser steps between resume checkpoints
    log_every: int = 10                   # optimiser steps between progress reports

    def __post_init__(self) -> None:
        _require(_is_int(self.epochs) and self.epochs >= 1, "epochs", self.epochs,
                 "an integer >= 1")
        _require(_is_int(self.batch_size) and self.batch_size >= 2, "batch_size",
                 self.batch_size, "an integer >= 2 (BatchNorm and contrastive losses need 2)")
        _require(_is_number(self.lr) and self.lr > 0, "lr", self.lr, "a number > 0")
        _require(_is_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay",
                 self.weight_decay, "a number >= 0")
        _require(_is_number(self.warmup_fraction) and 0 <= self.warmup_fraction < 1,
                 "warmup_fraction", self.warmup_fraction, "in [0, 1)")
        _require(_is_number(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1, "min_lr_ratio",
                 self.min_lr_ratio, "in [0, 1]")
        _require(self.grad_clip is None or (_is_number(self.grad_clip) and self.grad_clip > 0),
                 "grad_clip", self.grad_clip, "None or a number > 0")
        _require(_is_number(self.val_fraction) and 0 <= self.val_fraction < 1, "val_fraction",
                 self.val_fraction, "in [0, 1)")
        _require(self.patience is None or (_is_int(self.patience) and self.patience >= 1),
                 "patience", self.patience, "None or an integer >= 1")
        _require(_is_int(self.seed) and self.seed >= 0, "seed", self.seed, "an integer >= 0")
        _require(isinstance(self.device, str)
                 and re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None,
                 "device", self.device, "'auto', 'cpu', 'cuda' or 'cuda:N'")
        _require(self.precision in ("auto", "bf16", "fp32"), "precision", self.precision,
                 "'auto', 'bf16' or 'fp32'")
        _require(self.checkpoint_every is None
                 or (_is_int(self.checkpoint_every) and self.checkpoint_every >= 1),
                 "checkpoint_every", self.checkpoint_every, "None or an integer >= 1")
        _require(_is_int(self.log_every) and self.log_every >= 1, "log_every", self.log_every,
                 "an integer >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from `to_dict()` output (JSON, CLI flags); unknown keys are named, not dropped."""
        _check_keys(cls, data)
        return cls(**data)


@dataclass
class History:
    """What one `train` call did; `to_dict()` is JSON-safe (non-finite numbers become None)."""

    train_loss: list[float] = field(default_factory=list)  # per epoch, mean over all batches
    val_loss: list[float] = field(default_factory=list)    # per epoch; empty without val rows
    step_loss: list[float] = field(default_factory=list)   # per step, mean over processes
    steps: int = 0
    best_epoch: int = 0                    # 1-based epoch whose weights were kept; 0 = none
    best_val_loss: float | None = None
    stopped_early: bool = False
    cancelled: bool = False
    seconds: float = 0.0                   # wall time, summed over resumed sessions
    device: str = ""
    precision: str = ""
    world_size: int = 1
    n_train: int = 0
    n_val: int = 0
    samples_per_s: float = 0.0             # training rows per second, all processes
    metrics: dict[str, float] = field(default_factory=dict)  # last epoch's objective metrics

    @property
    def epochs(self) -> int:
        """Epochs completed."""
        return len(self.train_loss)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        _check_keys(cls, data)
        data = dict(data)
        for name in ("train_loss", "val_loss", "step_loss"):
            data[name] = [math.nan if v is None else v for v in data.get(name, [])]
        data["metrics"] = {k: math.nan if v is None else v
                           for k, v in data.get("metrics", {}).items()}
        return cls(**data)


@dataclass
class _Run:
    """The fixed pieces of one `train` call, handed to the helpers below."""

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
    data_id: str
    progress: ProgressCallback | None
    started: float = field(default_factory=time.perf_counter)
    start_step: int = 0
    samples: int = 0                      # training rows this process saw in this session
    saved_at: tuple[int, int] = (-1, -1)  # (step, epoch) of the last train_state written

    @property
    def device(self) -> torch.device:
        return self.dist.device


def train(objective: Objective, x: torch.Tensor, missing: torch.Tensor, config: TrainConfig, *,
          progress: ProgressCallback | None = None, should_stop: StopCallback | None = None,
          checkpoint_dir: str | Path | None = None, resume: bool = False,
          description: str = "") -> History:
    """Fit `objective` in place on `x` (N, G) float32 (missing cells 0) and `missing` (N, G) bool.

    A seeded `val_fraction` of rows is held out; the best validation epoch's weights are kept.
    With `checkpoint_dir`, `train_state/` is written each epoch (and every `checkpoint_every`
    steps); `resume=True` continues from it exactly. Under torchrun each process trains on its
    own shard, all end with the same weights, and only rank 0 reports and writes. The objective
    is left on the training device, in eval mode.
    """
    _check_inputs(x, missing)
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir, the folder that holds train_state/.")
    dist_run = setup_distributed(config.device)
    run = _setup(objective, x, missing, config, dist_run, checkpoint_dir,
                 progress if dist_run.is_main else None)
    cuda = [run.device.index] if run.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):   # the caller's RNG untouched
        history, best = _loop(run, should_stop, resume)
    _finish(run, history, best, description or type(objective).__name__)
    return history


def _loop(run: _Run, should_stop: StopCallback | None,
          resume: bool) -> tuple[History, dict | None]:
    """Epochs of steps; reads top to bottom: lr, forward, backward, clip, step, log, evaluate,
    checkpoint, should_stop(). Returns the history and the best epoch's weights (CPU)."""
    config, objective, optimizer, scheduler = (run.config, run.objective, run.optimizer,
                                               run.scheduler)
    loop, history, best = _start(run, resume)
    model = run.dist.wrap(objective)
    run.start_step = loop.step
    while loop.epoch < config.epochs and not history.stopped_early:
        model.train()
        for rows in _epoch_batches(run, loop.epoch)[loop.batch:]:
            lr = scheduler.get_last_lr()[0]
            with autocast_context(run.device, config.precision):
                out: LossOutput = model(run.x[rows], run.missing[rows], generator=run.generator)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(objective.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            loop.step, loop.batch = loop.step + 1, loop.batch + 1
            with torch.no_grad():
                objective.after_step(loop.step, run.total_steps)
            _record(out, loop, history, lr, run.dist)
            run.samples += len(rows)
            if loop.step % config.log_every == 0:
                _report(run, loop, history, epoch=loop.epoch + 1)
            if config.checkpoint_every and loop.step % config.checkpoint_every == 0:
                _checkpoint(run, loop, history, best)
            if run.dist.any(should_stop is not None and bool(should_stop())):
                history.cancelled = True
                _checkpoint(run, loop, history, best)
                return history, best
        best = _end_epoch(run, loop, history, best)
        _checkpoint(run, loop, history, best)
        _report(run, loop, history, epoch=loop.epoch)
    return history, best


def _setup(objective: nn.Module, x: torch.Tensor, missing: torch.Tensor, config: TrainConfig,
           dist_run: Distributed, checkpoint_dir: str | Path | None,
           progress: ProgressCallback | None) -> _Run:
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
    return _Run(objective=objective, config=config, dist=dist_run,
                precision=resolve_precision(device, config.precision),
                x=x.to(device), missing=missing.to(device), train_rows=train_rows,
                val_rows=val_rows.to(device), steps_per_epoch=per_epoch, total_steps=total_steps,
                optimizer=optimizer, scheduler=scheduler, generator=torch.Generator(device),
                checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
                data_id="" if checkpoint_dir is None else _data_id(x, missing),
                progress=progress)


def _start(run: _Run, resume: bool) -> tuple[LoopState, History, dict | None]:
    """Seed every generator afresh, or restore all state from `train_state/` to continue."""
    history = History()
    saved = train_state.load_train_state(run.checkpoint_dir) if resume else None
    if saved is None:
        if resume:
            logger.info("no train_state in %s; starting fresh", run.checkpoint_dir)
        _seed_generators(run)
        loop, best = LoopState(), None
    else:
        loop, history, best = _restore(run, saved)
    history.cancelled = False
    history.device, history.precision = str(run.device), run.precision
    history.world_size, history.n_train = run.dist.world_size, len(run.train_rows)
    history.n_val = len(run.val_rows)
    return loop, history, best


def _record(out: LossOutput, loop: LoopState, history: History, lr: float,
            d: Distributed) -> None:
    """Add this step's loss and metrics (means over processes) to the epoch's sums.

    Every process then holds the same numbers, and a non-finite loss stops them all.
    """
    names = sorted(out.metrics)
    values = d.sum([out.loss.item(), *(float(out.metrics[name]) for name in names)])
    loss, *metrics = (value / d.world_size for value in values)
    if not math.isfinite(loss):
        raise FloatingPointError(f"training loss is {loss} at step {loop.step} (epoch "
                                 f"{loop.epoch + 1}, lr {lr:.3g}); lower lr or check the input.")
    loop.loss_sum += loss
    loop.n_batches += 1
    for name, value in zip(names, metrics):
        loop.metric_sums[name] = loop.metric_sums.get(name, 0.0) + value
    history.step_loss.append(loss)
    history.steps = loop.step


def _end_epoch(run: _Run, loop: LoopState, history: History,
               best: dict | None) -> dict | None:
    """Close the epoch: mean losses, validation, early stopping. Returns the best weights."""
    n_batches = max(loop.n_batches, 1)
    history.train_loss.append(loop.loss_sum / n_batches)
    history.metrics = {name: value / n_batches for name, value in loop.metric_sums.items()}
    loop.epoch, loop.batch = loop.epoch + 1, 0
    loop.loss_sum, loop.n_batches = 0.0, 0
    loop.metric_sums = dict.fromkeys(loop.metric_sums, 0.0)
    run.dist.sync_buffers(run.objective)
    if len(run.val_rows) == 0:
        history.best_epoch = loop.epoch
        return None
    val_loss = _validate(run)
    history.val_loss.append(val_loss)
    if history.best_val_loss is None or val_loss < history.best_val_loss:
        history.best_val_loss, history.best_epoch, loop.bad_epochs = val_loss, loop.epoch, 0
        return tensors_to_cpu(run.objective.state_dict())
    loop.bad_epochs += 1
    if run.config.patience is not None and loop.bad_epochs >= run.config.patience:
        history.stopped_early = True
    return best


@torch.no_grad()
def _validate(run: _Run) -> float:
    """Mean loss over this process's validation rows (all processes' under torchrun), eval mode.

    A fixed generator seed gives every epoch the same masks, so epochs are comparable.
    """
    run.objective.eval()
    generator = torch.Generator(run.device).manual_seed(_seed(run.config.seed, _VALIDATION))
    rows = run.val_rows[run.dist.rank::run.dist.world_size]
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    for batch in _chunks(rows, run.config.batch_size):
        with autocast_context(run.device, run.config.precision):
            out = run.objective(run.x[batch], run.missing[batch], generator=generator)
        loss_sum += out.loss.detach().double() * len(batch)
    loss_sum, n_rows = run.dist.sum([loss_sum.item(), len(rows)])
    val_loss = loss_sum / n_rows
    if not math.isfinite(val_loss):
        raise FloatingPointError(f"validation loss is {val_loss}; lower lr or check the input.")
    return val_loss


def _finish(run: _Run, history: History, best: dict | None, name: str) -> None:
    """Keep the best epoch's weights, time the run, log one line, send the final report."""
    run.dist.sync_buffers(run.objective)
    if best is not None:
        run.objective.load_state_dict(best)
    run.objective.eval()
    session = time.perf_counter() - run.started
    history.seconds += session
    history.samples_per_s = run.samples * run.dist.world_size / max(session, 1e-9)
    if not run.dist.is_main:
        return
    n_rows, n_genes = run.x.shape
    where = f"{run.device.type}, {run.precision}"
    if run.dist.world_size > 1:
        where += f", {run.dist.world_size} processes"
    outcome = ""
    if history.cancelled:
        outcome = f"; cancelled at step {history.steps:,} of {run.total_steps:,}"
    elif history.stopped_early:
        outcome = f"; stopped early, kept epoch {history.best_epoch}"
    logger.info("pretrained %s on %s x %s in %s (%s)%s", name, f"{n_rows:,}", f"{n_genes:,}",
                timedelta(seconds=round(history.seconds)), where, outcome)
    message = ("cancelled" if history.cancelled else
               "stopped early" if history.stopped_early else "done")
    _report(run, None, history, epoch=history.epochs, message=message)


def _report(run: _Run, loop: LoopState | None, history: History, *, epoch: int,
            message: str = "") -> None:
    """Hand a `Progress` to the callback (rank 0 only): running loss, speed, time left."""
    if run.progress is None:
        return
    elapsed = time.perf_counter() - run.started
    done = history.steps - run.start_step
    eta = 0.0 if message else (
        (run.total_steps - history.steps) * elapsed / done if done > 0 else math.nan)
    if loop is not None and loop.n_batches:
        running = loop.loss_sum / loop.n_batches
    else:
        running = history.train_loss[-1] if history.train_loss else math.nan
    run.progress(Progress(
        phase="pretrain", step=history.steps, total_steps=run.total_steps, epoch=epoch,
        epochs=run.config.epochs, loss=running,
        val_loss=history.val_loss[-1] if history.val_loss else math.nan,
        samples_per_s=run.samples * run.dist.world_size / elapsed if elapsed > 0 else 0.0,
        eta_s=eta, message=message))


def _checkpoint(run: _Run, loop: LoopState, history: History, best: dict | None) -> None:
    """Write `train_state/`; under torchrun every process calls this and rank 0 writes."""
    if run.checkpoint_dir is None or run.saved_at == (loop.step, loop.epoch):
        return
    run.saved_at = (loop.step, loop.epoch)
    rng = _gathered_rng(run)
    if not run.dist.is_main:
        return
    meta = {"format": train_state.FORMAT, "torch": torch.__version__,
            "objective": type(run.objective).__qualname__, **_identity(run),
            "steps_per_epoch": run.steps_per_epoch, "total_steps": run.total_steps,
            "loop": loop.to_dict(), "history": history.to_dict()}
    train_state.write_train_state(run.checkpoint_dir, objective=run.objective,
                                  optimizer=run.optimizer, scheduler=run.scheduler, rng=rng,
                                  best=best, meta=meta)


def _restore(run: _Run, saved: train_state.TrainState) -> tuple[LoopState, History, dict | None]:
    """Load weights, optimiser, schedule, random states and counters saved by `_checkpoint`."""
    train_state.check_resumable(saved, _identity(run), run.objective.state_dict())
    train_state.restore_train_state(saved, objective=run.objective, optimizer=run.optimizer,
                                    scheduler=run.scheduler, rank=run.dist.rank,
                                    device=run.device, generator=run.generator)
    loop = LoopState.from_dict(saved.meta["loop"])
    history = History.from_dict(saved.meta["history"])
    best = train_state.unprefixed("model", saved.best) if saved.best is not None else None
    if run.dist.is_main:
        logger.info("resuming from %s at step %d of %d (epoch %d, batch %d)", saved.folder,
                    loop.step, run.total_steps, loop.epoch + 1, loop.batch)
    run.saved_at = (loop.step, loop.epoch)
    return loop, history, best


def _gathered_rng(run: _Run) -> dict[str, torch.Tensor]:
    """Every process's random states as `rng.<rank>.<name>` (a collective under torchrun)."""
    gathered = {}
    for name, state in sorted(train_state.rng_states(run.device, run.generator).items()):
        for rank, part in enumerate(run.dist.gather(state)):
            gathered[f"rng.{rank}.{name}"] = part
    return gathered


def _identity(run: _Run) -> dict[str, Any]:
    """What a resumed run must share with the run that wrote `train_state/`."""
    n_rows, n_genes = run.x.shape
    return {"config": run.config.to_dict(), "world_size": run.dist.world_size,
            "device_type": run.device.type, "precision": run.precision,
            "data": {"n_rows": n_rows, "n_genes": n_genes, "sha256": run.data_id}}


def _epoch_batches(run: _Run, epoch: int) -> list[torch.Tensor]:
    """This process's batches of one epoch: slices of its shard of a seeded permutation."""
    n_train, d = len(run.train_rows), run.dist
    order = torch.randperm(n_train, generator=_generator(run.config.seed, _SHUFFLE, epoch))
    per_process = n_train // d.world_size
    shard = run.train_rows[order[d.rank * per_process:(d.rank + 1) * per_process]]
    batches = list(torch.split(shard.to(run.device), run.config.batch_size))
    if len(batches[-1]) < 2:                   # a batch of one breaks BatchNorm in train mode
        batches.pop()
    return batches


def _chunks(rows: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Validation batches; a last batch of one row joins the one before it."""
    if len(rows) == 0:
        return []
    batches = list(torch.split(rows, size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _adamw(objective: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only, not on biases and norm scales (nanoGPT)."""
    params = [p for p in objective.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(objective).__name__} has no trainable parameters.")
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr,
                             fused=True if device.type == "cuda" else None)


def _seed_generators(run: _Run) -> None:
    """Fresh seeds: global RNG (dropout) and the objective's generator, distinct per process."""
    seed, rank = run.config.seed, run.dist.rank
    torch.random.default_generator.manual_seed(_seed(seed, _DROPOUT, rank))
    if run.device.type == "cuda":
        with torch.cuda.device(run.device):
            torch.cuda.manual_seed(_seed(seed, _DROPOUT, rank))
    run.generator.manual_seed(_seed(seed, _OBJECTIVE, rank))


def _seed(seed: int, *stream: int) -> int:
    """A well-mixed 63-bit seed for one random stream (split, shuffle, masks...) of a run."""
    state = np.random.SeedSequence([seed, *stream]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def _generator(seed: int, *stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(seed, *stream))


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


def _check_inputs(x: torch.Tensor, missing: torch.Tensor) -> None:
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


def _data_id(x: torch.Tensor, missing: torch.Tensor) -> str:
    """sha256 of the data, so a resumed run can tell it trains on the same cohort."""
    digest = hashlib.sha256(str(tuple(x.shape)).encode())
    for tensor in (x, missing):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _require(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"TrainConfig.{name} must be {expected}; got {value!r}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_keys(cls: type, data: dict[str, Any]) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}; known fields: "
                         f"{', '.join(sorted(known))}.")


def _json_safe(value: Any) -> Any:
    """Non-finite floats -> None, recursively, so `json.dumps(..., allow_nan=False)` works."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value
