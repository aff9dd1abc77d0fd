"""The Data page survives the malformed uploads that once crashed, froze or misled the server:
each gets one clear message naming the file, and the server stays healthy for everyone."""

from __future__ import annotations

import gzip
import urllib.request
from pathlib import Path

import h5py
import numpy as np
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser


def _table(n_genes: int = 30, n_samples: int = 12) -> str:
    rng = np.random.default_rng(0)
    rows = [",".join(["gene", *[f"S{j}" for j in range(n_samples)]])]
    rows += [",".join([f"G{i}", *(f"{v:.2f}" for v in rng.gamma(2, 20, n_samples))])
             for i in range(n_genes)]
    return "\n".join(rows) + "\n"


def _corrupt_sparse_h5ad(path: Path) -> None:
    """A CSR matrix whose indptr points past its data: `toarray()` on it segfaulted."""
    import anndata
    import scipy.sparse as sp

    X = sp.random(20, 30, density=0.3, format="csr", random_state=0, dtype=np.float32)
    anndata.AnnData(X=X).write_h5ad(path)
    with h5py.File(path, "r+") as f:
        indptr = f["X/indptr"][...]
        indptr[5:] += 10_000_000
        f["X/indptr"][...] = indptr


def _reproducers(folder: Path) -> dict[str, str]:
    """file name -> text the page must show for it (all written here, small)."""
    text = _table()
    (folder / "long_id.csv").write_text(text.replace("S0", "S" * 40_000, 1))
    (folder / "nul.csv").write_bytes(text.encode().replace(b"\n", b"\n\x00", 3))
    (folder / "tiny.csv.gz").write_bytes(b"\x1f\x8b")
    one = gzip.compress(text.encode())
    (folder / "two_members.csv.gz").write_bytes(one + gzip.compress(b"0" * 50_000_000))
    _corrupt_sparse_h5ad(folder / "corrupt_sparse.h5ad")
    return {name: name for name in ("long_id.csv", "nul.csv", "tiny.csv.gz",
                                    "two_members.csv.gz", "corrupt_sparse.h5ad")}


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=10) as r:
        return r.status == 200


def test_every_reproducer_gets_a_message_and_the_server_lives(page, server_url, tmp_path):
    cases = _reproducers(tmp_path)
    page.get_by_role("tab", name="Add a cohort").click()
    for name, shown in cases.items():
        page.locator("input[type=file]").nth(0).set_input_files(tmp_path / name)
        alert = page.get_by_test_id("stAlertContentError").filter(has_text=shown)
        expect(alert.first).to_be_visible(timeout=120_000)
        assert "Traceback" not in page.content()
        assert _healthy(server_url), name
    screenshot(page, "data_bad_uploads.png")
    # The server still reads a good file afterwards.
    (tmp_path / "good.csv").write_text(_table())
    page.locator("input[type=file]").nth(0).set_input_files(tmp_path / "good.csv")
    expect(page.get_by_text("Validation report")).to_be_visible(timeout=120_000)
