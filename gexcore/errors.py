"""Exceptions raised by gexcore; each subclasses a builtin so ordinary `except` clauses still work."""

from __future__ import annotations

__all__ = ["CapabilityError", "CheckpointError", "GeneMismatchError", "GexError", "InputError"]


class GexError(Exception):
    """Base class for every error gexcore raises on purpose; its message is meant for the user."""


class InputError(GexError, ValueError):
    """Bad user input; the message names the file, row or column, and the fix."""


class GeneMismatchError(InputError):
    """A cohort's genes do not match what a model or normaliser expects."""


class CapabilityError(GexError, ValueError):
    """The model cannot do what was asked (restore values, show attention); the message says
    which methods can. A ValueError: the wrong run for the request, not a programming error."""


class CheckpointError(GexError, OSError):
    """A checkpoint folder is missing, incomplete or written by an incompatible model."""
