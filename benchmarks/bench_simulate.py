"""Time the cohort simulator at two sizes and both value kinds; prints a table, asserts nothing.

Run: `python benchmarks/bench_simulate.py`
"""

from __future__ import annotations

import os
import time

from gexcore.data.simulate import simulate_cohort

SIZES = ((3000, 2000), (10000, 5000))
REPEATS = 3


def _best_seconds(n_samples: int, n_genes: int, values: str) -> tuple[float, float]:
    """Best of REPEATS wall times (s) and the size of X (MB); best-of hides one-off warm-up."""
    times, megabytes = [], 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        adata = simulate_cohort(n_samples=n_samples, n_genes=n_genes, values=values, seed=0)
        times.append(time.perf_counter() - start)
        megabytes = adata.X.nbytes / 2**20
    return min(times), megabytes


def main() -> None:
    print(f"simulate_cohort, best of {REPEATS}, {os.cpu_count()} CPU cores visible")
    print(f"{'size':>13}  {'values':>6}  {'seconds':>8}  {'MB of X':>8}")
    for n_samples, n_genes in SIZES:
        for values in ("log", "counts"):
            seconds, megabytes = _best_seconds(n_samples, n_genes, values)
            print(f"{n_samples:>6}x{n_genes:<6}  {values:>6}  {seconds:>8.2f}  {megabytes:>8.1f}")


if __name__ == "__main__":
    main()
