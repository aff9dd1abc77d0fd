"""What every config dataclass shares: building it from a dict that names any unknown key."""

from __future__ import annotations

from dataclasses import fields

__all__ = ["FromDict"]


class FromDict:
    """Mixin for config dataclasses: `from_dict` rejects keys the dataclass does not have."""

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key(s): {', '.join(sorted(unknown))}.")
        return cls(**d)
