"""Parse untrusted files in a child process with a memory and a time limit, so that no upload
can crash, freeze or exhaust the server: whatever the child does, the caller gets an AnnData or
one `InputError` naming the file and the fix.

The child (`python -m gexcore.data.isolated REQUEST.json`) sets its own limits before it imports
a reader, runs `read_cohort`, and writes `result.h5ad` (from the validated AnnData it built) or
`error.json` next to the request. Nothing of the user's file is unpickled or executed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from anndata import AnnData

from gexcore.errors import InputError

__all__ = ["ParseLimits", "read_isolated"]

logger = logging.getLogger(__name__)

_REQUEST, _RESULT, _ERROR = "request.json", "result.h5ad", "error.json"
_GIB = 2**30


@dataclass(frozen=True)
class ParseLimits:
    """What one parse may use: address space of the child in bytes, and wall-clock seconds."""

    memory_bytes: int = 4 * _GIB
    seconds: float = 300.0

    @classmethod
    def from_env(cls) -> ParseLimits:
        """`GEX_PARSE_MEMORY_GB` and `GEX_PARSE_SECONDS` override the defaults."""
        default = cls()
        memory = float(os.environ.get("GEX_PARSE_MEMORY_GB", default.memory_bytes / _GIB))
        seconds = float(os.environ.get("GEX_PARSE_SECONDS", default.seconds))
        return cls(int(memory * _GIB), seconds)


def read_isolated(expression: Path, clinical: Path | None = None, *,
                  limits: ParseLimits | None = None, **options) -> AnnData:
    """`read_cohort(expression, clinical, **options)` run in a limited child process.

    Both files must sit in a folder the caller owns (the child writes its result there).
    Raises `InputError` for every failure: the reader's own message, or what stopped the child.
    """
    import anndata

    limits = limits or ParseLimits.from_env()
    folder = Path(expression).parent
    # The reader refuses by its own estimate first, with its own message, below the hard limit.
    options.setdefault("max_memory", int(limits.memory_bytes * 0.75))
    request = {"expression": str(expression), "clinical": None if clinical is None
               else str(clinical), "options": options, "limits": asdict(limits)}
    (folder / _REQUEST).write_text(json.dumps(request, default=str), encoding="utf-8")
    name = Path(expression).name
    try:
        done = subprocess.run(_child_command(folder / _REQUEST), env=_child_env(),
                              capture_output=True, timeout=limits.seconds, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"{name}: reading stopped after {limits.seconds:.0f} s; the file is "
                         "too large or malformed. Check its format, or split it.") from None
    if (folder / _ERROR).exists():
        error = json.loads((folder / _ERROR).read_text(encoding="utf-8"))
        if error["kind"] == "bug":
            logger.warning("reader bug on %s: %s", name, done.stderr.decode(errors="replace"))
        raise InputError(error["message"])
    if done.returncode != 0 or not (folder / _RESULT).exists():
        logger.warning("isolated parse of %s ended with %s: %s", name, done.returncode,
                       done.stderr.decode(errors="replace")[-2000:])
        raise InputError(_stopped(name, done.returncode, limits))
    return anndata.read_h5ad(folder / _RESULT)


def _stopped(name: str, returncode: int, limits: ParseLimits) -> str:
    """The user's message for a child that died without writing its own error."""
    if returncode < 0:
        sig = signal.Signals(-returncode).name
        return (f"{name}: the reader stopped on this file ({sig}); it is probably corrupt. "
                "Export it again from its source, or save it as CSV.")
    return (f"{name}: the reader stopped on this file (exit code {returncode}), which can mean "
            f"it needs more than {limits.memory_bytes / _GIB:.1f} GiB to parse; subset it or "
            "save it as CSV.")


def _child_command(request: Path) -> list[str]:
    return [sys.executable, "-m", "gexcore.data.isolated", str(request)]


def _child_env() -> dict[str, str]:
    # One BLAS thread: each thread reserves address space that RLIMIT_AS counts.
    threads = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**os.environ, **threads}


def _child(request_path: Path) -> int:
    """The child's side: limits first, then the reader; the outcome goes to files."""
    import resource

    request = json.loads(request_path.read_text(encoding="utf-8"))
    folder = request_path.parent
    memory = int(request["limits"]["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(request["limits"]["seconds"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    name = Path(request["expression"]).name
    try:
        from gexcore.data.read import read_cohort

        adata = read_cohort(request["expression"], request["clinical"], **request["options"])
        adata.write_h5ad(folder / _RESULT)
        return 0
    except InputError as err:
        kind, message = "input", str(err)
    except MemoryError:
        kind, message = "memory", (f"{name}: parsing needs more than {memory / _GIB:.1f} "
                                   "GiB of memory; subset the file (fewer genes or samples) "
                                   "or save it as CSV.")
    except Exception as err:   # any reader bug becomes the one message the user sees
        logger.exception("reader failed on %s", name)
        kind, message = "bug", (f"{name}: GexScope could not read this file "
                                f"({type(err).__name__}). Check that it is one of the supported "
                                "formats, or save it as CSV.")
    (folder / _ERROR).write_text(json.dumps({"kind": kind, "message": message}),
                                 encoding="utf-8")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(_child(Path(sys.argv[1])))
