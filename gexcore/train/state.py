"""Resume checkpoints: `checkpoint_dir/train_state/`, written whole or not at all, never pickled.

Layout::

    train_state/
      state.safetensors   model.<name>, optim.<param_idx>.<key>, rng.<rank>.<cpu|cuda|objective>
      best.safetensors    model.<name> of the best validation epoch (absent until one exists)
      state.json          step, epoch, position, scheduler, optimiser groups, history, config

A new state is written to `.train_state.tmp/` (`state.json` last, once the tensors are on disk,
so its presence marks a complete folder), then swapped in by two renames. A kill between them
leaves the new state complete in `.train_state.tmp/` and the previous one in `.train_state.old/`;
`load_train_state` reads the newer, and the next save puts it back in place.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gexcore.atomic import fsync_dir, fsync_tree, set_default_modes
from gexcore.errors import CheckpointError, InputError

__all__ = [
    "FORMAT",
    "TRAIN_STATE",
    "TRAIN_STATE_ENTRIES",
    "LoopState",
    "TrainState",
    "check_resumable",
    "load_train_state",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
    "prefixed",
    "restore_train_state",
    "rng_states",
    "save_train_state",
    "set_rng_states",
    "tensors_to_cpu",
    "unprefixed",
    "write_train_state",
]

TRAIN_STATE = "train_state"
TRAIN_STATE_ENTRIES = (TRAIN_STATE, f".{TRAIN_STATE}.tmp", f".{TRAIN_STATE}.old")  # all ours
STATE_TENSORS = "state.safetensors"
BEST_TENSORS = "best.safetensors"
STATE_JSON = "state.json"
FORMAT = "gexscope.train_state/1"

# TrainConfig fields that shape the loss curve. patience, logging and checkpoint_every may
# change on resume; the device type and precision are checked separately.
TRAJECTORY_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "warmup_fraction",
                     "min_lr_ratio", "grad_clip", "val_fraction", "seed")


@dataclass
class LoopState:
    """Where the loop is, in `state.json`: enough to continue mid-epoch as if never stopped."""

    step: int = 0                     # optimiser steps done
    epoch: int = 0                    # 0-based index of the epoch in progress
    batch: int = 0                    # batches of that epoch done
    loss_sum: float = 0.0             # that epoch's batch losses so far (means over processes)
    n_batches: int = 0
    metric_sums: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0               # epochs since the validation loss last improved

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        return cls(**data)


def rng_states(device: torch.device, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """This process's random states as uint8 tensors: CPU and CUDA (dropout), the objective's."""
    states = {"cpu": torch.get_rng_state(), "objective": generator.get_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict[str, torch.Tensor], device: torch.device,
                   generator: torch.Generator) -> None:
    """The inverse of `rng_states`."""
    torch.set_rng_state(states["cpu"])
    generator.set_state(states["objective"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)


@dataclass
class TrainState:
    """What `load_train_state` read: JSON metadata, the tensors, the best weights (or None)."""

    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor] | None
    folder: Path


def tensors_to_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached contiguous CPU copies (copies, so tied weights do not share memory on save)."""
    return {name: value.detach().to("cpu", copy=True).contiguous()
            for name, value in state.items()}


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{name}": value for name, value in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = f"{prefix}."
    return {name[len(start):]: value for name, value in tensors.items()
            if name.startswith(start)}


def optimizer_to_tensors(state_dict: dict) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Split `optimizer.state_dict()` into `optim.<param_idx>.<key>` tensors and JSON groups."""
    tensors = {f"optim.{index}.{key}": value if torch.is_tensor(value) else torch.tensor(value)
               for index, per_param in state_dict["state"].items()
               for key, value in per_param.items()}
    groups = [{key: list(value) if isinstance(value, tuple) else value
               for key, value in group.items()} for group in state_dict["param_groups"]]
    return tensors_to_cpu(tensors), groups


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], groups: list[dict]) -> dict:
    """The inverse of `optimizer_to_tensors`: a dict for `optimizer.load_state_dict`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in unprefixed("optim", tensors).items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    # JSON turned tuples (AdamW's betas) into lists; `params` is the one real list.
    param_groups = [{key: tuple(value) if isinstance(value, list) and key != "params" else value
                     for key, value in group.items()} for group in groups]
    return {"state": state, "param_groups": param_groups}


def write_train_state(checkpoint_dir: str | Path, *, objective: torch.nn.Module,
                      optimizer: torch.optim.Optimizer,
                      scheduler: torch.optim.lr_scheduler.LRScheduler,
                      rng: dict[str, torch.Tensor], best: dict[str, torch.Tensor] | None,
                      meta: dict[str, Any]) -> Path:
    """Save weights, optimiser, schedule, random states and `meta` as `train_state/`."""
    model = prefixed("model", tensors_to_cpu(objective.state_dict()))
    optim, groups = optimizer_to_tensors(optimizer.state_dict())
    meta = {**meta, "scheduler": scheduler.state_dict(), "optimizer_groups": groups}
    return save_train_state(checkpoint_dir, {**model, **optim, **rng}, meta,
                            None if best is None else prefixed("model", best))


