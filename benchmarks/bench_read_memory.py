"""Peak memory of `read_cohort` per format and shape, against the estimate the reader checks.

Each measurement runs in a fresh process: import, a warm-up read of a tiny file of the same
format, reset the resident high-water mark, then the read. `peak` is VmHWM above the resident
size before the read; `estimate` is the largest `Footprint.estimate` the readers computed
(gexcore/data/_limits.py). A ratio above 1 means the estimate is too low.

Run: .venv/bin/python benchmarks/bench_read_memory.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = [  # (format, shape name, writer arguments)
    ("table", "genes x samples 20000 x 200", {"n": 200, "g": 20000, "gbs": True}),
    ("table", "samples x genes 100 x 20000", {"n": 100, "g": 20000, "gbs": False}),
    ("table", "1-digit cells 20000 x 200", {"n": 200, "g": 20000, "gbs": True, "digits": 0}),
    ("table", "+ text column 20000 x 200", {"n": 200, "g": 20000, "gbs": True, "text": True}),
    ("table", "wide 3 x 300000", {"n": 3, "g": 300000, "gbs": False, "digits": 0}),
    ("table_gz", "genes x samples 20000 x 200", {"n": 200, "g": 20000, "gbs": True, "gz": True}),
    ("parquet", "samples x genes 200 x 20000", {"n": 200, "g": 20000}),
    ("parquet", "samples x genes 5000 x 500", {"n": 5000, "g": 500}),
    ("h5ad", "dense 2000 x 5000", {"n": 2000, "g": 5000}),
    ("h5ad", "sparse 10% 2000 x 5000", {"n": 2000, "g": 5000, "sparse": True}),
    ("gct", "1.2, 20000 x 200", {"n": 200, "g": 20000}),
    ("geo", "20000 x 200", {"n": 200, "g": 20000}),
    ("gdc_star", "20 files x 60000 genes", {"n": 20, "g": 60000}),
    ("clinical", "5000 x 60 text cells", {"n": 5000, "cols": 60}),
]


def _values(rng, n, g, digits=3):
    return np.round(rng.gamma(2.0, 3.0, size=(n, g)), digits)


def write(fmt: str, folder: Path, n: int, g: int = 0, *, gbs: bool = True, digits: int = 3,
          text: bool = False, gz: bool = False, sparse: bool = False, cols: int = 0) -> dict:
    """Write one input; returns read_cohort's arguments."""
    rng = np.random.default_rng(0)
    samples, genes = [f"S{i}" for i in range(n)], [f"G{i}" for i in range(g)]
    if fmt in ("table", "table_gz"):
        frame = pd.DataFrame(_values(rng, n, g, digits), index=samples, columns=genes)
        table = frame.T.rename_axis("gene") if gbs else frame.rename_axis("sample")
        if text:
            table.insert(0, "Description", [f"gene number {i}" for i in range(len(table))])
        path = folder / ("expr.tsv.gz" if gz else "expr.tsv")
        table.to_csv(path, sep="\t", float_format="%g", compression="gzip" if gz else None)
        return {"expression": str(path)}
    if fmt == "parquet":
        path = folder / "expr.parquet"
        pd.DataFrame(_values(rng, n, g), index=pd.Index(samples, name="sample"),
                     columns=genes).to_parquet(path)
        return {"expression": str(path)}
    if fmt == "h5ad":
        import anndata as ad
        import scipy.sparse as sp

        X = _values(rng, n, g).astype(np.float32)
        if sparse:
            X = sp.random(n, g, density=0.1, format="csr", random_state=0, dtype=np.float32)
        path = folder / "cohort.h5ad"
        ad.AnnData(X=X, obs=pd.DataFrame(index=samples), var=pd.DataFrame(index=genes)
                   ).write_h5ad(path)
        return {"expression": str(path)}
    if fmt == "gct":
        values = _values(rng, g, n)
        lines = ["#1.2", f"{g}\t{n}", "Name\tDescription\t" + "\t".join(samples)]
        lines += [f"{genes[i]}\tna\t" + "\t".join(f"{v:g}" for v in values[i]) for i in range(g)]
        path = folder / "expr.gct"
        path.write_text("\n".join(lines) + "\n")
        return {"expression": str(path)}
    if fmt == "geo":
        values = _values(rng, g, n)
        acc = [f"GSM{i}" for i in range(n)]
        quoted = "\t".join(f'"{a}"' for a in acc)
        lines = ['!Series_geo_accession\t"GSE1"', f"!Sample_geo_accession\t{quoted}",
                 "!series_matrix_table_begin", f'"ID_REF"\t{quoted}']
        lines += [f'"{genes[i]}"\t' + "\t".join(f"{v:g}" for v in values[i]) for i in range(g)]
        lines.append("!series_matrix_table_end")
        path = folder / "GSE1_series_matrix.txt"
        path.write_text("\n".join(lines) + "\n")
        return {"expression": str(path)}
    if fmt == "gdc_star":
        head = ("gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\t"
                "tpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded")
        for i in range(n):
            counts = rng.integers(0, 5000, g)
            body = "\n".join(f"ENSG{j:011d}.1\tSYM{j}\tprotein_coding\t{c}\t{c}\t{c}\t1.5\t1.5\t1.5"
                             for j, c in enumerate(counts))
            (folder / f"f{i}.rna_seq.augmented_star_gene_counts.tsv").write_text(
                "# gene-model: GENCODE v36\n" + head + "\n" + body + "\n")
        return {"expression": str(folder)}
    if fmt == "clinical":
        expr = folder / "expr.tsv"
        ids = [f"TCGA-AA-{i:04d}-01" for i in range(n)]
        pd.DataFrame(_values(rng, 50, n), index=[f"GENE{i}" for i in range(50)],
                     columns=ids).rename_axis("gene").to_csv(expr, sep="\t")
        table = pd.DataFrame({f"c{k}": [f"value {k} {i}" for i in range(n)] for k in range(cols)})
        table.insert(0, "sample", ids)
        path = folder / "clinical.tsv"
        table.to_csv(path, sep="\t", index=False)
        return {"expression": str(expr), "clinical": str(path)}
    raise ValueError(fmt)


