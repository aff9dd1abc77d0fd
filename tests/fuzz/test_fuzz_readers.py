"""A bounded fuzz run in CI: generated malformed files of every format, each read in a forked
child with a memory and a time limit; no case may crash, die by a signal, hang, blow the
memory limit, change its input, or be accepted although invalid. The long run is
`benchmarks/fuzz_readers.py` (results in benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
N_CASES = 180                  # 18 per format (10 formats); ~15 s of CPU, deterministic (seed 0)


def test_bounded_fuzz_run_finds_no_bugs():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "tests.fuzz.harness", "--n", str(N_CASES),
                          "--seed", "0"], cwd=ROOT, env=env, capture_output=True, text=True, check=False,
                         timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert sum(sum(c.values()) for c in summary["counts"].values()) == N_CASES
    bugs = "\n".join(f"seed {b['seed']} case {b['index']} ({b['format']}, {b['mutation']}): "
                     f"{b['outcome']}: {b['detail'][-600:]}" for b in summary["bugs"])
    assert summary["n_bugs"] == 0, bugs
    assert all(peak <= summary["limit_mib"] for peak in summary["max_peak_mib"].values())
