"""GMT parsing: sets in file order, every malformed line refused with its number."""

from __future__ import annotations

import pytest

from gexcore.data.genesets import MAX_GMT_BYTES, parse_gmt
from gexcore.errors import InputError


def test_sets_keep_file_order_drop_duplicates_and_skip_comments():
    text = ("# MSigDB export\n\nHALLMARK_A\thttp://x\tTP53\tEGFR\tTP53\t\n"
            "SET B\t\tmyc\r\n")
    assert parse_gmt(text) == {"HALLMARK_A": ["TP53", "EGFR"], "SET B": ["myc"]}
    assert parse_gmt(b"\xef\xbb\xbfS\td\tG1\n") == {"S": ["G1"]}          # UTF-8 BOM


@pytest.mark.parametrize(("text", "match"), [
    ("A\tdesc\n", "line 1: set 'A' lists no genes"),
    ("A\tdesc\tG1\nB only one field\n", "line 2: set 'B only one field' lists no genes"),
    ("\tdesc\tG1\n", "line 1: the gene set has no name"),
    ("A\td\tG1\nA\td\tG2\n", "line 2: gene set 'A' appears twice"),
    ("A\td\t" + "G" * 1001 + "\n", "line 1: a name or gene is over 1,000"),
    ("A\td\t" + "\t".join(f"G{i}" for i in range(5001)) + "\n", "5,001 genes"),
    ("# nothing\n\n", "no gene sets found"),
])
def test_malformed_lines_are_refused_with_their_number(text, match):
    with pytest.raises(InputError, match=match):
        parse_gmt(text, source="my.gmt")


def test_binary_or_oversized_files_are_refused():
    with pytest.raises(InputError, match="NUL bytes"):
        parse_gmt(b"A\td\tG1\x00\n")
    with pytest.raises(InputError, match="not UTF-8"):
        parse_gmt(b"A\td\t\xff\xfe\n")
    with pytest.raises(InputError, match="are refused"):
        parse_gmt(b"#" * (MAX_GMT_BYTES + 1))
