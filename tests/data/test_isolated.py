"""Uploads are parsed in a limited child process: whatever the child does, the caller gets the
cohort or one InputError naming the file, and the server process lives on."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gexcore.data import isolated
from gexcore.data.isolated import ParseLimits, read_isolated
from gexcore.data.read import read_cohort
from gexcore.data.upload import read_uploaded
from gexcore.errors import InputError

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "data" / "gse7390_breast"


def _files() -> tuple[tuple[str, bytes], tuple[str, bytes]]:
    return (("expression.csv.gz", (ASSETS / "expression.csv.gz").read_bytes()),
            ("clinical.csv", (ASSETS / "clinical.csv").read_bytes()))


def test_an_upload_reads_as_read_cohort_reads_it():
    got = read_uploaded(*_files())
    want = read_cohort(ASSETS / "expression.csv.gz", ASSETS / "clinical.csv")
    np.testing.assert_array_equal(got.X, want.X)
    assert list(got.obs_names) == list(want.obs_names)
    assert got.obs["event"].equals(want.obs["event"])
    assert got.uns["survival"]["time_column"] == want.uns["survival"]["time_column"]


def test_the_readers_own_error_comes_back_as_it_is(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("gene,s1,s2\nA,1,2\nB,3\n")
    with pytest.raises(InputError) as err:
        read_isolated(path)
    with pytest.raises(InputError) as direct:
        read_cohort(path)
    assert str(err.value) == str(direct.value)


def _child_that(monkeypatch, code: str) -> None:
    monkeypatch.setattr(isolated, "_child_command", lambda request: [sys.executable, "-c", code])


def test_a_crashing_reader_becomes_an_error_naming_the_file(tmp_path, monkeypatch):
    _child_that(monkeypatch, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    (tmp_path / "cohort.h5ad").write_bytes(b"anything")
    with pytest.raises(InputError, match=r"cohort\.h5ad: the reader stopped .*SIGSEGV"):
        read_isolated(tmp_path / "cohort.h5ad")


def test_a_hanging_reader_is_stopped_at_the_time_limit(tmp_path, monkeypatch):
    _child_that(monkeypatch, "import time; time.sleep(60)")
    (tmp_path / "big.tsv").write_bytes(b"x")
    with pytest.raises(InputError, match=r"big\.tsv: reading stopped after 1 s"):
        read_isolated(tmp_path / "big.tsv", limits=ParseLimits(seconds=1))


def test_a_reader_over_the_memory_limit_is_refused(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("gene,s1\n" + "".join(f"G{i},{i}\n" for i in range(2000)))
    with pytest.raises(InputError, match=r"wide\.csv: "):
        read_isolated(path, limits=ParseLimits(memory_bytes=64 * 2**20))
