"""Encoders (MLP, gene transformer), SSL objectives, and the user-facing `Encoder`.

The names below load their submodule on first use, so `gexcore.models.methods` (what each
method can do) imports without torch, as the pages need.
"""

from __future__ import annotations

import importlib

__all__ = ["PRESETS", "Encoder", "model_config_for", "new_encoder", "pretrain"]

_HOMES = {"Encoder": "encoder", "pretrain": "encoder", "PRESETS": "presets",
          "model_config_for": "presets", "new_encoder": "presets"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
