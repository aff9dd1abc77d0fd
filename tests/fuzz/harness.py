"""Run `read_cohort` on generated inputs, each in a forked child with a memory and a time limit,
and classify what happened.

Outcomes: `ok` (read, and the result is valid), `error` (refused with a GexError naming the
file), and the bugs: `crash` (any other exception), `signal` (killed by a signal, e.g.
SIGSEGV), `timeout`, `invalid` (accepted, but the result is invalid or the case had to fail),
`refused` (a valid file refused), `memory` (peak RSS above the stated limit, or MemoryError),
`unnamed` (a GexError whose message names no file of the case), `changed` (an input file was
modified).

    python -m tests.fuzz.harness --n 300 --seed 0        # prints a JSON summary
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BUGS = ("crash", "signal", "timeout", "invalid", "refused", "memory", "unnamed", "changed")
LIMIT = 64 * 2**20                     # max_memory given to read_cohort, bytes
TIMEOUT = 60.0                         # seconds per case: generous, so only a hang trips it


@dataclass
class Result:
    """One case's outcome."""

    index: int
    format: str
    mutation: str
    expect: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0
    peak_mib: float = 0.0               # child's peak RSS above the parent's at fork


@dataclass
class Summary:
    """Counts by format and outcome, plus every bug with its reproducer's (seed, index)."""

    seed: int
    n: int
    limit_mib: float
    timeout_s: float
    counts: dict = field(default_factory=dict)       # format -> outcome -> count
    bugs: list = field(default_factory=list)
    max_peak_mib: dict = field(default_factory=dict)  # format -> largest peak
    seconds: float = 0.0

    @property
    def n_bugs(self) -> int:
        return len(self.bugs)


def run(n: int, seed: int = 0, *, limit: int = LIMIT, timeout: float = TIMEOUT,
        start: int = 0, progress=None) -> Summary:
    """Generate and run cases `start .. start + n - 1` of run `seed`."""
    _warm_up()
    from tests.fuzz.generate import make_case

    summary = Summary(seed=seed, n=n, limit_mib=limit / 2**20, timeout_s=timeout)
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="gex-fuzz-"))
    try:
        for index in range(start, start + n):
            folder = root / f"case{index}"
            folder.mkdir()
            case = make_case(seed, index, folder, limit=limit)
            result = run_case(case, folder, index, limit=limit, timeout=timeout)
            _record(summary, result, seed)
            shutil.rmtree(folder, ignore_errors=True)
            if progress is not None:
                progress(index - start + 1, summary)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summary.seconds = time.perf_counter() - t0
    return summary


def _record(summary: Summary, result: Result, seed: int) -> None:
    by_format = summary.counts.setdefault(result.format, {})
    by_format[result.outcome] = by_format.get(result.outcome, 0) + 1
    summary.max_peak_mib[result.format] = round(max(summary.max_peak_mib.get(result.format, 0),
                                                    result.peak_mib), 1)
    if result.outcome in BUGS:
        summary.bugs.append({"seed": seed, "index": result.index, "format": result.format,
                             "mutation": result.mutation, "outcome": result.outcome,
                             "detail": result.detail[-1500:]})


def run_case(case, folder: Path, index: int, *, limit: int, timeout: float) -> Result:
    """Fork, read the case in the child, and classify; the parent never runs a reader."""
    before = _digests(folder)
    rss_at_fork = _rss_bytes()
    read_fd, write_fd = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:                                          # child
        os.setpgid(0, 0)                   # its own group: a timeout kills what it forked too
        os.close(read_fd)
        _child(case, folder, limit, write_fd)
        os._exit(0)
    os.close(write_fd)
    payload, timed_out = _collect(read_fd, pid, timeout)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - t0
    peak = max(usage.ru_maxrss * 1024 - rss_at_fork, 0)
    result = Result(index, case.format, case.mutation, case.expect, "", seconds=seconds,
                    peak_mib=peak / 2**20)
    if timed_out:
        result.outcome, result.detail = "timeout", f"no answer after {timeout:.0f} s"
    elif os.WIFSIGNALED(status):
        result.outcome = "signal"
        result.detail = f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    elif not payload:
        result.outcome, result.detail = "crash", f"child exited {os.WEXITSTATUS(status)} silently"
    else:
        answer = json.loads(payload)
        result.outcome, result.detail = answer["outcome"], answer["detail"]
        # Peak RSS of the read itself, above the child's resident size right after the fork.
        peak = answer["read_peak"]
        result.peak_mib = peak / 2**20
    if result.outcome in ("ok", "error") and peak > limit:
        result.outcome = "memory"
        result.detail = f"peak {peak / 2**20:.0f} MiB > limit {limit / 2**20:.0f} MiB"
    if result.outcome in ("ok", "error") and _digests(folder) != before:
        result.outcome, result.detail = "changed", "an input file was modified"
    return result


def _collect(fd: int, pid: int, timeout: float) -> tuple[bytes, bool]:
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                return b"", True
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return b"".join(chunks), False
                chunks.append(chunk)
    finally:
        os.close(fd)


