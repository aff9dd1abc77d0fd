"""Malformed input files for every format `read_cohort` reads: small valid files, then mutations.

`make_case(seed, index, folder)` writes one case into `folder` and says what a correct reader
must do with it: `expect="ok"` (read it, and get `truth` back), `"error"` (refuse it with a
GexError) or `"any"` (either, but never crash, hang, or accept an invalid result). Deterministic:
the same (seed, index) always writes the same bytes.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

FORMATS = ("table", "table_gz", "parquet", "h5ad_dense", "h5ad_sparse", "gct", "geo", "gdc",
           "clinical", "archs4")

# Mutations of the bytes of any file, then ones that need the format's structure.
_BYTES = ("truncate", "flip", "insert", "delete_span", "duplicate_span", "nul", "empty",
          "tiny")
_TEXT = ("huge_id", "dup_sample", "inf_value", "overflow_value", "all_nan", "header_only",
         "wide", "latin1_ids", "utf16_bom", "crlf", "quoted", "ragged", "bad_cell", "no_rows",
         "nul_late", "long_line", "multi_member", "gzip_bomb", "gzip_members_bomb",
         "gzip_trailing", "empty_ids", "utf8_bom", "sci", "blank_lines", "dup_gene",
         "container", "r_rownames")
_H5AD = ("del_X", "bytes_X", "unknown_encoding", "bad_indptr", "bad_indices", "bad_shape",
         "dup_obs", "overflow_X", "del_obs", "nan_X", "zero_genes", "huge_shape", "int_X")
_GDC = ("sheet_no_column", "sheet_dup_sample", "sheet_missing_file", "sheet_huge_id",
        "sheet_nul", "star_truncated", "star_flip", "sheet_bomb", "star_negative")
_ARCHS4 = ("a4_del_expression", "a4_del_ids", "a4_short_ids", "a4_text_counts", "a4_dup_ids",
           "a4_no_match", "a4_select", "a4_bad_regex", "a4_huge_shape", "a4_negative",
           "a4_samples_by_genes", "a4_text_prob", "a4_nan_counts", "a4_no_gene_ids")
_CLINICAL = ("clin_nul", "clin_huge_id", "clin_bad_time", "clin_bad_event", "clin_negative",
             "clin_flip", "clin_truncate", "clin_bomb", "clin_wide", "clin_dup_ids",
             "clin_empty")

# What a correct reader does with each mutation; "any" when the result depends on the bytes.
_MUST_FAIL = {"nul", "empty", "huge_id", "dup_sample", "inf_value", "overflow_value", "all_nan",
              "header_only", "ragged", "bad_cell", "no_rows", "nul_late", "gzip_bomb",
              "gzip_members_bomb", "gzip_trailing", "del_X", "bytes_X", "unknown_encoding",
              "bad_indptr", "bad_indices", "bad_shape", "dup_obs", "overflow_X", "del_obs",
              "nan_X", "zero_genes", "huge_shape", "sheet_no_column", "sheet_dup_sample",
              "sheet_missing_file", "sheet_huge_id", "sheet_nul", "sheet_bomb", "star_negative",
              "clin_nul", "clin_huge_id", "clin_bomb", "clin_empty", "tiny", "long_line",
              "empty_ids", "container", "a4_del_expression", "a4_del_ids", "a4_short_ids",
              "a4_text_counts", "a4_dup_ids", "a4_no_match", "a4_bad_regex", "a4_huge_shape",
              "a4_negative", "a4_nan_counts", "a4_no_gene_ids"}
_SPARSE_ONLY = {"bad_indptr", "bad_indices"}
_MUST_READ = {"none", "wide", "latin1_ids", "utf16_bom", "crlf", "quoted", "multi_member",
              "int_X", "utf8_bom", "sci", "blank_lines", "a4_select", "a4_samples_by_genes",
              "a4_text_prob"}


@dataclass
class Case:
    """One input: files under the case folder, the call to make, and what must come of it."""

    format: str
    mutation: str
    expect: str                                   # "ok", "error" or "any"
    expression: str                               # relative to the case folder
    clinical: str | None = None
    options: dict = field(default_factory=dict)
    truth: pd.DataFrame | None = None             # samples x genes, for expect == "ok"


def make_case(seed: int, index: int, folder: Path, *, limit: int) -> Case:
    """Write case `index` of run `seed` into `folder`; `limit` is the memory limit in bytes
    (bombs are sized to pass it several times over)."""
    rng = np.random.default_rng([seed, index])
    fmt = FORMATS[index % len(FORMATS)]
    pool = {"gdc": _BYTES[:4] + _GDC, "clinical": _CLINICAL,
            "h5ad_dense": _BYTES + _H5AD, "h5ad_sparse": _BYTES + _H5AD,
            "parquet": _BYTES, "archs4": _BYTES + _ARCHS4}.get(fmt, _BYTES + _TEXT)
    if fmt == "h5ad_dense":
        pool = tuple(m for m in pool if m not in _SPARSE_ONLY)
    mutation = "none" if rng.random() < 0.06 else str(rng.choice(pool))
    case = _WRITERS[fmt](rng, folder, mutation, limit)
    if case.expect == "":
        case.expect = ("error" if mutation in _MUST_FAIL else
                       "ok" if mutation in _MUST_READ else "any")
    if mutation == "nul" and fmt in ("parquet", "h5ad_dense", "h5ad_sparse", "archs4"):
        case.expect = "any"                    # a NUL byte is just a byte in a binary file
    if case.expect != "ok":
        case.truth = None
    return case


# ------------------------------------------------------------------------------ valid data

def _matrix(rng, n_samples: int | None = None, n_genes: int | None = None) -> pd.DataFrame:
    """samples x genes of distinct, 3-decimal values; ids shaped like real ones."""
    n = n_samples or int(rng.integers(3, 9))
    g = n_genes or int(rng.integers(4, 13))
    style = int(rng.integers(3))
    samples = ([f"TCGA-A1-A{i:03d}-01" for i in range(n)] if style == 0 else
               [f"GSM{100 + i}" for i in range(n)] if style == 1 else [f"S{i}" for i in range(n)])
    genes = ([f"ENSG{i:011d}.{i % 7 + 1}" for i in range(1, g + 1)] if style == 0 else
             [f"G{i}X" for i in range(g)])
    values = np.round(rng.gamma(2.0, 3.0, size=(n, g)) + np.arange(g) * 0.001, 3)
    return pd.DataFrame(values, index=samples, columns=genes)


def _table_text(frame: pd.DataFrame, sep: str, genes_by_samples: bool) -> str:
    table = frame.T if genes_by_samples else frame
    return table.rename_axis("gene" if genes_by_samples else "sample").to_csv(sep=sep)


# ----------------------------------------------------------------------------- mutations

def _mutate_bytes(data: bytes, mutation: str, rng) -> bytes:
    n = len(data)
    if mutation == "truncate":
        return data[: int(rng.integers(0, max(n, 1)))]
    if mutation == "flip":
        out = bytearray(data)
        for i in rng.integers(0, n, size=int(rng.integers(1, 6))):
            out[i] = int(rng.integers(256))
        return bytes(out)
    if mutation == "insert":
        i = int(rng.integers(0, n + 1))
        return data[:i] + rng.integers(0, 256, size=int(rng.integers(1, 9)), dtype=np.uint8
                                       ).tobytes() + data[i:]
    if mutation == "delete_span":
        i = int(rng.integers(0, n))
        return data[:i] + data[i + int(rng.integers(1, 64)):]
    if mutation == "duplicate_span":
        i = int(rng.integers(0, n))
        return data[:i] + data[i:i + int(rng.integers(1, 64))] + data[i:]
    if mutation == "nul":
        i = int(rng.integers(0, n))
        return data[:i] + b"\x00" + data[i:]
    if mutation == "empty":
        return b""
    if mutation == "tiny":
        return data[:2]
    if mutation == "container":
        return bytes(rng.choice([b"PK\x03\x04", b"BZh91AY", b"\x80\x04\x95", b"%PDF-1.4"])) + data
    return data


def _mutate_frame(frame: pd.DataFrame, mutation: str, rng) -> pd.DataFrame:
    """Mutations expressed on the matrix before it is written."""
    frame = frame.copy()
    r, c = int(rng.integers(frame.shape[0])), int(rng.integers(frame.shape[1]))
    if mutation == "huge_id":
        frame.index = [("x" * int(rng.integers(2_000, 70_000))) if i == r else s
                       for i, s in enumerate(frame.index)]
    elif mutation == "dup_sample":
        frame.index = [frame.index[0] if i == max(r, 1) else s for i, s in enumerate(frame.index)]
    elif mutation == "empty_ids":
        frame.index = ["" if i == r else s for i, s in enumerate(frame.index)]
    elif mutation == "inf_value":
        frame.iat[r, c] = np.inf
    elif mutation == "overflow_value":
        frame.iat[r, c] = 3.5e38 * (1 + rng.random())
    elif mutation == "all_nan":
        frame.loc[:, :] = np.nan
    elif mutation == "wide":
        frame = pd.concat([frame] + [frame.add_suffix(f"_{k}") for k in range(200)], axis=1)
    elif mutation == "latin1_ids":
        frame.index = [f"{s}_\u00e9" for s in frame.index]
    return frame


def _text_mutation(text: str, mutation: str, rng, sep: str) -> str:
    lines = text.split("\n")
    body = [i for i in range(1, len(lines)) if lines[i]]
    if mutation == "header_only" or mutation == "no_rows":
        return lines[0] + "\n"
    if mutation == "crlf":
        return text.replace("\n", "\r\n")
    if mutation == "quoted":
        return "\n".join(sep.join(f'"{c}"' if j == 0 else c for j, c in enumerate(ln.split(sep)))
                         if ln else ln for ln in lines)
    if mutation == "ragged" and body:
        i = int(rng.choice(body))
        lines[i] = lines[i] + sep + "1.0"
        return "\n".join(lines)
    if mutation == "bad_cell" and body:
        i = int(rng.choice(body))
        cells = lines[i].split(sep)
        cells[-1] = str(rng.choice(["high", "1.2.3", "--1", "0x1F", "e", "1e400", "TRUE"]))
        lines[i] = sep.join(cells)
        return "\n".join(lines)
    if mutation == "nul_late":
        # A NUL inside a '60' past the first 64 KiB: the C parser would silently read '6'.
        n_fields = max(lines[0].count(sep), 1)
        row = (sep + "60") * n_fields + "\n"
        big = text + "".join(f"ZZ{k}{row}" for k in range(70_000 // len(row) + 10))
        i = big.find(sep + "60", int(rng.integers(66_000, 69_000))) + 2
        return big[:i] + "\x00" + big[i:]
    if mutation == "long_line":
        return text + "Q" * int(rng.integers(50_000, 200_000)) + "\n"
    if mutation == "utf8_bom":
        return "\ufeff" + text
    if mutation == "blank_lines":
        return text + "\n" * int(rng.integers(1, 4))
    if mutation == "sci":
        return re.sub(r"(?<=[\t,])(\d+\.\d+)(?=[\t,\r\n])",
                      lambda m: f"{float(m.group(1)):.6e}", text)
    rows = [i for i in body if lines[i].count(sep) == lines[0].count(sep) and sep in lines[i]]
    if mutation == "dup_gene" and len(rows) > 1:
        first, other = rows[0], rows[-1]
        lines[other] = lines[first].split(sep, 1)[0] + sep + lines[other].split(sep, 1)[1]
        return "\n".join(lines)
    if mutation == "r_rownames" and lines[0].count(sep):
        return lines[0].split(sep, 1)[1] + "\n" + "\n".join(lines[1:])
    return text


def _gzip_bytes(text: bytes, mutation: str, rng, limit: int) -> bytes:
    if mutation == "multi_member":
        cut = text.find(b"\n", len(text) // 2) + 1 or len(text)
        return gzip.compress(text[:cut]) + gzip.compress(text[cut:])
    if mutation == "gzip_bomb":
        return _bomb(text, limit * 3, members=1)
    if mutation == "gzip_members_bomb":
        return _bomb(text, limit * 3, members=int(rng.integers(2, 50)))
    if mutation == "gzip_trailing":
        return gzip.compress(text) + b"garbage after the stream"
    return gzip.compress(text)


_BOMB_CACHE: dict[tuple[int, int], bytes] = {}


def _bomb(head: bytes, size: int, *, members: int) -> bytes:
    """A gzip of `head` then rows of zeros, `size` bytes decompressed, in `members` members."""
    line = b"G\t" + b"0\t" * 60 + b"0\n"
    key = (size, members)
    if key not in _BOMB_CACHE:
        block = line * (1 << 14)
        per = max(size // members, len(block))
        comp = zlib.compressobj(1, zlib.DEFLATED, 31)
        chunk = comp.compress(block * max(per // len(block), 1)) + comp.flush()
        _BOMB_CACHE[key] = chunk * members
    return gzip.compress(head) + _BOMB_CACHE[key]


# -------------------------------------------------------------------------------- writers

def _write_table(rng, folder: Path, mutation: str, limit: int, *, gz: bool = False) -> Case:
    frame = _matrix(rng)
    sep = str(rng.choice([",", "\t"]))
    genes_by_samples = bool(rng.random() < 0.6)
    mutated = _mutate_frame(frame, mutation, rng)
    text = _text_table(mutated, sep, genes_by_samples, mutation, rng)
    data = text.encode("utf-16" if mutation == "utf16_bom" else
                       "latin-1" if mutation == "latin1_ids" else "utf-8")
    suffix = (".tsv" if sep == "\t" else ".csv") + (".gz" if gz else "")
    if gz or mutation in ("multi_member", "gzip_bomb", "gzip_members_bomb", "gzip_trailing"):
        data = _gzip_bytes(data, mutation, rng, limit)
        suffix = suffix if suffix.endswith(".gz") else suffix + ".gz"
    data = _mutate_bytes(data, mutation, rng)
    path = folder / f"expr{suffix}"
    path.write_bytes(data)
    options = {"orientation": "genes_by_samples" if genes_by_samples else "samples_by_genes"}
    return Case("table_gz" if gz else "table", mutation, "", path.name, options=options,
                truth=mutated)


def _text_table(frame, sep, genes_by_samples, mutation, rng) -> str:
    if mutation == "all_nan":
        return _table_text(frame, sep, genes_by_samples).replace("nan", "")
    text = _table_text(frame, sep, genes_by_samples)
    return _text_mutation(text, mutation, rng, sep)


def _write_table_gz(rng, folder, mutation, limit) -> Case:
    return _write_table(rng, folder, mutation, limit, gz=True)


def _write_parquet(rng, folder: Path, mutation: str, limit: int) -> Case:
    frame = _matrix(rng).rename_axis("sample")
    buf = io.BytesIO()
    frame.to_parquet(buf)
    data = _mutate_bytes(buf.getvalue(), mutation, rng)
    (folder / "expr.parquet").write_bytes(data)
    return Case("parquet", mutation, "", "expr.parquet",
                options={"orientation": "samples_by_genes"}, truth=frame)


def _write_h5ad(rng, folder: Path, mutation: str, limit: int, *, sparse: bool) -> Case:
    import anndata as ad
    import h5py
    import scipy.sparse as sp

    frame = _matrix(rng)
    X = frame.to_numpy(np.float32)
    if sparse:
        X[rng.random(X.shape) < 0.4] = 0
    obs = pd.DataFrame({"batch": rng.choice(["a", "b"], len(frame))}, index=frame.index)
    names = list(frame.index)
    if mutation == "dup_obs":
        names[1] = names[0]
    obs.index = names
    data = sp.csr_matrix(X) if sparse else X
    if mutation == "int_X":
        data = np.round(X).astype(np.int64)
        frame = pd.DataFrame(data.astype(np.float32), index=frame.index, columns=frame.columns)
    adata = ad.AnnData(X=data, obs=obs, var=pd.DataFrame(index=frame.columns))
    path = folder / "cohort.h5ad"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata.write_h5ad(path)
    with h5py.File(path, "r+") as f:
        _h5ad_mutation(f, mutation, rng, sparse)
    if mutation in _BYTES:
        path.write_bytes(_mutate_bytes(path.read_bytes(), mutation, rng))
    dense = data.toarray() if sparse and mutation != "int_X" else np.asarray(data)
    truth = pd.DataFrame(dense.astype(np.float32), index=frame.index, columns=frame.columns)
    return Case("h5ad_sparse" if sparse else "h5ad_dense", mutation, "", path.name, truth=truth)


def _h5ad_mutation(f, mutation: str, rng, sparse: bool) -> None:
    if mutation == "del_X":
        del f["X"]
    elif mutation == "bytes_X":
        shape = (f["obs"]["_index"].shape[0], f["var"]["_index"].shape[0])
        del f["X"]
        f["X"] = np.full(shape, b"abc")
    elif mutation == "unknown_encoding":
        target = f["X"] if rng.random() < 0.5 else f["obs"]
        target.attrs["encoding-type"] = "mystery_matrix"
    elif mutation == "bad_indptr" and sparse:
        ip = f["X/indptr"][()]
        ip[int(rng.integers(1, len(ip)))] = int(rng.choice([10**8, -5, ip[-1] + 7]))
        del f["X/indptr"]
        f["X/indptr"] = ip
    elif mutation == "bad_indices" and sparse:
        ind = f["X/indices"][()]
        if len(ind):
            ind[int(rng.integers(len(ind)))] = int(rng.choice([10**6, -1, 2**31 - 1]))
        del f["X/indices"]
        f["X/indices"] = ind
    elif mutation == "bad_shape":
        if sparse:
            f["X"].attrs["shape"] = np.array([3, 10**6])
        else:
            data = f["X"][()]
            del f["X"]
            f["X"] = data[:, :-1]
    elif mutation == "overflow_X":
        data = f["X/data"] if sparse else f["X"]
        values = data[()].astype(np.float64)
        values.flat[0] = 1e39
        name = data.name
        del f[name]
        f[name] = values
    elif mutation == "del_obs":
        del f["obs"]
    elif mutation == "nan_X":                  # dense even for sparse: zeros are numbers
        shape = (f["obs"]["_index"].shape[0], f["var"]["_index"].shape[0])
        del f["X"]
        f["X"] = np.full(shape, np.nan, dtype=np.float32)
    elif mutation == "zero_genes":
        for key in list(f["var"].keys()):
            if key != "_index":
                del f["var"][key]
        del f["var"]["_index"]
        f["var"]["_index"] = np.array([], dtype="S1")
        n = f["obs"]["_index"].shape[0]
        del f["X"]
        f["X"] = np.zeros((n, 0), dtype=np.float32)
    elif mutation == "huge_shape":
        if sparse:
            f["X"].attrs["shape"] = np.array([10**6, 10**6])
        else:
            del f["X"]
            f.create_dataset("X", shape=(50_000, 50_000), dtype=np.float32,
                             chunks=(1000, 1000), compression="gzip")


def _write_h5ad_dense(rng, folder, mutation, limit) -> Case:
    return _write_h5ad(rng, folder, mutation, limit, sparse=False)


def _write_h5ad_sparse(rng, folder, mutation, limit) -> Case:
    return _write_h5ad(rng, folder, mutation, limit, sparse=True)


def _write_gct(rng, folder: Path, mutation: str, limit: int) -> Case:
    frame = _mutate_frame(_matrix(rng), mutation, rng)
    v13 = bool(rng.random() < 0.5)
    genes = frame.T
    lines = []
    if v13:
        lines += ["#1.3", f"{genes.shape[0]}\t{genes.shape[1]}\t1\t1",
                  "id\tpr_gene_symbol\t" + "\t".join(genes.columns),
                  "cell_id\tna\t" + "\t".join("A375" for _ in genes.columns)]
    else:
        lines += ["#1.2", f"{genes.shape[0]}\t{genes.shape[1]}",
                  "Name\tDescription\t" + "\t".join(genes.columns)]
    for gene, row in genes.iterrows():
        cells = ["" if np.isnan(v) else ("inf" if np.isinf(v) else repr(float(v)))
                 for v in row.to_numpy()]
        lines.append(f"{gene}\tdesc {gene}\t" + "\t".join(cells))
    if mutation == "bad_cell":                 # in a data row, not a metadata line
        i = int(rng.integers(len(lines) - genes.shape[0], len(lines)))
        cells = lines[i].split("\t")
        cells[int(rng.integers(2, len(cells)))] = str(rng.choice(["high", "1.2.3", "e", "--1"]))
        lines[i] = "\t".join(cells)
        text = "\n".join(lines) + "\n"
    else:
        text = _text_mutation("\n".join(lines) + "\n", mutation, rng, "\t")
    if mutation in ("header_only", "no_rows"):
        text = "\n".join(lines[:3 + v13]) + "\n"
    data = text.encode("utf-16" if mutation == "utf16_bom" else
                       "latin-1" if mutation == "latin1_ids" else "utf-8")
    name = "expr.gct"
    if mutation in ("multi_member", "gzip_bomb", "gzip_members_bomb", "gzip_trailing"):
        data, name = _gzip_bytes(data, mutation, rng, limit), "expr.gct.gz"
    (folder / name).write_bytes(_mutate_bytes(data, mutation, rng))
    expect = "any" if mutation in ("utf16_bom", "quoted", "r_rownames") else ""
    return Case("gct", mutation, expect, name, truth=frame)


def _write_geo(rng, folder: Path, mutation: str, limit: int) -> Case:
    frame = _mutate_frame(_matrix(rng), mutation, rng)
    samples = list(frame.index)
    quote = "\t".join(f'"{s}"' for s in samples)
    lines = ['!Series_title\t"fuzz series"', '!Series_geo_accession\t"GSE1"', "",
             "!Sample_title\t" + "\t".join(f'"t{i}"' for i in range(len(samples))),
             f"!Sample_geo_accession\t{quote}",
             "!Sample_characteristics_ch1\t" + "\t".join('"age: 50"' for _ in samples),
             "!series_matrix_table_begin", '"ID_REF"\t' + quote]
    for gene, row in frame.T.iterrows():
        cells = ["null" if np.isnan(v) else ("inf" if np.isinf(v) else repr(float(v)))
                 for v in row.to_numpy()]
        lines.append(f'"{gene}"\t' + "\t".join(cells))
    if mutation == "bad_cell":                 # in a table row, not a header line
        i = int(rng.integers(8, len(lines)))
        cells = lines[i].split("\t")
        cells[int(rng.integers(1, len(cells)))] = str(rng.choice(["high", "1.2.3", "e", "--1"]))
        lines[i] = "\t".join(cells)
        mutation_done = True
    else:
        mutation_done = False
    lines.append("!series_matrix_table_end")
    text = "\n".join(lines) + "\n"
    if mutation in ("header_only", "no_rows"):
        text = "\n".join(lines[:8] + lines[-1:]) + "\n"
    elif mutation not in ("latin1_ids",) and not mutation_done:
        text = _text_mutation(text, mutation, rng, "\t")
    data = text.encode("utf-16" if mutation == "utf16_bom" else
                       "latin-1" if mutation == "latin1_ids" else "utf-8")
    name = "GSE1_series_matrix.txt"
    if mutation in ("multi_member", "gzip_bomb", "gzip_members_bomb", "gzip_trailing"):
        data, name = _gzip_bytes(data, mutation, rng, limit), name + ".gz"
    (folder / name).write_bytes(_mutate_bytes(data, mutation, rng))
    # The GEO reader trusts no quotes/CRLF tricks on its marker lines; "wide" is still valid.
    # Lines after the table end, or extra cells on header lines, are ignored: still valid.
    expect = "any" if mutation in ("crlf", "quoted", "utf16_bom", "latin1_ids", "ragged",
                                   "long_line", "r_rownames") else ""
    return Case("geo", mutation, expect, name, truth=frame)


_STAR_HEADER = ("gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\t"
                "tpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded")


def _star_text(counts: np.ndarray, genes: list[str]) -> str:
    lines = ["# gene-model: GENCODE v36", _STAR_HEADER]
    lines += [f"N_{k}\t\t\t10\t10\t10\t\t\t" for k in ("unmapped", "multimapping",
                                                     "noFeature", "ambiguous")]
    for i, (gene, n) in enumerate(zip(genes, counts)):
        lines.append(f"{gene}\tSYM{i}\tprotein_coding\t{n}\t{n // 2}\t{n - n // 2}\t"
                     f"{n / 3:.4f}\t{n / 7:.4f}\t{n / 5:.4f}")
    return "\n".join(lines) + "\n"


def _write_gdc(rng, folder: Path, mutation: str, limit: int) -> Case:
    n, g = int(rng.integers(2, 5)), int(rng.integers(4, 10))
    genes = [f"ENSG{i:011d}.{i % 5 + 1}" for i in range(1, g + 1)]
    counts = rng.integers(0, 5000, size=(n, g))
    samples = [f"TCGA-A1-A{i:03d}-01A" for i in range(n)]
    sheet = [("File ID\tFile Name\tData Category\tData Type\tProject ID\tCase ID\t"
              "Sample ID\tSample Type")]
    files = []
    for i in range(n):
        fid = f"{i:08d}-0000-4000-8000-{i:012d}"
        name = f"{i:08d}-1111-4111-8111-{i:012d}.rna_seq.augmented_star_gene_counts.tsv"
        (folder / fid).mkdir()
        c = counts[i].copy()
        if mutation == "star_negative" and i == 0:
            c[0] = -3
        data = _star_text(c, genes).encode()
        if mutation in ("star_truncated", "star_flip") and i == n - 1:
            data = _mutate_bytes(data, "truncate" if mutation == "star_truncated" else "flip",
                                 rng)
        (folder / fid / name).write_bytes(data)
        files.append(folder / fid / name)
        sid = samples[i]
        if mutation == "sheet_dup_sample" and i == 1:
            sid = samples[0]
        if mutation == "sheet_huge_id" and i == 0:
            sid = "T" * int(rng.integers(2_000, 70_000))
        sheet.append(f"{fid}\t{name}\tTranscriptome Profiling\tGene Expression Quantification\t"
                     f"TCGA-BRCA\t{sid[:12]}\t{sid}\tPrimary Tumor")
    if mutation == "sheet_missing_file":
        sheet.append("ffffffff-0000-4000-8000-000000000000\tmissing.rna_seq.augmented_star_gene"
                     "_counts.tsv\tTranscriptome Profiling\tGene Expression Quantification\t"
                     "TCGA-BRCA\tTCGA-ZZ-ZZZZ\tTCGA-ZZ-ZZZZ-01A\tPrimary Tumor")
    text = "\n".join(sheet) + "\n"
    if mutation == "sheet_no_column":
        text = text.replace("Sample ID", "Sample Name")
    data = text.encode()
    if mutation == "sheet_nul":
        data = data[:len(data) // 2] + b"\x00" + data[len(data) // 2:]
    sheet_path = folder / "gdc_sample_sheet.2024-01-01.tsv"
    if mutation == "sheet_bomb":
        data = _bomb(data, limit * 3, members=3)
    if mutation in _BYTES:
        target = files[int(rng.integers(n))]
        target.write_bytes(_mutate_bytes(target.read_bytes(), mutation, rng))
    sheet_path.write_bytes(data)
    truth = pd.DataFrame(counts.astype(np.float32), index=samples,
                         columns=[f"SYM{i}" for i in range(g)])
    return Case("gdc", mutation, "", ".", truth=truth)


def _write_clinical(rng, folder: Path, mutation: str, limit: int) -> Case:
    frame = _matrix(rng, n_samples=int(rng.integers(4, 12)))
    (folder / "expr.tsv").write_text(_table_text(frame, "\t", True))
    n = len(frame)
    time = np.round(rng.uniform(1, 3000, n), 1).astype(object)
    event = rng.integers(0, 2, n).astype(object)
    ids = list(frame.index)
    if mutation == "clin_bad_time":
        time[int(rng.integers(n))] = str(rng.choice(["soon", "1e400", "-inf", "[Unknown]"]))
    elif mutation == "clin_bad_event":
        event[int(rng.integers(n))] = str(rng.choice(["maybe", "2", "1:DECEASED", "-1"]))
    elif mutation == "clin_negative":
        time[int(rng.integers(n))] = -float(rng.integers(1, 100))
    elif mutation == "clin_huge_id":
        ids[int(rng.integers(n))] = "C" * int(rng.integers(2_000, 70_000))
    elif mutation == "clin_dup_ids":
        ids[-1] = ids[0]
    table = pd.DataFrame({"sample": ids, "OS.time": time, "OS": event,
                          "stage": rng.choice(["I", "II", "[Not Available]"], n)})
    if mutation == "clin_wide":
        extra = pd.DataFrame(rng.integers(0, 3, size=(n, 300)),
                             columns=[f"c{k}" for k in range(300)])
        table = pd.concat([table, extra], axis=1)
    data = table.to_csv(sep="\t", index=False).encode()
    name = "clinical.tsv"
    if mutation == "clin_nul":
        data = data[:len(data) // 2] + b"\x00" + data[len(data) // 2:]
    elif mutation == "clin_flip":
        data = _mutate_bytes(data, "flip", rng)
    elif mutation == "clin_truncate":
        data = _mutate_bytes(data, "truncate", rng)
    elif mutation == "clin_bomb":
        data, name = _bomb(data, limit * 3, members=int(rng.integers(1, 20))), "clinical.tsv.gz"
    elif mutation == "clin_empty":
        data = b""
    (folder / name).write_bytes(data)
    expect = "ok" if mutation in ("none", "clin_wide", "clin_dup_ids") else ""
    return Case("clinical", mutation, expect, "expr.tsv", clinical=name,
                options={"orientation": "genes_by_samples"}, truth=frame)


def _write_archs4(rng, folder: Path, mutation: str, limit: int) -> Case:
    """An ARCHS4-layout gene-count file (tests/fixtures/archs4_layout.py), then a mutation."""
    import h5py

    from tests.fixtures.archs4_layout import write_archs4

    frame = _matrix(rng)
    counts = np.round(frame.to_numpy() * 10).astype(np.uint32)
    n, g = counts.shape
    series = [f"GSE{i % 2 + 1}" for i in range(n)]
    samples = {"geo_accession": [f"GSM{500 + i}" for i in range(n)], "series_id": series,
               "title": [f"sample {i}" for i in range(n)],
               "singlecellprobability": [0.9 if i == n - 1 else 0.1 for i in range(n)]}
    if mutation == "a4_text_prob":
        samples["singlecellprobability"] = [str(v) for v in samples["singlecellprobability"]]
    if mutation == "a4_dup_ids":
        samples["geo_accession"][1] = samples["geo_accession"][0]
    genes = {"symbol": [f"SYM{i}" for i in range(g)],
             "ensembl_gene_id": [f"ENSG{i:011d}.{i % 5 + 1}" for i in range(1, g + 1)]}
    path = write_archs4(folder / "human_gene_v2.h5", counts, samples, genes,
                        genes_by_samples=mutation != "a4_samples_by_genes",
                        chunks=(2, 2) if rng.random() < 0.5 else None)
    with h5py.File(path, "r+") as f:
        _archs4_mutation(f, mutation, counts)
    if mutation in _BYTES:
        path.write_bytes(_mutate_bytes(path.read_bytes(), mutation, rng))
    options, keep = {}, np.ones(n, dtype=bool)
    if mutation in ("a4_select", "a4_text_prob"):
        options = {"select": {"series": ["GSE1"], "max_singlecell_prob": 0.5}}
        keep = (np.arange(n) % 2 == 0) & (np.arange(n) != n - 1)
    elif mutation == "a4_no_match":
        options = {"select": {"series": ["GSE404"]}}
    elif mutation == "a4_bad_regex":
        options = {"select": {"meta_regex": {"title": "(unclosed"}}}
    truth = pd.DataFrame(counts[keep].astype(np.float32),
                         index=np.array(samples["geo_accession"])[keep], columns=frame.columns)
    return Case("archs4", mutation, "", path.name, options=options, truth=truth)


def _archs4_mutation(f, mutation: str, counts: np.ndarray) -> None:
    shape = f["data/expression"].shape
    if mutation in ("a4_del_expression", "a4_text_counts", "a4_huge_shape", "a4_negative",
                    "a4_nan_counts"):
        del f["data/expression"]
    if mutation == "a4_text_counts":
        f["data/expression"] = np.full(shape, b"12")
    elif mutation == "a4_huge_shape":       # metadata to match, the matrix never allocated
        n_genes, n_samples = 20_000, 50_000
        for group, n in (("meta/samples", n_samples), ("meta/genes", n_genes)):
            for key in list(f[group].keys()):
                del f[group][key]
        f["meta/samples/geo_accession"] = np.array([f"GSM{i}".encode() for i in range(n_samples)])
        f["meta/genes/symbol"] = np.array([f"G{i}".encode() for i in range(n_genes)])
        f.create_dataset("data/expression", shape=(n_genes, n_samples), dtype=np.uint32,
                         chunks=(1000, 1000), compression="gzip")
    elif mutation == "a4_negative":
        values = counts.T.astype(np.int32)
        values.flat[0] = -3
        f["data/expression"] = values
    elif mutation == "a4_nan_counts":
        f["data/expression"] = np.full(shape, np.nan, dtype=np.float32)
    elif mutation == "a4_del_ids":
        del f["meta/samples/geo_accession"]
    elif mutation == "a4_short_ids":
        ids = f["meta/samples/geo_accession"][()]
        del f["meta/samples/geo_accession"]
        f["meta/samples/geo_accession"] = ids[:-1]
    elif mutation == "a4_no_gene_ids":
        for key in list(f["meta/genes"].keys()):
            del f["meta/genes"][key]


_WRITERS = {"table": _write_table, "table_gz": _write_table_gz, "parquet": _write_parquet,
            "h5ad_dense": _write_h5ad_dense, "h5ad_sparse": _write_h5ad_sparse,
            "gct": _write_gct, "geo": _write_geo, "gdc": _write_gdc,
            "clinical": _write_clinical, "archs4": _write_archs4}
