"""Encoders (MLP, gene transformer), SSL objectives, and the user-facing `Encoder`."""

from __future__ import annotations

from gexcore.models.encoder import Encoder, pretrain
from gexcore.models.presets import PRESETS, model_config_for

__all__ = ["PRESETS", "Encoder", "model_config_for", "pretrain"]
