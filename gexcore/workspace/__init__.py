"""Per-user workspaces on disk, the run registry, and background jobs run by worker processes.

```python
ws = open_workspace("workspace", user="alice")
cohort_id = ws.add_cohort(adata, "TCGA BRCA")
run_id = submit(ws, PretrainJob(cohort=cohort_id, method="scarf", train=TrainConfig(epochs=40)))
ws.run(run_id).status, ws.run(run_id).fraction      # poll; survives a browser refresh
queue_position("workspace", run_id)                  # (2, 340.0): second in line, ~6 min
recover(ws)                                          # each poll: end dead jobs, start queued
all_jobs("workspace"); cancel_job("workspace", "bob", run_id)       # every user's (admin)
```
"""

from __future__ import annotations

import importlib

from gexcore.workspace.dispatcher import cancel_job, dispatch
from gexcore.workspace.jobs import (
    INTERRUPTED,
    JOB_KINDS,
    JobCancelled,
    JobContext,
    JobKind,
    cancel,
    recover,
    register_job_kind,
    submit,
)
from gexcore.workspace.queue import QueueEntry, all_jobs, queue_position
from gexcore.workspace.runs import ACTIVE, STATUSES, RunInfo, Status
from gexcore.workspace.store import (
    CohortInfo,
    Workspace,
    array_name,
    embedding_name,
    open_workspace,
)

__all__ = [
    "ACTIVE", "INTERRUPTED", "JOB_KINDS", "STATUSES", "CohortInfo", "EmbedJob", "EvaluateJob",
    "ImputeJob", "JobCancelled", "JobContext", "JobKind", "PretrainJob", "QueueEntry", "RunInfo",
    "Status", "Workspace", "all_jobs", "array_name", "cancel", "cancel_job", "dispatch",
    "embedding_name", "new_encoder", "open_workspace", "queue_position", "recover",
    "register_job_kind", "submit",
]

# The built-in job kinds load (and register) on first use, as `gexcore.evaluate` loads its
# names: a worker, `gex` or a page that needs none of them starts without anndata and pandas.
# A worker imports the module recorded with each run, so every kind is found where it runs.
_KIND_HOMES = {"EvaluateJob": "evaluate_job", "ImputeJob": "impute_job", "EmbedJob": "pretrain",
               "PretrainJob": "pretrain", "new_encoder": "pretrain"}


def __getattr__(name: str):
    if name in _KIND_HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_KIND_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
