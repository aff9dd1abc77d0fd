"""Saved prediction models in a workspace: each is a finished run of kind `predictor` whose
folder (`runs/<id>/`) is a `gexcore.tasks.predictor` model folder, so models list, share and
delete as runs do (`ws.runs(kind=PREDICTOR_RUN)`, `ws.share("run", id, ...)`, `ws.delete_run`).

```python
run_id = save_predictor(ws, fit_predictor(adata, "classification", label="cancer_type"),
                        "cancer type (expression)", params={"cohort": cohort_id})
load_predictor(ws, run_id).predict(new_cohort)
```
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gexcore.errors import InputError
from gexcore.workspace.runs import insert_run, update_run

if TYPE_CHECKING:
    from gexcore.tasks.predictor import Predictor
    from gexcore.workspace.runs import RunInfo
    from gexcore.workspace.store import Workspace

__all__ = ["PREDICTOR_RUN", "load_predictor", "predictor_runs", "save_predictor"]

PREDICTOR_RUN = "predictor"
_TMP_PREFIX = ".predictor-"          # beside runs/, where the job sweeper never looks
_STALE_TMP_S = 3600.0


def save_predictor(ws: Workspace, model: Predictor, name: str, *,
                   params: dict[str, Any] | None = None) -> str:
    """Store `model` as a new finished `predictor` run named `name`; returns its id.

    The folder is written first, then the row is added as done and the folder renamed into
    place in one transaction: other sessions never see a half-written model.
    """
    if not name or not name.strip():
        raise InputError("a saved model needs a name.")
    _sweep_stale(ws.root)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=ws.root))
    try:
        model.save(tmp / "model")
        now = time.time()
        metrics = {"task": model.task, "n_train": model.info.get("n_train"),
                   "n_genes": len(model.genes)}
        if model.task == "classification":
            metrics["n_classes"] = len(model.classes)
        with ws.connect() as conn:
            run_id = insert_run(conn, PREDICTOR_RUN, name.strip(),
                                {**(params or {}), "task": model.task, **model.target})
            update_run(conn, run_id, status="done", started=now, finished=now,
                       metrics=metrics, progress={"fraction": 1.0, "message": "saved"})
            (tmp / "model").rename(ws.run_dir(run_id))    # before the commit: all or nothing
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return run_id


def predictor_runs(ws: Workspace) -> list[RunInfo]:
    """Saved models, newest first; those shared with this workspace follow its own."""
    return ws.runs(kind=PREDICTOR_RUN, status="done")


def load_predictor(ws: Workspace, run_id: str) -> Predictor:
    """The model of a `predictor` run (own or shared); InputError for any other run."""
    from gexcore.tasks.predictor import Predictor

    run = ws.run(run_id)
    if run.kind != PREDICTOR_RUN:
        raise InputError(f"run {run_id!r} is a {run.kind} run, not a saved prediction model.")
    return Predictor.load(ws.run_dir(run_id))


def _sweep_stale(root: Path) -> None:
    """Remove temp folders of saves killed mid-way (older than an hour: none still writes)."""
    cutoff = time.time() - _STALE_TMP_S
    for path in root.glob(f"{_TMP_PREFIX}*"):
        if path.is_dir() and path.stat().st_mtime < cutoff:
            shutil.rmtree(path, ignore_errors=True)
