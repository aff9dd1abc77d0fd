"""Per-user workspaces on disk, the run registry, and background jobs run by worker processes.

```python
ws = open_workspace("workspace", user="alice")
cohort_id = ws.add_cohort(adata, "TCGA BRCA")
run_id = submit(ws, PretrainJob(cohort=cohort_id, method="scarf", train=TrainConfig(epochs=40)))
ws.run(run_id).status, ws.run(run_id).fraction      # poll; survives a browser refresh
recover(ws)                                          # at app start: fail runs whose worker died
```
"""

from __future__ import annotations

from gexcore.workspace.evaluate_job import EvaluateJob
from gexcore.workspace.impute_job import ImputeJob
from gexcore.workspace.jobs import (
    INTERRUPTED,
    JOB_KINDS,
    JobCancelled,
    JobContext,
    JobKind,
    acquire_slot,
    cancel,
    recover,
    register_job_kind,
    submit,
)
from gexcore.workspace.pretrain import EmbedJob, PretrainJob, new_encoder
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
    "ImputeJob", "JobCancelled", "JobContext", "JobKind", "PretrainJob", "RunInfo", "Status",
    "Workspace", "acquire_slot", "array_name", "cancel", "embedding_name", "new_encoder",
    "open_workspace", "recover", "register_job_kind", "submit",
]
