"""The long fuzz run of the readers: `--n` generated malformed inputs (every format, see
tests/fuzz/generate.py), each read by `read_cohort` in a forked child with a memory limit
(`max_memory` plus an RLIMIT_AS safety net) and a wall-time limit. Prints a table by format
and outcome, the largest peak per child against the limit, and every bug with its (seed,
index) so `python -m tests.fuzz.harness --seed S --start I --n 1` reproduces it.

Run: .venv/bin/python benchmarks/fuzz_readers.py --n 10000 --seed 1
(one core: it sets OMP/OpenBLAS threads to 1 and runs the cases one after another)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz.harness import LIMIT, TIMEOUT, format_table, run


def main() -> int:
    parser = argparse.ArgumentParser(description="Fuzz every reader of read_cohort.")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--limit-mib", type=float, default=LIMIT / 2**20)
    parser.add_argument("--timeout", type=float, default=TIMEOUT)
    args = parser.parse_args()
    t0 = time.perf_counter()

    def progress(done: int, summary) -> None:
        if done % 500 == 0:
            print(f"{done:,} / {args.n:,} cases, {summary.n_bugs} bug(s), "
                  f"{time.perf_counter() - t0:,.0f} s", file=sys.stderr, flush=True)

    summary = run(args.n, args.seed, limit=int(args.limit_mib * 2**20), timeout=args.timeout,
                  start=args.start, progress=progress)
    print(f"{args.n:,} inputs, seed {args.seed}, memory limit {summary.limit_mib:.0f} MiB per "
          f"read, {summary.timeout_s:.0f} s per case, {summary.seconds:,.0f} s in all\n")
    print(format_table(summary))
    print(f"\nbugs: {summary.n_bugs}")
    for bug in summary.bugs:
        print(f"- seed {bug['seed']} case {bug['index']} {bug['format']}/{bug['mutation']}: "
              f"{bug['outcome']}: {bug['detail'][-400:]}")
    return 1 if summary.n_bugs else 0


if __name__ == "__main__":
    sys.exit(main())
