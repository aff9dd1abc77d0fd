"""`killed_at`: simulate a SIGKILL at one call of a file operation, for crash-safety tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest


class Killed(BaseException):
    """Stands in for SIGKILL: a BaseException, so no `except Exception` handler swallows it."""


@contextmanager
def killed_at(owner: object, name: str, n: int,
              when: Callable[..., bool] | None = None) -> Iterator[list]:
    """In the block, the `n`-th call of `owner.name` (counting calls `when(*args)` accepts)
    raises Killed, which the block must reach. From then on `shutil.rmtree` does nothing, so
    the cleanup handlers that run as Killed unwinds leave the disk as a real kill would."""
    real, real_rmtree = getattr(owner, name), shutil.rmtree
    calls: list = []
    dead: list[bool] = []

    def fake(*args, **kwargs):
        if dead:
            return None if real is real_rmtree else real(*args, **kwargs)
        if when is None or when(*args):
            calls.append(args)
            if len(calls) == n:
                dead.append(True)
                raise Killed(f"killed at call {n} of {name}{args}")
        return real(*args, **kwargs)

    def rmtree(*args, **kwargs):
        return None if dead else real_rmtree(*args, **kwargs)

    setattr(owner, name, fake)
    if real is not real_rmtree:
        shutil.rmtree = rmtree
    try:
        with pytest.raises(Killed):
            yield calls
    finally:
        setattr(owner, name, real)
        shutil.rmtree = real_rmtree