def restore_train_state(saved: TrainState, *, objective: torch.nn.Module,
                        optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler, rank: int,
                        device: torch.device, generator: torch.Generator) -> None:
    """The inverse of `write_train_state`, for process `rank`; call `check_resumable` first."""
    objective.load_state_dict(unprefixed("model", saved.tensors))
    optimizer.load_state_dict(optimizer_from_tensors(saved.tensors,
                                                     saved.meta["optimizer_groups"]))
    scheduler.load_state_dict(saved.meta["scheduler"])
    set_rng_states(unprefixed(f"rng.{rank}", saved.tensors), device, generator)


def check_resumable(saved: TrainState, expected: dict[str, Any],
                    model_state: dict[str, torch.Tensor]) -> None:
    """Raise InputError naming every difference that would make the resumed run diverge."""
    meta = saved.meta
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{saved.folder / STATE_JSON} is not a GexScope train state "
                              f"(format {meta.get('format')!r}, expected {FORMAT!r}).")
    problems = []
    was, now = meta["data"], expected["data"]
    if (was["n_rows"], was["n_genes"]) != (now["n_rows"], now["n_genes"]):
        problems.append(f"the data is {now['n_rows']:,} x {now['n_genes']:,} samples x genes, "
                        f"train_state has {was['n_rows']:,} x {was['n_genes']:,}")
    elif was["sha256"] != now["sha256"]:
        problems.append("the data values differ from those train_state was trained on")
    for name in TRAJECTORY_FIELDS:
        if meta["config"].get(name) != expected["config"][name]:
            problems.append(f"{name} is {expected['config'][name]!r}, train_state has "
                            f"{meta['config'].get(name)!r}")
    for name in ("world_size", "device_type", "precision"):
        if meta.get(name) != expected[name]:
            problems.append(f"{name} is {expected[name]!r}, train_state has {meta.get(name)!r}")
    problems += _model_differences(unprefixed("model", saved.tensors), model_state)
    if problems:
        raise InputError(f"cannot resume from {saved.folder}: {'; '.join(problems)}. Resume "
                         "with the same data and settings, or delete that folder to start "
                         "fresh.")


def _model_differences(saved: dict[str, torch.Tensor],
                       model: dict[str, torch.Tensor]) -> list[str]:
    missing = sorted(set(model) - set(saved))
    unexpected = sorted(set(saved) - set(model))
    reshaped = sorted(name for name in set(model) & set(saved)
                      if tuple(model[name].shape) != tuple(saved[name].shape))
    if not (missing or unexpected or reshaped):
        return []
    first = ", ".join((missing + unexpected + reshaped)[:3])
    counts = (f"{len(missing)} tensors missing from train_state, {len(unexpected)} unexpected, "
              f"{len(reshaped)} with other shapes")
    return [f"the model differs ({counts}; first: {first})"]


def save_train_state(checkpoint_dir: str | Path, tensors: dict[str, torch.Tensor],
                     meta: dict[str, Any], best: dict[str, torch.Tensor] | None = None) -> Path:
    """Write `checkpoint_dir/train_state/` atomically; the previous state survives any crash."""
    root = Path(checkpoint_dir)
    root.mkdir(parents=True, exist_ok=True)
    final, tmp, old = _paths(root)
    _settle(root)
    if final.exists() and not (final / STATE_JSON).is_file():
        raise CheckpointError(f"{final} was not written by GexScope (no {STATE_JSON}); move it "
                              "away, or give another checkpoint folder.")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write_tensors(tmp / STATE_TENSORS, tensors)
        if best is not None:
            _write_tensors(tmp / BEST_TENSORS, best)
        set_default_modes(tmp)                    # safetensors writes 0600
        fsync_tree(tmp)
        _write_json(tmp / STATE_JSON, meta)       # last, once the tensors are on disk:
        fsync_tree(tmp)                           # it marks a complete folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(root)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_train_state(checkpoint_dir: str | Path) -> TrainState | None:
    """Read `checkpoint_dir/train_state/`, or what a crash mid-swap left (the complete new
    `.train_state.tmp`, else the previous `.train_state.old`); None if there is none."""
    final, tmp, old = _paths(Path(checkpoint_dir))
    for folder in (final, tmp, old):
        if (folder / STATE_JSON).is_file():
            return _read(folder)
    if final.exists():
        raise CheckpointError(f"{final} has no {STATE_JSON}; it is incomplete. Delete the "
                              "folder to start fresh.")
    return None


def _settle(root: Path) -> None:
    """After a crash between the two renames, put the newest complete state back in place."""
    final, tmp, old = _paths(root)
    if final.exists():
        return
    for folder in (tmp, old):
        if (folder / STATE_JSON).is_file():
            os.replace(folder, final)
            fsync_dir(root)
            return


def _paths(root: Path) -> tuple[Path, Path, Path]:
    final, tmp, old = (root / name for name in TRAIN_STATE_ENTRIES)
    return final, tmp, old


def _read(folder: Path) -> TrainState:
    try:
        meta = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
        tensors = load_file(folder / STATE_TENSORS)
        best = load_file(folder / BEST_TENSORS) if (folder / BEST_TENSORS).is_file() else None
    except (OSError, ValueError, SafetensorError) as err:
        raise CheckpointError(f"{folder} could not be read ({err}); delete it to start "
                              "fresh.") from err
    return TrainState(meta=meta, tensors=tensors, best=best, folder=folder)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file(tensors, str(path), metadata={"format": "pt"})


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, allow_nan=False), encoding="utf-8")
