"""GexScope compute core: cohorts as AnnData, self-supervised encoders and phenotype heads."""

from __future__ import annotations

from gexcore import keys
from gexcore.errors import CheckpointError, GeneMismatchError, GexError, InputError

__version__ = "0.1.0"
__all__ = ["keys", "GexError", "InputError", "GeneMismatchError", "CheckpointError", "__version__"]
