"""What each SSL method can do, readable without torch: the pages and `gexcore.tasks` ask here.

The home of these facts is the method's `Objective` subclass (its ClassVars, see
`gexcore.models.objectives.base`). The built-in methods are listed below as well, so the app
can ask before torch loads; `register_objective` checks every class against its entry here and
refuses to import on any difference, so the two cannot drift. A method defined elsewhere (a
plug-in, `tests/models/toy_objective.py`) appears here once its module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from gexcore.errors import CapabilityError, InputError

__all__ = ["METHODS", "Capability", "Method", "MethodInfo", "method_info", "methods_with",
           "register_method", "registered_methods", "require"]

Method = Literal["transformer", "scarf", "vime", "byol"]
Capability = Literal["can_restore", "has_attention", "input_gradients"]


@dataclass(frozen=True)
class MethodInfo:
    """One method's name, capabilities and default gene count (the Objective's ClassVars)."""

    method: str
    title: str = ""                      # how forms and tables name the method
    can_restore: bool = False            # restores hidden values: impute, fill a cohort
    has_attention: bool = False          # attention maps for gene importance
    input_gradients: bool = False        # integrated gradients through the encoder's input
    default_top_genes: int | None = None   # top-variance genes by default; None = all

    @classmethod
    def of(cls, objective_cls: type) -> MethodInfo:
        """The info an Objective subclass declares in its ClassVars."""
        return cls(**{f.name: getattr(objective_cls, f.name) for f in fields(cls)})


_BUILTIN = (
    MethodInfo("transformer", "Masked-expression transformer", can_restore=True,
               has_attention=True, default_top_genes=500),
    MethodInfo("scarf", "SCARF (contrastive MLP)", input_gradients=True),
    MethodInfo("vime", "VIME (mask + reconstruct MLP)", can_restore=True, input_gradients=True),
    MethodInfo("byol", "BYOL (teacher-student MLP)", input_gradients=True),
)
_REGISTRY: dict[str, MethodInfo] = {info.method: info for info in _BUILTIN}

METHODS: tuple[str, ...] = tuple(_REGISTRY)      # the built-in methods, in display order


def register_method(info: MethodInfo) -> None:
    """Add a method's info; a known method must come with exactly its recorded info."""
    known = _REGISTRY.get(info.method)
    if known is not None and known != info:
        raise TypeError(f"method {info.method!r} declares {info} but gexcore/models/methods.py "
                        f"records {known}; change both or neither.")
    _REGISTRY[info.method] = info


def registered_methods() -> tuple[str, ...]:
    """Every method known now: the built-ins, then plug-ins in the order they were imported."""
    return tuple(_REGISTRY)


def method_info(method: str) -> MethodInfo:
    """The info of `method`; InputError listing the known methods otherwise."""
    try:
        return _REGISTRY[method]
    except KeyError:
        raise InputError(f"method must be one of {', '.join(_REGISTRY)}, "
                         f"not {method!r}.") from None


def methods_with(capability: Capability) -> tuple[str, ...]:
    """The known methods that have `capability`, e.g. `methods_with("can_restore")`."""
    if capability not in Capability.__args__:
        raise ValueError(f"capability must be one of {Capability.__args__}, not {capability!r}.")
    return tuple(m for m, info in _REGISTRY.items() if getattr(info, capability))


def require(method: str | None, capability: Capability) -> None:
    """CapabilityError unless `method` has `capability`; the message names the methods that do."""
    info = _REGISTRY.get(method) if isinstance(method, str) else None
    if info is not None and getattr(info, capability):
        return
    able = methods_with(capability)
    if capability == "can_restore":
        raise CapabilityError(f"only {' and '.join(able)} encoders can impute; {method!r} has "
                              "no value decoder.")
    if capability == "has_attention":
        raise CapabilityError(f"attention importance needs a {' or '.join(able)} encoder, but "
                              f"this encoder was pretrained with {method!r}, which has no "
                              "attention maps; use integrated gradients "
                              "(gexcore.explain.gene_attributions) instead.")
    raise CapabilityError(f"integrated gradients through the encoder need a "
                          f"{' or '.join(able)} encoder, not {method!r}.")
