"""Low-level helpers every reader shares: safe byte loading, sniffing and numeric conversion."""

from __future__ import annotations

import io
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gexcore.data._limits import FOOTPRINTS, available_memory, memory_budget
from gexcore.errors import InputError

__all__ = ["MISSING_TOKENS", "ParsedMatrix", "available_memory", "check_field_counts",
           "decode_text", "load_bytes", "missing_token_variants", "numeric_columns", "read_head",
           "read_head_text", "read_text", "sniff_magic", "table_from_text", "to_float_matrix"]

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


_CHUNK = 1 << 20                            # bytes of compressed input per read


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


def read_text(path: Path, *, max_bytes: int | None = None) -> str:
    """Whole text of a plain or gzip file, with clear errors for empty, binary or truncated files.

    Refuses text longer than `max_bytes` (decompressed, counted while streaming, so neither a
    multi-member gzip nor a zip bomb gets past it); None means what a table may use of half
    the available memory.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found.")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file (or a GDC folder with a sample sheet).")
    if max_bytes is None:
        max_bytes = FOOTPRINTS["table"].text_limit(memory_budget())
    raw = load_bytes(path, max_bytes)
    return decode_text(raw, path)


def load_bytes(path: Path, limit: int) -> bytes | bytearray:
    """The file's bytes, gunzipped if it is gzip; refused as soon as they pass `limit` bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            if not head:
                raise InputError(f"{path.name}: the file is empty (0 bytes); re-export or "
                                 "re-download it.")
            fh.seek(0)
            if head == b"\x1f\x8b":
                return _gunzip(fh, path, limit)
            # read(n) allocates n bytes up front, so never ask for more than the file holds.
            raw = fh.read(min(os.fstat(fh.fileno()).st_size, limit) + 1)
    except OSError as err:
        raise InputError(f"{path.name}: could not be read ({err.strerror or err}); check that "
                         "the file exists and is readable.") from err
    if len(raw) > limit:
        raise _too_big(path, path.stat().st_size, limit, compressed=False)
    return raw


def _too_big(path: Path, size: int, limit: int, *, compressed: bool) -> InputError:
    what = (f"decompresses to more than {limit / 2**20:,.0f} MiB" if compressed
            else f"holds {size / 2**20:,.1f} MiB of text")
    return InputError(
        f"{path.name}: {what}, more than this machine can hold as a matrix (the limit follows "
        "from the memory allowed); subset the genes or samples first, or convert it to .h5ad on "
        "a larger machine (`gex convert`).")


def _gunzip(fh, path: Path, limit: int) -> bytearray:
    """Every gzip member of `fh`, decompressed while counting; at most `limit` bytes are kept."""
    out = bytearray()
    unzip, in_member = zlib.decompressobj(wbits=31), False
    while chunk := fh.read(_CHUNK):
        while chunk:
            if not in_member:
                if not chunk.strip(b"\x00"):                 # zero padding after the end
                    break
                if not chunk.startswith(b"\x1f\x8b"[:len(chunk)]):
                    raise InputError(f"{path.name}: unexpected data after the end of the gzip "
                                     "stream; the file is damaged, so re-download it.")
                in_member = True
            try:
                # Bounded output per call: a 1 MiB input can hold 1 GiB of zeros.
                out += unzip.decompress(chunk, min(_CHUNK, limit + 1 - len(out)))
            except zlib.error as err:
                raise InputError(f"{path.name}: the gzip stream is truncated or corrupt "
                                 f"({err}); re-download the file.") from err
            if len(out) > limit:
                raise _too_big(path, len(out), limit, compressed=True)
            if unzip.eof:                                   # next member, if any
                chunk, unzip, in_member = unzip.unused_data, zlib.decompressobj(wbits=31), False
            else:
                chunk = unzip.unconsumed_tail
    if in_member:
        raise InputError(f"{path.name}: the gzip stream is truncated or corrupt (it ends "
                         "inside the compressed data); re-download the file.")
    return out


def decode_text(raw: bytes | bytearray, path: Path) -> str:
    """Bytes of a text table to str: UTF-8 (BOM or not), UTF-16 with a BOM, else Latin-1.

    Refuses empty content, binary containers and NUL bytes anywhere in the text (the C parser
    would silently cut the cell at a NUL, turning '60' into '6').
    """
    if not raw or raw.isspace():
        raise InputError(f"{path.name}: the file has no content; re-export or re-download it.")
    kind = sniff_magic(bytes(raw[:8]))
    if kind is not None:
        raise InputError(f"{path.name}: this is a {kind}, not a text table.")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):             # Excel's "Unicode text" export
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as err:
            raise InputError(f"{path.name}: starts like UTF-16 text but is not valid UTF-16 "
                             f"({err.reason} at byte {err.start}); save it as UTF-8.") from err
    else:
        nul = raw.find(b"\x00")
        if nul >= 0:
            raise _nul_error(path, raw.count(b"\n", 0, nul) + 1, raw.count(b"\x00"))
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")      # old Excel exports; every byte maps to a character
    nul = text.find("\x00")
    if nul >= 0:
        raise _nul_error(path, text.count("\n", 0, nul) + 1, text.count("\x00"))
    return text


