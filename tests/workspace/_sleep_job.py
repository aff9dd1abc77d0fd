"""A fast, torch-free job kind for the workspace tests: sleeps in steps, or fails on request."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gexcore.errors import GexError
from gexcore.progress import Progress
from gexcore.workspace import JobCancelled, JobContext, register_job_kind


@dataclass(frozen=True)
class SleepJob:
    steps: int = 3
    step_s: float = 0.01
    fail: str = ""                       # "", "gex" or "crash"
    name: str = ""


def run_sleep(job: SleepJob, ctx: JobContext) -> dict:
    for step in range(1, job.steps + 1):
        if ctx.should_stop():
            raise JobCancelled()
        time.sleep(job.step_s)
        ctx.progress(Progress("sleep", step, job.steps))
    (ctx.out_dir / "result.txt").write_text("slept")
    if job.fail == "gex":
        raise GexError("the sleep job was told to fail.")
    if job.fail == "crash":
        return {"ratio": 1 / 0}
    return {"steps": job.steps}


register_job_kind("sleep", SleepJob, run_sleep)
