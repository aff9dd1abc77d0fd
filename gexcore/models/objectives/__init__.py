"""Self-supervised objectives, one class per method, and the registry that finds them by name.

Each Objective subclass declares its registration and capabilities as ClassVars (see
`Objective`); `register_objective` adds it, `objective_class(method)` returns it. Adding a
method is one file with one decorated class: docs/recipes/add-ssl-method.md.
"""

from __future__ import annotations

from gexcore.errors import InputError
from gexcore.models.methods import METHODS, Method, MethodInfo, register_method
from gexcore.models.objectives.base import BankedObjective, LossOutput, MarginalFill, Objective
from gexcore.models.objectives.byol import BYOLConfig, BYOLObjective
from gexcore.models.objectives.masked import MaskedConfig, MaskedObjective
from gexcore.models.objectives.scarf import SCARFConfig, SCARFObjective
from gexcore.models.objectives.vime import VIMEConfig, VIMEObjective

__all__ = [
    "METHODS",
    "BYOLConfig",
    "BYOLObjective",
    "BankedObjective",
    "LossOutput",
    "MarginalFill",
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
    "objective_class",
    "register_objective",
]

_REGISTRY: dict[str, type[Objective]] = {}
_REQUIRED = ("method", "model_config_cls", "config_cls", "body_cls")


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Register an Objective subclass under `cls.method` (use as a class decorator).

    Re-importing the same class is fine; another class under a taken name is a ValueError.
    """
    missing = [name for name in _REQUIRED if not hasattr(cls, name)]
    if missing:
        raise TypeError(f"{cls.__name__} must declare {', '.join(missing)} as ClassVars to be "
                        "registered (see gexcore.models.objectives.base.Objective).")
    known = _REGISTRY.get(cls.method)
    if known is not None and _qualname(known) != _qualname(cls):
        raise ValueError(f"method {cls.method!r} is already registered by {_qualname(known)}.")
    register_method(MethodInfo.of(cls))          # the torch-free view must agree
    _REGISTRY[cls.method] = cls
    return cls


def objective_class(method: str) -> type[Objective]:
    """The registered Objective subclass for `method`; InputError listing the known methods."""
    try:
        return _REGISTRY[method]
    except (KeyError, TypeError):
        raise InputError(f"method must be one of {', '.join(_REGISTRY)}, "
                         f"not {method!r}.") from None


def default_configs(method: str) -> tuple[object, object]:
    """(model_config, objective_config) with every default, for `method`."""
    cls = objective_class(method)
    return cls.model_config_cls(), cls.config_cls()


def build_objective(method: str, n_genes: int, model_config: object | None = None,
                    objective_config: object | None = None) -> Objective:
    """A fresh encoder wrapped in its SSL objective; None configs take the defaults."""
    return objective_class(method).build(n_genes, model_config, objective_config)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


for _cls in (MaskedObjective, SCARFObjective, VIMEObjective, BYOLObjective):
    register_objective(_cls)
if tuple(_REGISTRY) != METHODS:                  # the built-ins, in the torch-free order
    raise TypeError(f"built-in objectives {tuple(_REGISTRY)} differ from METHODS {METHODS}.")
