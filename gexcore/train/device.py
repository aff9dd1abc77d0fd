"""The one device decision (CPU or CUDA), the precision to train in, torchrun process groups."""

from __future__ import annotations

import atexit
import logging
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "Distributed",
    "Precision",
    "ResolvedPrecision",
    "autocast_context",
    "is_main_process",
    "precision_name",
    "resolve_device",
    "resolve_precision",
    "setup_distributed",
]

logger = logging.getLogger(__name__)

Precision = Literal["auto", "bf16", "fp32"]
ResolvedPrecision = Literal["bf16", "fp32"]
_PRECISIONS = ("auto", "bf16", "fp32")


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; "cpu", "cuda" and "cuda:N" are taken as asked."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device {device!r} is not understood; use 'auto', 'cpu', 'cuda' or "
                         "'cuda:N'.") from err
    if resolved.type == "cpu":
        return resolved
    if resolved.type != "cuda":
        raise ValueError(f"device {device!r} is not supported; use 'auto', 'cpu', 'cuda' or "
                         "'cuda:N'.")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here; "
                         "use device='auto' or 'cpu'.")
    if resolved.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    if resolved.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} does not exist; this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s).")
    return resolved


def resolve_precision(device: torch.device, precision: Precision = "auto") -> ResolvedPrecision:
    """"auto" -> bf16 on a CUDA device that supports it, else fp32. CPU bf16 only when asked."""
    if precision not in _PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {_PRECISIONS}.")
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def autocast_context(device: torch.device, precision: Precision = "auto"
                     ) -> AbstractContextManager:
    """bf16 `torch.autocast` when the resolved precision is bf16, else `nullcontext()`."""
    if resolve_precision(device, precision) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def precision_name(device: torch.device, precision: Precision = "auto") -> str:
    """The name for log lines and run metadata: "bf16" or "fp32"."""
    return resolve_precision(device, precision)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job; world_size 1 means a plain single-process run."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module) -> nn.Module:
        """DistributedDataParallel (gradients averaged over processes); as is in one process."""
        if self.world_size == 1:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def any(self, flag: bool) -> bool:
        """True on every process when it is True on any one (so all stop together)."""
        if self.world_size == 1:
            return flag
        tensor = torch.tensor(float(flag), device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.item() > 0

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over processes, in float64."""
        if self.world_size == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every process's `tensor` (same shape everywhere), as CPU tensors in rank order."""
        if self.world_size == 1:
            return [tensor.cpu()]
        mine = tensor.to(self.device)                 # nccl only moves CUDA tensors
        parts = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(parts, mine)
        return [part.cpu() for part in parts]

    def sync_buffers(self, module: nn.Module) -> None:
        """Give every process rank 0's buffers; BatchNorm running stats drift apart per shard."""
        if self.world_size > 1:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)


def setup_distributed(device: str = "auto") -> Distributed:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on cuda:LOCAL_RANK).

    A process group the caller already initialised is used as it is. One that this call
    initialises stays up for later calls (re-initialising inside one torchrun job is racy) and is
    destroyed when the process exits.
    """
    initialised = dist.is_available() and dist.is_initialized()
    world_size = dist.get_world_size() if initialised else int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or not dist.is_available():
        return Distributed(device=resolve_device(device))
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    if not initialised:
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
        atexit.register(_destroy_process_group)
        logger.info("joined torchrun: rank %d of %d on %s (%s)", dist.get_rank(),
                    dist.get_world_size(), resolved, dist.get_backend())
    return Distributed(device=resolved, rank=dist.get_rank(), world_size=dist.get_world_size())


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0 of a torchrun job, and always in a single-process run (write files here)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0