def _nul_error(path: Path, line: int, n: int) -> InputError:
    return InputError(
        f"{path.name}: binary content (a NUL byte on line {line}; {n} in the file) where a text "
        "table was expected. Check that this is the expression file and not an archive or "
        "image; if it is, the file is damaged, so re-export or re-download it.")


def check_field_counts(text: str, sep: str, path: Path, *, first_line: int = 1) -> int:
    """Raise if any data line has a different number of fields than the header line; return the
    number of non-blank lines (header included).

    Counts separators per line with numpy, so it is cheap even for large files; quoted separators
    are not expected in numeric matrices.
    """
    buf = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    if len(buf) and buf[-1] != 10:
        newlines = np.append(newlines, len(buf))
    if len(newlines) < 2:
        return len(newlines)
    starts = np.concatenate([[0], newlines[:-1] + 1])
    # Separators per line as a sum over each line's bytes (one byte per character, plus 8 per
    # line); every segment holds at least its newline, so reduceat never sees an empty one.
    per_line = np.add.reduceat((buf == ord(sep)).view(np.uint8), starts, dtype=np.int64)
    length = newlines - starts
    # Empty lines, or a lone '\r'; a one-character line such as '3' is not blank.
    blank = (length == 0) | ((length == 1) & (buf[np.minimum(starts, len(buf) - 1)] == 13))
    if blank.all():
        return 0
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
    return int((~blank).sum())


def to_float_matrix(frame: pd.DataFrame, path: Path, *, rows: str, cols: str) -> np.ndarray:
    """Convert a table of numbers-as-text to float32, naming the first cell that is not a number.

    Missing tokens (empty, NA, NaN, null, ...) become NaN; infinities are refused. `rows` and
    `cols` name what the table's rows and columns hold ("gene", "sample") for the error message.
    """
    out = np.empty(frame.shape, dtype=np.float32)
    is_num = numeric_columns(frame)
    if is_num.all():
        with np.errstate(over="ignore"):                  # overflow to inf is checked below
            out[:] = frame.to_numpy(dtype=np.float64)
    elif is_num.any():
        with np.errstate(over="ignore"):
            out[:, is_num] = frame.loc[:, is_num].to_numpy(dtype=np.float64)
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
        with np.errstate(over="ignore"):
            out[:, ~is_num] = numeric.to_numpy(dtype=np.float64,
                                               na_value=np.nan).reshape(block.shape)
    # Checked after the conversion: 1e39 is finite in float64 but inf in float32.
    inf = np.isinf(out)
    if inf.any():
        r, c = np.argwhere(inf)[0]
        raise InputError(
            f"{path.name}: {rows} '{frame.index[r]}', {cols} '{frame.columns[c]}' is infinite or "
            f"beyond float32's range of +-3.4e38 ({int(inf.sum())} such cell(s)); replace them "
            "with a finite value or leave them empty.")
    return out


def numeric_columns(frame: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the columns with a numeric (or bool) dtype; one test per distinct dtype,
    not per column, so a million columns cost milliseconds."""
    codes, kinds = pd.factorize(frame.dtypes.to_numpy(dtype=object))
    return np.array([k.kind in "biuf" for k in kinds], dtype=bool)[codes] if len(codes) \
        else np.zeros(0, dtype=bool)


def missing_token_variants() -> list[str]:
    """MISSING_TOKENS in the casings files use (NA, Na, na), for pandas' exact-match na_values."""
    return sorted({v for t in MISSING_TOKENS for v in (t, t.upper(), t.capitalize())} | {"NaN"})


def table_from_text(text: str, sep: str, path: Path, *, na_values=(), **kwargs) -> pd.DataFrame:
    """Parse delimited text; only `na_values` become NaN, so ids like "NA" survive elsewhere."""
    # Bytes, not StringIO: a StringIO holds 4 bytes per character, the encoded text 1.
    data = io.BytesIO(text.encode("utf-8", "surrogatepass"))
    try:
        return pd.read_csv(data, sep=sep, keep_default_na=False, encoding="utf-8",
                           na_values=na_values, low_memory=False, **kwargs)
    except (pd.errors.ParserError, ValueError, IndexError, OverflowError) as err:
        raise InputError(f"{path.name}: could not parse as a table ({err}); check the "
                         "separators and quotes, or re-export the file.") from err
