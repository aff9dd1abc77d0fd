"""The one training loop: every SSL objective, CPU or CUDA, one process or a torchrun job.

Batches are slices of a seeded permutation of in-memory tensors, and every random choice comes
from a seeded generator, so a run repeats exactly, and so does a run resumed from `train_state/`.
The pieces live beside it: `config` (TrainConfig, History), `batches` (split, batches, seeds),
`run` (setup), `resume` (train_state glue), `state` (the train_state format).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from gexcore.progress import Progress, ProgressCallback, StopCallback
from gexcore.train.batches import (
    epoch_batches,
    split_rows,
    steps_per_epoch,
    validation_batches,
    validation_generator,
)
from gexcore.train.config import History, TrainConfig
from gexcore.train.device import Distributed, autocast_context, setup_distributed
from gexcore.train.resume import checkpoint, restore_or_seed
from gexcore.train.run import Run, check_inputs, setup_run
from gexcore.train.state import LoopState, tensors_to_cpu

if TYPE_CHECKING:    # annotations only: gexcore.models imports this module
    from gexcore.models.objectives.base import LossOutput, Objective

__all__ = ["History", "TrainConfig", "split_rows", "steps_per_epoch", "train"]

logger = logging.getLogger(__name__)


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
    check_inputs(x, missing)
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir, the folder that holds train_state/.")
    dist_run = setup_distributed(config.device)
    run = setup_run(objective, x, missing, config, dist_run, checkpoint_dir,
                    progress if dist_run.is_main else None)
    cuda = [run.device.index] if run.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):   # the caller's RNG untouched
        history, best = _loop(run, should_stop, resume)
    _finish(run, history, best, description or type(objective).__name__)
    return history


def _loop(run: Run, should_stop: StopCallback | None,
          resume: bool) -> tuple[History, dict | None]:
    """Epochs of steps; reads top to bottom: lr, forward, backward, clip, step, log, evaluate,
    checkpoint, should_stop(). Returns the history and the best epoch's weights (CPU)."""
    config, objective, optimizer, scheduler = (run.config, run.objective, run.optimizer,
                                               run.scheduler)
    loop, history, best = _start(run, resume)
    model = run.dist.wrap(objective)
    run.start_step = loop.step
    pending: list[_Step] = []           # losses still on the device, read at log time
    while loop.epoch < config.epochs and not history.stopped_early:
        model.train()
        for rows in epoch_batches(run.train_rows, loop.epoch, config, run.dist)[loop.batch:]:
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
            pending.append(_Step.of(out, loop.step, lr))
            history.steps = loop.step
            run.samples += len(rows)
            if loop.step % config.log_every == 0:
                _record(pending, loop, history, run.dist)
                _report(run, loop, history, epoch=loop.epoch + 1)
            if config.checkpoint_every and loop.step % config.checkpoint_every == 0:
                _record(pending, loop, history, run.dist)
                checkpoint(run, loop, history, best)
            if run.dist.any(should_stop is not None and bool(should_stop())):
                _record(pending, loop, history, run.dist)
                history.cancelled = True
                checkpoint(run, loop, history, best)
                return history, best
        _record(pending, loop, history, run.dist)
        best = _end_epoch(run, loop, history, best)
        checkpoint(run, loop, history, best)
        _report(run, loop, history, epoch=loop.epoch)
    return history, best


def _start(run: Run, resume: bool) -> tuple[LoopState, History, dict | None]:
    """Seed every generator afresh, or restore all state from `train_state/` to continue;
    then note this session's device, precision and row counts in the history."""
    loop, history, best = restore_or_seed(run, resume)
    history.cancelled = False
    history.device, history.precision = str(run.device), run.precision
    history.world_size, history.n_train = run.dist.world_size, len(run.train_rows)
    history.n_val = len(run.val_rows)
    return loop, history, best


@dataclass
class _Step:
    """One optimiser step's loss and metrics, kept on the device until the loop logs."""

    step: int
    lr: float
    names: list[str]
    values: list[torch.Tensor | float]        # loss, then the metrics in `names` order

    @classmethod
    def of(cls, out: LossOutput, step: int, lr: float) -> _Step:
        names = sorted(out.metrics)
        values = [out.metrics[name] for name in names]
        return cls(step, lr, names, [out.loss.detach(),
                                     *(v.detach() if torch.is_tensor(v) else v for v in values)])


def _record(pending: list[_Step], loop: LoopState, history: History, d: Distributed) -> None:
    """Add the pending steps' losses and metrics (means over processes) to the epoch's sums.

    One device -> host copy for all of them (none per step, so a CUDA step never waits for
    the one before). Every process then holds the same numbers, and a non-finite loss stops
    them all, naming its step.
    """
    if not pending:
        return
    flat = _to_floats([value for step in pending for value in step.values])
    summed = iter(value / d.world_size for value in d.sum(flat))
    for step in pending:
        loss, *metrics = (next(summed) for _ in step.values)
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss} at step {step.step} (epoch "
                                     f"{loop.epoch + 1}, lr {step.lr:.3g}); lower lr or check "
                                     "the input.")
        loop.loss_sum += loss
        loop.n_batches += 1
        for name, value in zip(step.names, metrics):
            loop.metric_sums[name] = loop.metric_sums.get(name, 0.0) + value
        history.step_loss.append(loss)
    pending.clear()


def _to_floats(values: list[torch.Tensor | float]) -> list[float]:
    """Python floats of 0-dim tensors and floats, the tensors read in one copy (float64)."""
    tensors = [v for v in values if torch.is_tensor(v)]
    if not tensors:
        return [float(v) for v in values]
    device = tensors[0].device
    read = iter(torch.stack([t.reshape(()).to(device, torch.float64) for t in tensors]).tolist())
    return [next(read) if torch.is_tensor(v) else float(v) for v in values]


def _end_epoch(run: Run, loop: LoopState, history: History,
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
def _validate(run: Run) -> float:
    """Mean loss over this process's validation rows (all processes' under torchrun), eval mode.

    A fixed generator seed gives every epoch the same masks, so epochs are comparable.
    """
    run.objective.eval()
    generator = validation_generator(run.config.seed, run.device)
    rows = run.val_rows[run.dist.rank::run.dist.world_size]
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    for batch in validation_batches(rows, run.config.batch_size):
        with autocast_context(run.device, run.config.precision):
            out = run.objective(run.x[batch], run.missing[batch], generator=generator)
        loss_sum += out.loss.detach().double() * len(batch)
    loss_sum, n_rows = run.dist.sum([loss_sum.item(), len(rows)])
    val_loss = loss_sum / n_rows
    if not math.isfinite(val_loss):
        raise FloatingPointError(f"validation loss is {val_loss}; lower lr or check the input.")
    return val_loss


def _finish(run: Run, history: History, best: dict | None, name: str) -> None:
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


def _report(run: Run, loop: LoopState | None, history: History, *, epoch: int,
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
