"""Touch every attribute and data chunk an HDF5 reader will read, in a separate process
(an .h5ad's X, obs and var; an ARCHS4 file's data and meta).

libhdf5 can crash (SIGSEGV) on a damaged file: a flipped byte in an attribute message was
enough. No check from Python prevents that, so the reader first lets a child process read
everything it will read; if the child dies by a signal, the file is refused and the caller
lives on. Imports only h5py and numpy, so it also runs as a script (`run_path`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

__all__ = ["probe_failure"]

_SLAB_BYTES = 16 * 2**20
H5AD_KEYS = ("X", "obs", "var")


def touch(path: str, keys: tuple[str, ...] = H5AD_KEYS,
          max_dataset_bytes: int | None = None) -> None:
    """Read every attribute and, slab by slab, every dataset under the top-level `keys`;
    with `max_dataset_bytes`, only the first slabs up to that many bytes of each dataset."""
    import h5py

    def visit(_name, obj):
        for key in obj.attrs:
            obj.attrs[key]
        if isinstance(obj, h5py.Dataset):
            if obj.ndim == 0 or obj.size == 0:
                obj[()]
                return
            row = max(obj.dtype.itemsize * (obj.size // max(obj.shape[0], 1)), 1)
            step = max(_SLAB_BYTES // row, 1)
            stop = obj.shape[0] if max_dataset_bytes is None else \
                min(obj.shape[0], max(max_dataset_bytes // row, 1))
            for start in range(0, stop, step):
                obj[start:min(start + step, stop)]

    with h5py.File(path, "r") as f:
        for key in f.attrs:
            f.attrs[key]
        for key in keys:
            obj = f.get(key)
            if obj is None:
                continue
            visit(key, obj)
            if isinstance(obj, h5py.Group):
                obj.visititems(visit)


def probe_failure(path: str, *, timeout: float | None = None,
                  keys: tuple[str, ...] = H5AD_KEYS, max_dataset_bytes: int | None = None
                  ) -> str:
    """'' if a child process read the file to the end (or raised); else what stopped it
    ("SIGSEGV", "no answer after 30 s": libhdf5 can also loop forever on a damaged file).

    Forks when this process runs a single Python thread (fast), else starts a fresh
    interpreter (a fork of a threaded server could inherit a held lock). The default
    `timeout` is 30 s plus 1 s per 20 MB of file.
    """
    if timeout is None:
        timeout = 30.0 + os.path.getsize(path) / 20e6
    if hasattr(os, "fork") and threading.active_count() == 1:
        return _forked(path, timeout, keys, max_dataset_bytes)
    run = ("import runpy, sys; sys.argv = sys.argv[1:]; "
           "runpy.run_path(sys.argv[0], run_name='__main__')")
    limit = "" if max_dataset_bytes is None else str(max_dataset_bytes)
    try:
        proc = subprocess.run([sys.executable, "-I", "-c", run, __file__, path, limit, *keys],
                              capture_output=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no answer after {timeout:.0f} s"
    return signal.Signals(-proc.returncode).name if proc.returncode < 0 else ""


def _forked(path: str, timeout: float, keys: tuple[str, ...],
            max_dataset_bytes: int | None) -> str:
    pid = os.fork()
    if pid == 0:                                        # child: never returns
        code = 0
        try:
            touch(path, keys, max_dataset_bytes)
        except BaseException:                           # noqa: BLE001 - the parent re-reads
            code = 3
        os._exit(code)
    deadline, pause = time.monotonic() + timeout, 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else ""
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return f"no answer after {timeout:.0f} s"
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


if __name__ == "__main__":
    try:
        # argv: path [max_dataset_bytes or '' [keys...]]; no keys means an .h5ad's
        cap = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else None
        touch(sys.argv[1], tuple(sys.argv[3:]) or H5AD_KEYS, cap)
    except Exception:                                   # noqa: BLE001 - the parent re-reads
        sys.exit(3)
