"""Low-level helpers every reader shares: safe byte loading, sniffing and numeric conversion."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gexcore.errors import InputError

# Cells that mean "not measured" in public tables; anything else non-numeric is an error.
MISSING_TOKENS = ("", "na", "nan", "n/a", "null", "none", "-", "?", ".")

_MAGIC = {
    b"\x89HDF\r\n\x1a\n": "HDF5 (.h5ad / .h5)",
    b"PAR1": "Parquet",
    b"PK\x03\x04": "ZIP archive (unzip it first)",
    b"\x80\x04\x95": "Python pickle (not accepted: pickles can run code)",
    b"\x80\x05\x95": "Python pickle (not accepted: pickles can run code)",
    b"\x80\x03": "Python pickle (not accepted: pickles can run code)",
    b"BZh": "bzip2 archive (decompress it first)",
    b"\xfd7zXZ": "xz archive (decompress it first)",
    b"%PDF": "PDF document",
}


@dataclass
class ParsedMatrix:
    """What a format parser hands to `read_cohort`: samples x genes values before harmonisation.

    `genes` is indexed by the gene ids as written in the file and may carry `gene_symbol` /
    `ensembl_id` columns; `sample_info` holds per-sample annotation found in the file itself.
    """

    values: np.ndarray                      # (n_samples, n_genes) float32, NaN = missing
    samples: pd.Index
    genes: pd.DataFrame
    format: str
    sample_info: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    count_based: bool = False               # values are claimed to be raw counts
    orientation: str = "samples x genes"    # how the file laid them out, for the report


_MAX_DEFLATE_RATIO = 1032                   # deflate's worst-case expansion limit


def sniff_magic(head: bytes) -> str | None:
    """Name the binary container `head` starts with, or None."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def read_head(path: Path, n_bytes: int = 4096) -> bytes:
    """First bytes of a plain or gzip file (even one cut short); b'' if unreadable."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(65536)
        if raw.startswith(b"\x1f\x8b"):
            raw = zlib.decompressobj(wbits=31).decompress(raw, n_bytes)   # 31: gzip header
    except (OSError, zlib.error):
        return b""
    return raw[:n_bytes]


def read_head_text(path: Path, n_bytes: int = 4096) -> str:
    """`read_head` decoded for sniffing a format's first lines."""
    return read_head(path, n_bytes).decode("utf-8", errors="replace").lstrip("\ufeff")


