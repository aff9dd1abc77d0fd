"""Self-supervised objectives: build one by method name; each returns `LossOutput` from forward."""

from __future__ import annotations

from typing import Literal

from gexcore.models.gene_transformer import GeneTransformer, GeneTransformerConfig
from gexcore.models.mlp import MLPConfig, MLPEncoder
from gexcore.models.objectives.base import BankedObjective, LossOutput, Objective
from gexcore.models.objectives.byol import BYOLConfig, BYOLObjective
from gexcore.models.objectives.masked import MaskedConfig, MaskedObjective
from gexcore.models.objectives.scarf import SCARFConfig, SCARFObjective
from gexcore.models.objectives.vime import VIMEConfig, VIMEObjective

__all__ = [
    "METHODS",
    "MODEL_CONFIGS",
    "OBJECTIVE_CONFIGS",
    "BYOLConfig",
    "BYOLObjective",
    "BankedObjective",
    "LossOutput",
    "MaskedConfig",
    "MaskedObjective",
    "Method",
    "Objective",
    "SCARFConfig",
    "SCARFObjective",
    "VIMEConfig",
    "VIMEObjective",
    "build_objective",
    "default_configs",
]

Method = Literal["transformer", "scarf", "vime", "byol"]
METHODS: tuple[str, ...] = Method.__args__

# Config classes per method, for `from_dict` when reading a checkpoint's config.json.
MODEL_CONFIGS = {"transformer": GeneTransformerConfig, "scarf": MLPConfig, "vime": MLPConfig,
                 "byol": MLPConfig}
OBJECTIVE_CONFIGS = {"transformer": MaskedConfig, "scarf": SCARFConfig, "vime": VIMEConfig,
                     "byol": BYOLConfig}
_OBJECTIVES = {"transformer": MaskedObjective, "scarf": SCARFObjective, "vime": VIMEObjective,
               "byol": BYOLObjective}


def default_configs(method: Method) -> tuple[object, object]:
    """(model_config, objective_config) with every default, for `method`."""
    _check_method(method)
    return MODEL_CONFIGS[method](), OBJECTIVE_CONFIGS[method]()


def build_objective(method: Method, n_genes: int, model_config: object | None = None,
                    objective_config: object | None = None) -> Objective:
    """A fresh encoder wrapped in its SSL objective; None configs take the defaults."""
    _check_method(method)
    model_config = model_config or MODEL_CONFIGS[method]()
    objective_config = objective_config or OBJECTIVE_CONFIGS[method]()
    for name, cfg, cls in (("model_config", model_config, MODEL_CONFIGS[method]),
                           ("objective_config", objective_config, OBJECTIVE_CONFIGS[method])):
        if not isinstance(cfg, cls):
            raise TypeError(f"{name} for method {method!r} must be a {cls.__name__}, "
                             f"not {type(cfg).__name__}.")
    encoder_cls = GeneTransformer if method == "transformer" else MLPEncoder
    return _OBJECTIVES[method](encoder_cls(n_genes, model_config), objective_config)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}.")
