"""What a read may cost: the memory each format needs (measured), and how long a label may be.

Every reader checks its estimate before the large allocations, so a file too big for the budget
fails with an `InputError` instead of exhausting the machine; `benchmarks/bench_read_memory.py`
measures the peaks these coefficients must cover (table in `benchmarks/RESULTS.md`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gexcore.errors import InputError

__all__ = ["FOOTPRINTS", "MAX_LABEL_CHARS", "Footprint", "available_memory", "check_labels",
           "memory_budget"]

# Sample and gene ids, column names: real ones are under ~100 characters. Longer ones are a
# damaged file, and they are refused before any regex sees them (regex cost grows with length).
MAX_LABEL_CHARS = 1000


@dataclass(frozen=True)
class Footprint:
    """Peak bytes of one read above the resting process: `fixed` plus so much per byte of text,
    per cell, per cell read as text (a Python string each) and per column."""

    per_byte: float
    per_cell: float
    per_text_cell: float = 0.0
    per_column: float = 0.0
    fixed: int = 2**20

    def estimate(self, *, n_bytes: int = 0, n_cells: int = 0, n_text_cells: int = 0,
                 n_columns: int = 0) -> int:
        """Estimated peak bytes above the process's resting size."""
        return int(self.fixed + self.per_byte * n_bytes + self.per_cell * n_cells
                   + self.per_text_cell * n_text_cells + self.per_column * n_columns)

    def text_limit(self, budget: int) -> int:
        """Largest decompressed text (bytes) worth reading at all under `budget`."""
        return max(int(budget / self.per_byte), 0)

    def check(self, path: Path, budget: int, *, n_bytes: int = 0, n_cells: int = 0,
              n_text_cells: int = 0, n_columns: int = 0, what: str = "") -> None:
        """Raise `InputError` when the estimate exceeds `budget` bytes."""
        need = self.estimate(n_bytes=n_bytes, n_cells=n_cells, n_text_cells=n_text_cells,
                             n_columns=n_columns)
        if need > budget:
            shape = what or f"{n_cells:,} cells"
            raise InputError(
                f"{Path(path).name}: reading {shape} needs about {_size(need)} of memory, more "
                f"than the {_size(budget)} allowed; subset the genes or samples first, or convert "
                "it to .h5ad on a larger machine (`gex convert`).")


# Measured with benchmarks/bench_read_memory.py (peak RSS above the resting process, the
# largest ratio over narrow, wide and text-heavy shapes, plus a margin).
FOOTPRINTS: dict[str, Footprint] = {
    "table": Footprint(per_byte=4.0, per_cell=60.0, per_text_cell=200.0, per_column=700.0),
    "parquet": Footprint(per_byte=1.0, per_cell=80.0, per_text_cell=200.0,
                         per_column=16_384.0),
    "h5ad": Footprint(per_byte=1.0, per_cell=20.0, per_text_cell=200.0),
    # per cell: the float32 read plus merging duplicated symbols (ARCHS4 has many)
    "archs4": Footprint(per_byte=0.0, per_cell=28.0, per_text_cell=200.0, fixed=16 * 2**20),
    "gct": Footprint(per_byte=4.0, per_cell=60.0, per_text_cell=200.0, per_column=700.0),
    "geo": Footprint(per_byte=4.0, per_cell=60.0, per_text_cell=200.0, per_column=700.0),
    "gdc_star": Footprint(per_byte=4.0, per_cell=60.0, per_text_cell=350.0),
    "clinical": Footprint(per_byte=4.0, per_cell=200.0, per_text_cell=200.0, per_column=2000.0),
}


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def available_memory() -> int:
    """Bytes this process can still allocate: the least of MemAvailable, a cgroup limit and
    RLIMIT_AS headroom (best effort; 8 GiB when none can be read)."""
    limits = [_meminfo_available(), _cgroup_headroom(), _rlimit_headroom()]
    known = [v for v in limits if v is not None]
    return max(min(known), 0) if known else 8 * 2**30


def memory_budget(max_memory: int | None = None) -> int:
    """Bytes one read may use: `max_memory` if given, else half of what is available."""
    return int(max_memory) if max_memory is not None else available_memory() // 2


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_headroom() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        return None if limit == "max" else int(limit) - int(used)
    except (OSError, ValueError):
        return None


def _rlimit_headroom() -> int | None:
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/statm", encoding="ascii") as fh:
            size = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        return soft - size
    except (ImportError, OSError, ValueError, IndexError):
        return None


def check_labels(labels: Iterable[object], path: Path, what: str, *, where: str = "",
                 allow_empty: bool = False) -> None:
    """Refuse ids over `MAX_LABEL_CHARS` characters (and empty ones unless `allow_empty`).

    `what` is "sample id", "gene id", "column name"; `where` says where they were read.
    Runs in linear time, before any regex is applied to the labels.
    """
    text = [str(v) for v in labels]
    if not text:
        return
    length = np.fromiter(map(len, text), dtype=np.int64, count=len(text))
    long = np.flatnonzero(length > MAX_LABEL_CHARS)
    at = f" ({where})" if where else ""
    if len(long):
        i = int(long[0])
        raise InputError(
            f"{Path(path).name}: {what} number {i + 1}{at} is {int(length[i]):,} characters long "
            f"(starts '{text[i][:40]}'); ids may be at most {MAX_LABEL_CHARS:,}. The file is "
            f"damaged or a separator is missing; fix that {what.split()[0]} or re-export the file.")
    if allow_empty:
        return
    blank = np.flatnonzero(np.fromiter((not t.strip() for t in text), dtype=bool,
                                       count=len(text)))
    if len(blank):
        i = int(blank[0])
        raise InputError(
            f"{Path(path).name}: {what} number {i + 1}{at} is empty ({len(blank)} empty "
            f"{what}(s)); give every {what.split()[0]} an id, or delete it.")
