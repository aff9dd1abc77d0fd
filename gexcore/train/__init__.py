"""One training loop for every objective: device, precision, batching, checkpoints, resume, DDP."""

from __future__ import annotations

from gexcore.train.device import (
    autocast_context,
    is_main_process,
    precision_name,
    resolve_device,
    resolve_precision,
)
from gexcore.train.loop import History, TrainConfig, split_rows, train
from gexcore.train.schedule import warmup_cosine, warmup_cosine_scheduler
from gexcore.train.state import TRAIN_STATE, load_train_state

__all__ = [
    "TRAIN_STATE", "History", "TrainConfig", "autocast_context", "is_main_process",
    "load_train_state", "precision_name", "resolve_device", "resolve_precision", "split_rows",
    "train", "warmup_cosine", "warmup_cosine_scheduler",
]
