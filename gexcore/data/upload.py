"""Read cohorts that arrive as bytes (browser uploads) through the same `read_cohort` path,
parsed in a limited child process (`gexcore.data.isolated`) so no upload can take the server
down."""

from __future__ import annotations

import tempfile
from pathlib import Path

from anndata import AnnData

from gexcore.data.isolated import ParseLimits, read_isolated
from gexcore.errors import InputError

__all__ = ["read_uploaded"]


def read_uploaded(expression: tuple[str, bytes], clinical: tuple[str, bytes] | None = None,
                  *, limits: ParseLimits | None = None, **options) -> AnnData:
    """`read_cohort` on uploaded (file name, content) pairs, in a limited child process; the
    bytes go to a private temp dir that is removed afterwards.

    The user's file names are kept (errors name them) but reduced to their last path part.
    """
    with tempfile.TemporaryDirectory(prefix="gex-upload-") as tmp:
        expr_path = _place(Path(tmp), *expression)
        clin_path = _place(Path(tmp), *clinical) if clinical is not None else None
        adata = read_isolated(expr_path, clin_path, limits=limits, **options)
    return adata


def _place(folder: Path, name: str, content: bytes) -> Path:
    safe = Path(name).name or "upload"
    if safe.startswith("."):
        safe = "upload" + safe
    path = folder / safe
    if path.exists():                        # expression and clinical uploaded under one name
        path = folder / f"clinical_{safe}"
    if not content:
        raise InputError(f"{safe}: the uploaded file is empty (0 bytes).")
    path.write_bytes(content)
    return path
