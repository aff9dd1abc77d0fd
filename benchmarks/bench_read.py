"""Reading speed and peak memory: read_cohort against a bare pandas read of the same file.

Run: .venv/bin/python benchmarks/bench_read.py
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from gexcore.data import read_cohort
from gexcore.data.simulate import simulate_cohort


def _measure(fn) -> tuple[float, float]:
    """Best-of-3 seconds and peak traced MiB of one call."""
    times = []
    for _ in range(3):
        tracemalloc.start()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return min(times), peak


def _baseline(path: Path) -> np.ndarray:
    """What a user would write by hand: pandas with its defaults, transposed to samples x genes."""
    return pd.read_csv(path, index_col=0).T.to_numpy(np.float32)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, g in ((3000, 2000), (10000, 5000)):
            adata = simulate_cohort(n_samples=n, n_genes=g)
            frame = pd.DataFrame(adata.X.T, index=adata.var_names, columns=adata.obs_names)
            for suffix in (".csv", ".csv.gz"):
                path = Path(tmp) / f"expr_{n}x{g}{suffix}"
                frame.to_csv(path, float_format="%.4g")
                ours_s, ours_mb = _measure(lambda: read_cohort(path))
                base_s, base_mb = _measure(lambda: _baseline(path))
                rows.append((f"{n}x{g}", suffix, path.stat().st_size / 2**20, ours_s, base_s,
                             ours_s / base_s, ours_mb, base_mb))
    print(f"{'size':>11} {'file':>7} {'MiB':>6} {'read_cohort s':>13} {'pandas s':>9} "
          f"{'ratio':>6} {'peak MiB':>9} {'pandas peak':>11}")
    for size, suffix, mib, ours, base, ratio, omb, bmb in rows:
        print(f"{size:>11} {suffix:>7} {mib:6.1f} {ours:13.2f} {base:9.2f} {ratio:6.2f} "
              f"{omb:9.0f} {bmb:11.0f}")


if __name__ == "__main__":
    main()