def _child(args: dict) -> dict:
    """In a fresh process: warm up, reset VmHWM, read, report peak and the largest estimate."""
    import warnings

    from gexcore.data import _limits, read_cohort

    warnings.simplefilter("ignore")
    estimates = []
    original = _limits.Footprint.check

    def recording(self, path, budget, **counts):
        estimates.append(self.estimate(**{k: v for k, v in counts.items() if k != "what"}))
        return original(self, path, budget, **counts)

    _limits.Footprint.check = recording
    with tempfile.TemporaryDirectory() as tmp:
        small = write(args["fmt"], Path(tmp), **{**args["kwargs"], **_tiny(args["kwargs"])})
        read_cohort(small["expression"], small.get("clinical"))
    estimates.clear()
    Path("/proc/self/clear_refs").write_text("5")          # resets VmHWM to the current RSS
    before = _status("VmRSS")
    read_cohort(args["expression"], args.get("clinical"), max_memory=2**40)
    peak = _status("VmHWM") - before
    return {"peak": peak, "estimate": max(estimates, default=0)}


def _tiny(kwargs: dict) -> dict:
    return {"n": 4, **({"g": 30} if "g" in kwargs else {}), **({"cols": 3} if "cols" in kwargs
                                                             else {})}


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_child(json.loads(sys.argv[2]))))
        return
    rows = []
    for fmt, name, kwargs in SHAPES:
        with tempfile.TemporaryDirectory() as tmp:
            args = write(fmt, Path(tmp), **kwargs)
            args.update(fmt=fmt, kwargs=kwargs)
            size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)],
                                 check=False, capture_output=True, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1",
                                      "OPENBLAS_NUM_THREADS": "1"})
            if out.returncode:
                raise SystemExit(f"{fmt} {name}: child failed\n{out.stderr[-3000:]}")
            got = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((fmt, name, size / 2**20, got["peak"] / 2**20, got["estimate"] / 2**20))
            print(f"{fmt:>9} {name:<30} {rows[-1][2]:8.1f} {rows[-1][3]:8.1f} {rows[-1][4]:8.1f}"
                  f" {rows[-1][3] / max(rows[-1][4], 1e-9):6.2f}", flush=True)
    print("\n| format | shape | file MiB | peak MiB | estimate MiB | peak / estimate |")
    print("|---|---|---|---|---|---|")
    for fmt, name, size, peak, est in rows:
        print(f"| {fmt} | {name} | {size:.1f} | {peak:.0f} | {est:.0f} | {peak / est:.2f} |")


if __name__ == "__main__":
    main()
