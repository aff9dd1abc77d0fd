""".h5ad files (AnnData on HDF5): X, obs and var only, each checked before it is loaded.

`X` is read with h5py, not through `anndata.read_h5ad`: its shape and encoding are checked
against the memory budget first, and a sparse matrix's `indptr` / `indices` are validated
before it is densified (corrupt ones made scipy's `toarray` write out of bounds: SIGSEGV).
Layers, obsm, uns and raw are never read. libhdf5 itself can crash or loop forever on a
damaged file, so a child process reads everything first (`_h5probe`); if it dies or does not
finish, the file is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gexcore.data._h5probe import probe_failure
from gexcore.data._limits import FOOTPRINTS, check_labels, memory_budget
from gexcore.data._source import ParsedMatrix
from gexcore.errors import InputError

__all__ = ["read_h5ad_matrix"]

_FOOTPRINT = FOOTPRINTS["h5ad"]
_SPARSE = ("csr_matrix", "csc_matrix")
_RESAVE = "re-save it with anndata's `write_h5ad`, or export the matrix as CSV"


def read_h5ad_matrix(path: Path, *, max_bytes: int | None = None
                     ) -> tuple[ParsedMatrix, pd.DataFrame]:
    """(samples x genes float32 from `X`, the file's `obs`); `var` becomes the gene table.

    `max_bytes` is the memory the read may use. Every failure is an `InputError` naming the
    file, the element (X, obs, var) and the fix.
    """
    import h5py
    from anndata._io.specs.registry import IORegistryError

    path = Path(path)
    budget = memory_budget(max_bytes)
    with open(path, "rb") as fh:
        if fh.read(8) != b"\x89HDF\r\n\x1a\n":
            raise InputError(f"{path.name}: not an HDF5 file (no HDF5 signature); {_RESAVE}.")
    if failure := probe_failure(str(path)):
        raise InputError(f"{path.name}: the HDF5 library failed on this file in a test read "
                         f"({failure}), so it is damaged: {_RESAVE}.")
    try:
        with h5py.File(path, "r") as f:
            obs = _read_frame(f, "obs", path, budget)
            var = _read_frame(f, "var", path, budget)
            X = _read_x(f, path, (len(obs), len(var)), budget)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError,
            IORegistryError) as err:
        detail = str(err).split("\n")[0][:200]
        raise InputError(f"{path.name}: not a readable .h5ad file ({type(err).__name__}: "
                         f"{detail}); the file is damaged or not written by anndata: "
                         f"{_RESAVE}.") from err
    samples = pd.Index(obs.index.astype(str))
    check_labels(samples, path, "sample id", where="obs_names")
    check_labels(var.index.astype(str), path, "gene id", where="var_names", allow_empty=True)
    if samples.has_duplicates:
        dup = samples[samples.duplicated()]
        raise InputError(
            f"{path.name}: sample id '{dup[0]}' appears {int((samples == dup[0]).sum())} times "
            f"in obs_names ({len(dup)} duplicated sample id(s)); make them unique (e.g. "
            "`adata.obs_names_make_unique()`) and save again.")
    var.index = pd.Index(var.index.astype(str))
    parsed = ParsedMatrix(values=X, samples=samples, genes=var, format="h5ad")
    return parsed, obs


def _read_frame(f, key: str, path: Path, budget: int) -> pd.DataFrame:
    """obs or var as a DataFrame, after checking what its datasets would take in memory."""
    from anndata.io import read_elem

    group = f.get(key)
    if group is None:
        raise InputError(f"{path.name}: has no '{key}' table; {_RESAVE}.")
    need = _elem_bytes(group)
    _FOOTPRINT.check(path, budget, n_bytes=need, what=f"'{key}' ({need / 2**20:,.0f} MiB)")
    frame = read_elem(group)
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{path.name}: '{key}' is a {type(frame).__name__}, not a table; "
                         f"{_RESAVE}.")
    return frame


def _elem_bytes(group) -> int:
    """Bytes the datasets under `group` take once read (strings counted as Python objects)."""
    import h5py

    total = 0

    def add(_name, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            per = 64 if obj.dtype.kind in "OSUV" else obj.dtype.itemsize
            total += int(obj.size) * max(per, obj.dtype.itemsize)

    if isinstance(group, h5py.Dataset):
        add("", group)
    else:
        group.visititems(add)
    return total


def _read_x(f, path: Path, shape: tuple[int, int], budget: int) -> np.ndarray:
    """`X` as a dense (n_obs, n_vars) float32 array, dense or CSR/CSC on disk."""
    import h5py

    X = f.get("X")
    if X is None:
        raise InputError(f"{path.name}: has no X matrix (the expression values); {_RESAVE} "
                         "with the values in X.")
    n_cells = shape[0] * shape[1]
    encoding = _attr(X, "encoding-type")
    if isinstance(X, h5py.Dataset):
        if encoding not in ("", "array"):
            raise InputError(f"{path.name}: X is a dense array labelled '{encoding[:40]}', an "
                             f"encoding this reader does not know; {_RESAVE}.")
        if X.shape != shape:
            raise InputError(f"{path.name}: X has shape {X.shape} but obs and var describe "
                             f"{shape[0]} x {shape[1]}; the file is damaged: {_RESAVE}.")
        _check_numeric(X, path, "X")
        _FOOTPRINT.check(path, budget, n_cells=n_cells, what=f"{shape[0]:,} x {shape[1]:,}")
        out = np.empty(shape, dtype=np.float32)
        if n_cells and X.dtype.kind == "f":
            X.read_direct(out)                  # HDF5 converts to float32 chunk by chunk
        elif n_cells:
            out[...] = X[()]
        return out
    if encoding not in _SPARSE:
        raise InputError(f"{path.name}: X is stored as '{encoding or 'an unknown group'}', not a "
                         f"dense array or a CSR/CSC sparse matrix; {_RESAVE}.")
    return _read_sparse(X, path, shape, encoding, budget)


def _attr(obj, name: str) -> str:
    value = obj.attrs.get(name, "")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _check_numeric(ds, path: Path, name: str) -> None:
    if ds.dtype.kind not in "biuf":
        raise InputError(f"{path.name}: {name} holds {ds.dtype} values, not numbers; "
                         f"{_RESAVE} with numeric values.")


def _read_sparse(X, path: Path, shape: tuple[int, int], encoding: str,
                 budget: int) -> np.ndarray:
    """Validate CSR/CSC `indptr` / `indices` against the shape, then densify."""
    import scipy.sparse as sp

    stored = tuple(int(v) for v in np.asarray(X.attrs.get("shape", ()), dtype=np.int64).ravel())
    if stored != shape:
        raise InputError(f"{path.name}: X's shape attribute is {stored} but obs and var describe "
                         f"{shape[0]} x {shape[1]}; the file is damaged: {_RESAVE}.")
    parts = {}
    for key in ("data", "indices", "indptr"):
        ds = X.get(key)
        if ds is None or not hasattr(ds, "dtype") or len(ds.shape) != 1:
            raise InputError(f"{path.name}: X (sparse) has no 1-D '{key}' array; the file is "
                             f"damaged: {_RESAVE}.")
        _check_numeric(ds, path, f"X/{key}")
        if key != "data" and ds.dtype.kind not in "iu":
            raise InputError(f"{path.name}: X/{key} holds {ds.dtype} values, not integers; "
                             f"the file is damaged: {_RESAVE}.")
        parts[key] = ds
    major, minor = shape if encoding == "csr_matrix" else shape[::-1]
    nnz = parts["data"].shape[0]
    _FOOTPRINT.check(path, budget, n_cells=shape[0] * shape[1] + 4 * nnz,
                     what=f"{shape[0]:,} x {shape[1]:,} (from {nnz:,} stored values)")
    indptr = parts["indptr"][()].astype(np.int64, copy=False)
    indices = parts["indices"][()].astype(np.int64, copy=False)
    problem = _sparse_problem(indptr, indices, nnz, major, minor)
    if problem:
        raise InputError(f"{path.name}: X is a corrupt {encoding} ({problem}); densifying it "
                         f"would read out of bounds. The file is damaged: {_RESAVE}.")
    with np.errstate(over="ignore"):                    # overflow to inf is refused later
        data = parts["data"][()].astype(np.float32)
    cls = sp.csr_matrix if encoding == "csr_matrix" else sp.csc_matrix
    return np.asarray(cls((data, indices, indptr), shape=shape).toarray(), dtype=np.float32)


def _sparse_problem(indptr: np.ndarray, indices: np.ndarray, nnz: int, major: int,
                    minor: int) -> str:
    """What is wrong with a CSR/CSC structure, or '' when scipy may safely densify it."""
    if len(indptr) != major + 1:
        return f"indptr has {len(indptr)} entries, expected {major + 1}"
    if len(indices) != nnz:
        return f"indices has {len(indices)} entries but data has {nnz}"
    if indptr[0] != 0 or indptr[-1] != nnz:
        return f"indptr runs from {indptr[0]} to {indptr[-1]}, expected 0 to {nnz}"
    if (np.diff(indptr) < 0).any():
        return "indptr decreases"
    if nnz and (indices.min() < 0 or indices.max() >= minor):
        return f"indices run from {indices.min()} to {indices.max()}, expected 0 to {minor - 1}"
    return ""
