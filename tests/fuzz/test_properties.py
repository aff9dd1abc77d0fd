"""Property-based tests (hypothesis) of the pure parsing helpers, in-process and fast."""

from __future__ import annotations

import gzip
import itertools
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gexcore.data._limits import MAX_LABEL_CHARS, check_labels
from gexcore.data._numeric import flat_numeric_table, numeric_table
from gexcore.data._source import check_field_counts, decode_text, load_bytes, to_float_matrix
from gexcore.data.tables import _SAMPLE_LIKE
from gexcore.errors import InputError

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
PATH = Path("fuzz.tsv")

# The quadratic pattern `_SAMPLE_LIKE` replaced; the two must agree on every label.
_OLD_SAMPLE_LIKE = re.compile(r"^(?:TCGA-|SIMU-|GSM\d|SRR\d|ERR\d|SAMN)|[a-z].*\d|\d.*[a-z]|"
                              r"_\d+$", re.IGNORECASE)


@FAST
@given(st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=40))
def test_linear_sample_regex_matches_the_old_one(label):
    assert bool(_SAMPLE_LIKE.search(label)) == bool(_OLD_SAMPLE_LIKE.search(label))


@FAST
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=4),
       st.integers(0, 4000))
def test_gunzip_counts_every_member(tmp_path, data, cuts, limit):
    """Any split into gzip members decompresses to the same bytes; over `limit` is refused."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    blob = b"".join(gzip.compress(data[a:b]) for a, b in itertools.pairwise(points)) \
        or gzip.compress(b"")
    path = tmp_path / "x.gz"
    path.write_bytes(blob)
    if len(data) > limit:
        with pytest.raises(InputError, match="decompresses to more than"):
            load_bytes(path, limit)
    else:
        assert bytes(load_bytes(path, limit)) == data


@FAST
@given(st.binary(min_size=1, max_size=400), st.integers(0, 10))
def test_cut_gzip_is_an_input_error_never_another_exception(tmp_path, data, cut):
    path = tmp_path / "cut.gz"
    blob = gzip.compress(data)
    path.write_bytes(blob[:max(len(blob) - cut - 1, 0)] or b"\x1f\x8b")
    with pytest.raises(InputError, match="cut.gz: the gzip stream is truncated or corrupt"):
        load_bytes(path, 10**6)


@FAST
@given(st.binary(max_size=300))
def test_decode_text_refuses_every_nul(raw):
    try:
        text = decode_text(raw, PATH)
    except InputError:
        return
    assert "\x00" not in text
    assert b"\x00" not in raw or raw[:2] in (b"\xff\xfe", b"\xfe\xff")   # UTF-16 has NULs


def _slow_field_counts(text: str, sep: str) -> int | None:
    """Index of the first line whose field count differs from the header's, by a plain loop."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    if len(lines) < 2:
        return None
    blank = [ln in ("", "\r") for ln in lines]
    if all(blank):
        return None
    first = blank.index(False)
    want = lines[first].count(sep)
    bad = [i for i, ln in enumerate(lines) if not blank[i] and ln.count(sep) != want]
    return bad[0] if bad else None


@FAST
@given(st.text(alphabet="ab\t\n\r", max_size=80))
def test_field_counts_agree_with_a_plain_loop(text):
    expected = _slow_field_counts(text, "\t")
    if expected is None:
        check_field_counts(text, "\t", PATH)
    else:
        with pytest.raises(InputError, match="fields but the header has"):
            check_field_counts(text, "\t", PATH)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=5) | st.just("x" * (MAX_LABEL_CHARS + 1)), max_size=6),
       st.booleans())
def test_labels_over_the_bound_or_blank_are_refused(labels, allow_empty):
    too_long = any(len(s) > MAX_LABEL_CHARS for s in labels)
    blank = any(not s.strip() for s in labels)
    if too_long or (blank and not allow_empty):
        with pytest.raises(InputError):
            check_labels(labels, PATH, "sample id", allow_empty=allow_empty)
    else:
        check_labels(labels, PATH, "sample id", allow_empty=allow_empty)


_CELL = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.sampled_from(["", "NA", "nan", "1e39", "-1e400", "3.4e38", "x", " 7 "]),
                  st.integers(-10**40, 10**40).map(str))


@FAST
@given(st.lists(st.lists(_CELL, min_size=3, max_size=3), min_size=1, max_size=5))
def test_float_conversion_never_returns_inf(rows):
    frame = pd.DataFrame(rows, index=[f"G{i}" for i in range(len(rows))],
                         columns=["S1", "S2", "S3"], dtype=object)
    try:
        values = to_float_matrix(frame, PATH, rows="gene", cols="sample")
    except InputError:
        return
    assert values.dtype == np.float32 and not np.isinf(values).any()


@FAST
@given(st.lists(st.lists(_CELL, min_size=4, max_size=4), min_size=1, max_size=6))
def test_flat_and_column_wise_parses_agree(rows):
    """The values-only fast path reads the same numbers as the column-by-column parse."""
    names = ["gene", "S1", "S2", "S3", "S4"]
    text = "\t".join(names) + "\n" + "".join(
        f"G{i}\t" + "\t".join(c.strip() for c in row) + "\n" for i, row in enumerate(rows))
    flat = flat_numeric_table(text, "\t", names)
    try:
        column_wise = numeric_table(text, "\t", PATH, names=names, rows="gene", cols="sample",
                                    header=None, skiprows=1)
    except InputError:
        assert flat is None
        return
    if flat is None:                  # the fast path may decline; it must never disagree
        return
    np.testing.assert_array_equal(flat.iloc[:, 1:].to_numpy(float),
                                  column_wise.iloc[:, 1:].to_numpy(float))
    assert list(flat.iloc[:, 0]) == list(column_wise.iloc[:, 0])


def test_zlib_bomb_stops_at_the_limit(tmp_path):
    """One member of 100 MB of zeros (100 KB on disk) is refused after limit + 1 bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    blob = b"".join(comp.compress(b"\0" * 2**20) for _ in range(100)) + comp.flush()
    path = tmp_path / "bomb.gz"
    path.write_bytes(blob)
    with pytest.raises(InputError, match="bomb.gz: decompresses to more than"):
        load_bytes(path, 2**20)