def gzip_uncompressed_size(path: Path) -> int:
    """Uncompressed size from the gzip trailer (modulo 4 GiB, so only a lower bound)."""
    with open(path, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        return int.from_bytes(fh.read(4), "little")


def available_memory() -> int:
    """Bytes of physical memory currently available to this process (best effort)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def read_text(path: Path, *, max_bytes: int | None = None) -> str:
    """Whole text of a plain or gzip file, with clear errors for empty, binary or truncated files.

    `max_bytes` bounds the decompressed size so a huge file fails before it is read.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found.")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file (or a GDC folder with a sample sheet).")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise InputError(f"{path.name}: the file is empty (0 bytes); re-export or re-download it.")
    is_gzip = head.startswith(b"\x1f\x8b")
    if max_bytes is not None:
        size = gzip_uncompressed_size(path) if is_gzip else path.stat().st_size
        # A cut-short gzip ends in arbitrary bytes, not its size trailer; deflate never expands
        # more than ~1032x, so a larger claim means truncation, not a huge file.
        if is_gzip and size > _MAX_DEFLATE_RATIO * path.stat().st_size + 2**16:
            raise InputError(f"{path.name}: the gzip stream is truncated or corrupt (its size "
                             "trailer is impossible); re-download the file.")
        if size > max_bytes:
            raise InputError(
                f"{path.name}: about {size / 2**30:.1f} GiB of text is more than this machine can "
                f"hold as a matrix ({max_bytes / 2**30:.1f} GiB allowed); subset the genes or "
                "samples first, or convert it to .h5ad on a larger machine (`gex convert`)."
                + (" If the file is not that big, it is truncated: re-download it."
                   if is_gzip else "")
            )
    raw = _decompress(path) if is_gzip else path.read_bytes()
    if not raw.strip():
        raise InputError(f"{path.name}: the file has no content; re-export or re-download it.")
    kind = sniff_magic(raw[:8])
    if kind is not None:
        raise InputError(f"{path.name}: this is a {kind}, not a text table.")
    sample = raw[:65536]
    if b"\x00" in sample:
        raise InputError(
            f"{path.name}: binary content (NUL bytes) where a text table was expected; "
            "check that this is the expression file and not an archive or image."
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")          # old Excel exports; every byte maps to a character


def _decompress(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (EOFError, OSError, zlib.error) as err:
        raise InputError(
            f"{path.name}: the gzip stream is truncated or corrupt ({err}); re-download the file."
        ) from err


def check_field_counts(text: str, sep: str, path: Path, *, first_line: int = 1) -> None:
    """Raise if any data line has a different number of fields than the header line.

    Counts separators per line with numpy, so it is cheap even for large files; quoted separators
    are not expected in numeric matrices.
    """
    buf = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    if len(buf) and buf[-1] != 10:
        newlines = np.append(newlines, len(buf))
    if len(newlines) < 2:
        return
    # Separators before each line end, by binary search: a cumsum over every byte took 8 bytes
    # of memory per character, and read a leading empty line as the whole file's count.
    sep_at = np.flatnonzero(buf == ord(sep))
    per_line = np.diff(np.searchsorted(sep_at, newlines), prepend=0)
    starts = np.concatenate([[0], newlines[:-1] + 1])
    length = newlines - starts
    # Empty lines, or a lone '\r'; a one-character line such as '3' is not blank.
    blank = (length == 0) | ((length == 1) & (buf[np.minimum(starts, len(buf) - 1)] == 13))
    if blank.all():
        return
    expected = per_line[np.argmax(~blank)]               # the header: first non-empty line
    bad = np.flatnonzero((per_line != expected) & ~blank)
    if len(bad):
        i = int(bad[0])
        got, want = int(per_line[i]) + 1, int(expected) + 1
        where = "the last line" if i == len(per_line) - 1 else f"line {i + first_line}"
        hint = " The file looks truncated; re-download it." if i == len(per_line) - 1 else ""
        raise InputError(
            f"{path.name}: {where} has {got} fields but the header has {want}.{hint}"
            f" ({len(bad)} line(s) differ.)"
        )


def to_float_matrix(frame: pd.DataFrame, path: Path, *, rows: str, cols: str) -> np.ndarray:
    """Convert a table of numbers-as-text to float32, naming the first cell that is not a number.

    Missing tokens (empty, NA, NaN, null, ...) become NaN; infinities are refused. `rows` and
    `cols` name what the table's rows and columns hold ("gene", "sample") for the error message.
    """
    values = np.empty(frame.shape, dtype=np.float64)
    is_num = np.array([pd.api.types.is_numeric_dtype(t) for t in frame.dtypes], dtype=bool)
    if is_num.any():
        values[:, is_num] = frame.loc[:, is_num].to_numpy(dtype=np.float64)
    if not is_num.all():
        # All text cells in one flat vectorised pass rather than a loop over columns.
        block = frame.loc[:, ~is_num]
        text = pd.Series(block.to_numpy(dtype=object).ravel(), dtype="string").str.strip()
        numeric = pd.to_numeric(text, errors="coerce")
        missing = text.isna() | text.str.lower().isin(MISSING_TOKENS)
        bad = (numeric.isna() & ~missing).to_numpy(dtype=bool).reshape(block.shape)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise InputError(
                f"{path.name}: {rows} '{frame.index[r]}' (row {r + 1} of the data), {cols} "
                f"'{block.columns[c]}' holds '{block.iat[r, c]}', which is not a number "
                f"({int(bad.sum())} such cell(s)). Fix or blank those cells; missing values may be "
                "written as empty, NA or NaN."
            )
        values[:, ~is_num] = numeric.to_numpy(dtype=np.float64, na_value=np.nan).reshape(block.shape)
    inf = np.isinf(values)
    if inf.any():
        r, c = np.argwhere(inf)[0]
        raise InputError(
            f"{path.name}: {rows} '{frame.index[r]}', {cols} '{frame.columns[c]}' is infinite "
            f"({int(inf.sum())} such cell(s)); replace them with a finite value or leave them empty."
        )
    return values.astype(np.float32)


def missing_token_variants() -> list[str]:
    """MISSING_TOKENS in the casings files use (NA, Na, na), for pandas' exact-match na_values."""
    return sorted({v for t in MISSING_TOKENS for v in (t, t.upper(), t.capitalize())})


def table_from_text(text: str, sep: str, path: Path, *, na_values=(), **kwargs) -> pd.DataFrame:
    """Parse delimited text; only `na_values` become NaN, so ids like "NA" survive elsewhere."""
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=None, keep_default_na=False,
                           na_values=na_values, low_memory=False, **kwargs)
    except (pd.errors.ParserError, ValueError) as err:
        raise InputError(f"{path.name}: could not parse as a table ({err}).") from err
