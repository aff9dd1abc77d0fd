"""Delimited text to numbers with a known memory cost: value columns are parsed as float64 (a
word among them names its cell), and a values-only table is parsed as one long column."""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gexcore.data._source import MISSING_TOKENS, missing_token_variants, table_from_text
from gexcore.errors import InputError

__all__ = ["flat_numeric_table", "numeric_table"]


def numeric_table(text: str, sep: str, path: Path, *, names: Sequence[str],
                  text_columns: Collection[int] = (), rows: str, cols: str,
                  first_data_line: int = 1, **kwargs) -> pd.DataFrame:
    """Parse delimited `text` with every column outside `text_columns` as float64.

    `names` are the header's fields by position; `first_data_line` is the 0-based line of the
    first data row. Forcing the dtype keeps one stray word from turning a whole value column
    into Python strings (90 bytes a cell instead of 8); missing tokens become NaN, column 0
    (the ids) stays text. A cell that is not a number raises `InputError` naming the row id,
    the column and the value.
    """
    keep = set(text_columns) | {0}
    numeric = [i for i in range(len(names)) if i not in keep]
    converters = {0: str, **kwargs.pop("converters", {})}
    try:
        return table_from_text(text, sep, path, na_values=missing_token_variants(),
                               dtype=dict.fromkeys(numeric, np.float64), converters=converters,
                               **kwargs)
    except InputError as err:
        cause = str(err.__cause__ or "")
        if (column := re.search(r"in column (\d+)$", cause)) is not None \
                and int(column.group(1)) < len(names):
            bad = int(column.group(1))
            raise _bad_cell(text, sep, path, bad, name=str(names[bad]), rows=rows, cols=cols,
                            **kwargs) from None
        if (word := re.match(r"could not convert string to float: (.*)$", cause, re.DOTALL)):
            raise _bad_value(text, sep, path, _literal(word.group(1)), names, set(numeric),
                             rows=rows, cols=cols, first_data_line=first_data_line) from None
        raise


def _literal(text: str) -> str:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text.strip("'")
    return str(value)


def _bad_value(text: str, sep: str, path: Path, value: str, names: Sequence[str],
               numeric: set[int], *, rows: str, cols: str, first_data_line: int) -> InputError:
    """Where the cell `value` sits in a numeric column (found by a search of the text)."""
    fix = "Fix or blank those cells; missing values may be written as empty, NA or NaN."
    cell = re.compile(rf'(?m)(?:^|{re.escape(sep)})"?{re.escape(value)}"?(?={re.escape(sep)}|\r?$)')
    for hit in cell.finditer(text):
        start = hit.start() + (text[hit.start()] == sep)
        line_start = text.rfind("\n", 0, start) + 1
        column = text.count(sep, line_start, start)
        if column not in numeric:
            continue
        line = text.count("\n", 0, line_start)
        end = text.find(sep, line_start)
        row_id = text[line_start:end if end >= 0 else start].strip().strip('"')
        return InputError(
            f"{path.name}: {rows} '{row_id[:80]}' (row {line - first_data_line + 1} of the data), "
            f"{cols} '{names[column]}' holds '{value[:60]}', which is not a number. {fix}")
    return InputError(f"{path.name}: a {cols} column holds '{value[:60]}', which is not a "
                      f"number. {fix}")


def _bad_cell(text: str, sep: str, path: Path, column: int, *, name: str, rows: str, cols: str,
              **kwargs) -> InputError:
    """The first cell of `column` that is not a number (re-read as text), as an InputError."""
    frame = table_from_text(text, sep, path, usecols=[0, column],
                            converters={0: str, column: str}, **kwargs)
    cells = frame.iloc[:, 1].astype(str).str.strip()
    numeric = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    missing = cells.str.lower().isin(MISSING_TOKENS).to_numpy(dtype=bool)
    where = np.flatnonzero(~np.isfinite(numeric) & ~missing)
    if not len(where):
        return InputError(f"{path.name}: {cols} '{name}' holds a cell that is not a number; fix "
                          "or blank it (missing values may be written as empty, NA or NaN).")
    r = int(where[0])
    what = ("is infinite or beyond float32's range of +-3.4e38" if np.isinf(numeric[r])
            else "is not a number")
    return InputError(
        f"{path.name}: {rows} '{frame.iat[r, 0]}' (row {r + 1} of the data), {cols} '{name}' "
        f"holds '{cells.iat[r][:60]}', which {what} ({len(where)} such cell(s) in that "
        "column). Fix or blank those cells; missing values may be written as empty, NA or NaN.")


def flat_numeric_table(text: str, sep: str, names: Sequence[str]) -> pd.DataFrame | None:
    """An id column plus a float64 block, for a table whose columns after the first are all
    values: the cells are parsed as one long column and reshaped. pandas spends ~50 us per
    column building a frame, so this keeps a 1,000,000-column table to seconds, not minutes.

    None when a cell is not a number or the cells do not come out as rows x columns: then the
    caller parses column by column, which names the cell.
    """
    ids, chunks = [], []
    for line in text.split("\n")[1:]:                # one iteration per row, not per cell
        if not line.strip():
            continue
        head, _, rest = line.partition(sep)
        ids.append(head.strip().strip('"'))
        chunks.append(rest.replace(sep, "\n").encode("utf-8", "surrogatepass"))
    data = b"\n".join(chunks) + b"\n"
    del chunks
    try:
        column = pd.read_csv(io.BytesIO(data), header=None, names=["v"], dtype=np.float64,
                             na_values=missing_token_variants(), keep_default_na=False,
                             skip_blank_lines=False, encoding="utf-8", engine="c")["v"]
    except ValueError:                 # a word among the values (ParserError included)
        return None
    n_values = len(names) - 1
    if len(column) != len(ids) * n_values:
        return None
    block = column.to_numpy().reshape(len(ids), n_values)
    frame = pd.DataFrame(block, columns=pd.RangeIndex(1, len(names)), copy=False)
    frame.insert(0, 0, np.asarray(ids, dtype=object))
    return frame
