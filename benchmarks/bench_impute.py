"""Filling a smaller panel: impute_cohort with the shipped encoders against scikit-learn's
KNNImputer (the baseline a user would reach for: neighbours from a reference cohort that has the
genes), on demo samples without 300 of the demo's 2,000 genes.

Time of the whole call (normalise, predict, back to the input's units) and the peak RSS of a
fresh process that runs only that path (torch allocations are not seen by tracemalloc).
Speed only: the shipped encoders were trained on every demo sample, so an error measured here
would flatter them; the held-out quality is in QUALITY.md (`gex evaluate --impute --missing
genes`).

Run: .venv/bin/python benchmarks/bench_impute.py [--samples 1000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from sklearn.impute import KNNImputer

from gexcore.data.demo import assets_dir, load_demo
from gexcore.models.encoder import Encoder
from gexcore.tasks.restore import impute_cohort

DROPPED = 300
PATHS = ("knn", "vime", "transformer")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(path: str, samples: int) -> None:
    """One path in this process: prints seconds, peak RSS after loading, peak RSS after."""
    demo = load_demo("simulated_pancancer")
    reference, query = demo[:-samples], demo[-samples:]
    dropped = np.zeros(demo.n_vars, dtype=bool)
    dropped[np.random.default_rng(0).choice(demo.n_vars, DROPPED, replace=False)] = True
    panel = query[:, ~dropped].copy()
    if path == "knn":
        def fill():
            x = np.where(dropped, np.nan, query.X)
            KNNImputer(n_neighbors=10).fit(reference.X).transform(x)
            return DROPPED
    else:
        encoder = Encoder.load(assets_dir() / "models" / f"demo_{path}")

        def fill():
            return impute_cohort(encoder, panel).uns["imputation"]["n_genes_added"]
    loaded = _peak_mib()
    t0 = time.perf_counter()
    genes = fill()
    print(json.dumps({"seconds": time.perf_counter() - t0, "loaded_mib": loaded,
                      "peak_mib": _peak_mib(), "genes": genes, "n_obs": panel.n_obs,
                      "n_vars": panel.n_vars, "reference": reference.n_obs,
                      "threads": torch.get_num_threads()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="panel samples (the rest "
                        "of the 3,000 demo samples are KNN's reference)")
    parser.add_argument("--one", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args.one, args.samples)
    rows = {}
    for path in PATHS:
        out = subprocess.run([sys.executable, __file__, "--one", path, "--samples",
                              str(args.samples)], capture_output=True, text=True, check=True)
        rows[path] = json.loads(out.stdout.strip().splitlines()[-1])
    first = rows["knn"]
    print(f"{first['n_obs']:,} samples x {first['n_vars']:,} measured genes, {DROPPED} dropped; "
          f"KNN reference {first['reference']:,} samples; torch threads {first['threads']}")
    print(f"{'path':>28} {'s':>7} {'vs KNN':>7} {'RSS loaded':>11} {'RSS peak':>9} "
          f"{'genes filled':>13}")
    for path, r in rows.items():
        name = "sklearn KNNImputer (k=10)" if path == "knn" else f"impute_cohort ({path})"
        print(f"{name:>28} {r['seconds']:7.2f} {r['seconds'] / first['seconds']:7.2f} "
              f"{r['loaded_mib']:11.0f} {r['peak_mib']:9.0f} {r['genes']:13d}")


if __name__ == "__main__":
    main()
