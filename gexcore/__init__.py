"""GexScope compute core: cohorts as AnnData, self-supervised encoders and phenotype heads."""

from __future__ import annotations

from gexcore import keys
from gexcore.errors import CheckpointError, GeneMismatchError, GexError, InputError

__version__ = "0.1.0"
__all__ = [
    "CheckpointError",
    "GeneMismatchError",
    "GexError",
    "InputError",
    "__version__",
    "keys",
    "pretrain",
]


def pretrain(adata, *, method="transformer", config=None, **kwargs):
    """Pretrain a self-supervised encoder on `adata`; see `gexcore.models.encoder.pretrain`.

    Imported lazily so `import gexcore` stays fast (torch loads only when needed).
    """
    from gexcore.models.encoder import pretrain as _pretrain

    return _pretrain(adata, method=method, config=config, **kwargs)
