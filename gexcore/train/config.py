"""What to train with (`TrainConfig`) and what a run did (`History`), both JSON round-trips."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from gexcore.train.device import Precision

__all__ = ["History", "TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train; `asdict` goes to run metadata and `train_state/state.json`."""

    # The one default for the CLI, the Train page and jobs: small encoders on ~150 samples are
    # still under-trained at 20 (benchmarks/QUALITY.md), and early stopping (`patience`) ends
    # a run that has converged, so a lower default would only cost quality.
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
