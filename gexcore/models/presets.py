"""Model sizes by name, and the one way to build an untrained Encoder with a method's defaults.

`small` finishes a demo-sized pretraining in about a minute on 2 CPU cores; `base` is for a
GPU; the transformer's `corpus` (d_model 512, 8 layers, 2,048 genes per sample) for GPU
pretraining on a large corpus. Each method's sizes are declared by its Objective class
(`Objective.presets`).
"""

from __future__ import annotations

from typing import Literal

from gexcore.data.normalize import NormalizeConfig
from gexcore.errors import InputError
from gexcore.models.encoder import Encoder
from gexcore.models.methods import METHODS
from gexcore.models.objectives import objective_class

__all__ = ["PRESETS", "model_config_for", "new_encoder"]

Preset = Literal["auto", "small", "base", "corpus"]

PRESETS = {m: objective_class(m).presets() for m in METHODS}     # the built-ins, for tables


def model_config_for(method: str, preset: Preset = "auto", *, device: str = "auto"):
    """The model config for `method`; "auto" picks base on CUDA and small on the CPU."""
    if preset == "auto":
        from gexcore.train.device import resolve_device

        preset = "base" if resolve_device(device).type == "cuda" else "small"
    presets = objective_class(method).presets()
    if preset not in presets:
        raise InputError(f"preset must be one of auto, {', '.join(presets)}, not {preset!r}.")
    return presets[preset]


def new_encoder(method: str, *, preset: Preset = "auto", top_genes: int | None = None,
                device: str = "auto") -> Encoder:
    """An untrained Encoder as `gex pretrain`, the jobs and the evaluations build it: model size
    by preset (and device), the method's `default_top_genes` unless `top_genes` (0 = all)."""
    top = top_genes if top_genes is not None else objective_class(method).default_top_genes
    return Encoder(method, model_config_for(method, preset, device=device),
                   normalize=NormalizeConfig(n_top_genes=top or None))
