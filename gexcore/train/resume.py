"""Resume glue between the loop and `train_state/`: write it, check it matches, continue from it.

A resumed run must share the data, the trajectory settings, the world size, device type and
precision with the run that wrote the state; then it continues as if never stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from gexcore.train import state as train_state
from gexcore.train.batches import seed_generators
from gexcore.train.config import History
from gexcore.train.run import Run
from gexcore.train.state import LoopState

__all__ = ["checkpoint", "restore_or_seed"]

logger = logging.getLogger(__name__)


def restore_or_seed(run: Run, resume: bool) -> tuple[LoopState, History, dict | None]:
    """Restore all state from `train_state/` to continue, or seed every generator afresh.

    Returns the loop position, the history so far and the best epoch's weights (CPU) or None.
    """
    if resume and run.dist.world_size == 1:     # under torchrun `gex pretrain` recovers first
        _recover(run.checkpoint_dir)
    saved = train_state.load_train_state(run.checkpoint_dir) if resume else None
    if saved is None:
        if resume:                              # a warning: the user asked to continue
            logger.warning("cannot resume: no train_state in %s; training from step 0",
                           run.checkpoint_dir)
        seed_generators(run.config.seed, run.dist, run.generator)
        return LoopState(), History(), None
    return _restore(run, saved)


def checkpoint(run: Run, loop: LoopState, history: History, best: dict | None) -> None:
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


def _restore(run: Run, saved: train_state.TrainState) -> tuple[LoopState, History, dict | None]:
    """Load weights, optimiser, schedule, random states and counters saved by `checkpoint`."""
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


def _recover(checkpoint_dir: Path) -> None:
    """Finish an encoder save killed mid-swap, which may hold `train_state/` aside."""
    from gexcore.atomic import recover_dir
    from gexcore.models.checkpoint import ENCODER_OUTPUT

    recover_dir(checkpoint_dir, ENCODER_OUTPUT)


def _gathered_rng(run: Run) -> dict[str, torch.Tensor]:
    """Every process's random states as `rng.<rank>.<name>` (a collective under torchrun)."""
    gathered = {}
    for name, state in sorted(train_state.rng_states(run.device, run.generator).items()):
        for rank, part in enumerate(run.dist.gather(state)):
            gathered[f"rng.{rank}.{name}"] = part
    return gathered


def _identity(run: Run) -> dict[str, Any]:
    """What a resumed run must share with the run that wrote `train_state/`."""
    n_rows, n_genes = run.x.shape
    return {"config": run.config.to_dict(), "world_size": run.dist.world_size,
            "device_type": run.device.type, "precision": run.precision,
            "data": {"n_rows": n_rows, "n_genes": n_genes, "sha256": run.data_id}}