def _child(case, folder: Path, limit: int, fd: int) -> None:
    """In the forked child: limits, the read, an independent check of the result."""
    import warnings

    anon_start = _status_bytes("RssAnon")
    warnings.simplefilter("ignore")
    headroom = _vm_bytes() + 4 * limit + 512 * 2**20     # a safety net under the real check
    resource.setrlimit(resource.RLIMIT_AS, (headroom, headroom))
    from gexcore.data.read import read_cohort
    from gexcore.errors import GexError

    read_peak = -1
    try:
        expression = folder / case.expression
        clinical = folder / case.clinical if case.clinical else None
        try:
            adata = read_cohort(expression, clinical, max_memory=limit, **case.options)
        finally:
            read_peak = _anon_peak() - anon_start
        problems = validity_problems(adata, case, folder)
        if problems:
            outcome, detail = "invalid", "; ".join(problems)
        else:
            outcome, detail = "ok", ""
    except GexError as err:
        message = str(err)
        names = {p.name for p in folder.rglob("*")} | {folder.name}
        if case.expect == "ok":
            outcome, detail = "refused", message
        elif not any(name in message for name in names):
            outcome, detail = "unnamed", message
        else:
            outcome, detail = "error", message
    except MemoryError:
        outcome, detail = "memory", traceback.format_exc()
    except BaseException:                                    # noqa: BLE001 - a bug to report
        outcome, detail = "crash", traceback.format_exc()
    os.write(fd, json.dumps({"outcome": outcome, "detail": detail[-4000:],
                             "read_peak": max(read_peak, 0)}).encode())
    os.close(fd)


def validity_problems(adata, case, folder: Path) -> list[str]:
    """What is wrong with an accepted result, checked without gexcore's own checks."""
    import numpy as np
    from anndata import AnnData

    if case.expect == "error":
        return [f"accepted although '{case.mutation}' makes the input invalid"]
    if not isinstance(adata, AnnData):
        return [f"returned {type(adata).__name__}, not AnnData"]
    X = adata.X
    out = []
    if adata.n_obs < 1 or adata.n_vars < 1:
        out.append(f"shape {adata.shape}")
    if not isinstance(X, np.ndarray) or X.dtype != np.float32:
        out.append(f"X is {type(X).__name__} {getattr(X, 'dtype', '')}")
        return out
    if np.isinf(X).any():
        out.append("X holds inf")
    if X.size and np.isnan(X).all():
        out.append("X is all NaN")
    if adata.obs_names.has_duplicates or adata.var_names.has_duplicates:
        out.append("duplicate obs or var names")
    if (adata.obs_names.astype(str).str.strip() == "").any():
        out.append("empty sample id")
    if case.expect == "ok" and case.truth is not None:
        out += _compare(adata, case.truth)
    try:
        adata.write_h5ad(folder.parent / f"{folder.name}.out.h5ad")
    except Exception as err:                                 # noqa: BLE001 - reported
        out.append(f"result cannot be saved as .h5ad ({type(err).__name__}: {err})")
    finally:
        (folder.parent / f"{folder.name}.out.h5ad").unlink(missing_ok=True)
    return out


def _compare(adata, truth) -> list[str]:
    """Values and sample ids against what the generator wrote (genes by position)."""
    import numpy as np

    want = truth.to_numpy(dtype=np.float64)
    if adata.shape != want.shape:
        return [f"shape {adata.shape}, expected {want.shape}"]
    if list(adata.obs_names) != [str(s) for s in truth.index]:
        got_ids, want_ids = list(adata.obs_names)[:3], [str(s) for s in truth.index][:3]
        return [f"sample ids {got_ids}..., expected {want_ids}..."]
    got = adata.X.astype(np.float64)
    same = np.isclose(got, want, rtol=1e-5, atol=1e-6) | (np.isnan(got) & np.isnan(want))
    if not same.all():
        r, c = np.argwhere(~same)[0]
        return [f"value at ({r}, {c}) is {got[r, c]}, expected {want[r, c]}"]
    return []


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _status_bytes(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _anon_peak() -> int:
    """Peak private memory so far: the resident high-water mark less the file-backed pages.

    A forked child faults the parent's shared-library pages back in as it runs them; those
    are page cache, not memory the read allocated, so they are taken out.
    """
    return _status_bytes("VmHWM") - _status_bytes("RssFile") - _status_bytes("RssShmem")


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _vm_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _warm_up() -> None:
    """Import and exercise every reader once in the parent, so a child's peak is its own."""
    import warnings

    import anndata  # noqa: F401
    import h5py  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from gexcore.data import read
    from tests.fuzz.generate import FORMATS, make_case

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="gex-fuzz-warm-") as tmp:
        for i, fmt in enumerate(FORMATS):
            folder = Path(tmp) / fmt
            folder.mkdir()
            for index in range(i, 400, len(FORMATS)):     # the first unmutated case per format
                case = make_case(2**31, index, folder, limit=LIMIT)
                if case.mutation == "none":
                    break
                shutil.rmtree(folder)
                folder.mkdir()
            read.read_cohort(folder / case.expression,   # valid: must read
                             folder / case.clinical if case.clinical else None, **case.options)


def format_table(summary: Summary) -> str:
    """Markdown table: one row per format, one column per outcome, plus peak MiB."""
    outcomes = ["ok", "error", *BUGS]
    lines = ["| format | " + " | ".join(outcomes) + " | peak MiB |",
             "|---|" + "---|" * (len(outcomes) + 1)]
    total = Counter()
    for fmt in sorted(summary.counts):
        row = summary.counts[fmt]
        total.update(row)
        lines.append(f"| {fmt} | " + " | ".join(str(row.get(o, 0)) for o in outcomes)
                     + f" | {summary.max_peak_mib.get(fmt, 0):.1f} |")
    lines.append("| **all** | " + " | ".join(str(total.get(o, 0)) for o in outcomes)
                 + f" | {max(summary.max_peak_mib.values(), default=0):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--limit-mib", type=float, default=LIMIT / 2**20)
    parser.add_argument("--timeout", type=float, default=TIMEOUT)
    args = parser.parse_args(argv)
    summary = run(args.n, args.seed, limit=int(args.limit_mib * 2**20), timeout=args.timeout,
                  start=args.start)
    json.dump({**summary.__dict__, "n_bugs": summary.n_bugs}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
