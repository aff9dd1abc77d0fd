"""Model sizes by name: `small` finishes a demo-sized pretraining in about a minute on 2 CPU cores."""

from __future__ import annotations

from typing import Literal

from gexcore.models.gene_transformer import GeneTransformerConfig
from gexcore.models.mlp import MLPConfig

__all__ = ["PRESETS", "model_config_for"]

Preset = Literal["auto", "small", "base"]

PRESETS = {
    # `small` is for short CPU runs, where dropout only slows learning. 256 genes per sample:
    # the demo cohort (3,000 x 2,000) pretrains 5 epochs in about a minute on 2 cores.
    "transformer": {"small": GeneTransformerConfig(d_model=64, n_heads=4, n_layers=2,
                                                   dropout=0.0, genes_per_sample=256),
                    "base": GeneTransformerConfig()},
    # The MLP of Dradjat et al. is cheap at any size; one configuration serves both.
    **{m: {"small": MLPConfig(), "base": MLPConfig()} for m in ("scarf", "vime", "byol")},
}


def model_config_for(method: str, preset: Preset = "auto", *, device: str = "auto"):
    """The model config for `method`; "auto" picks base on CUDA and small on the CPU."""
    if preset == "auto":
        from gexcore.train.device import resolve_device

        preset = "base" if resolve_device(device).type == "cuda" else "small"
    return PRESETS[method][preset]
