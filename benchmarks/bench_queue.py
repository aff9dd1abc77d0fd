"""The job queue: 12 jobs from 3 users through GEX_MAX_PARALLEL slots, real worker processes.

Checks that none is lost and that they start in submission order (first come, first served
over users), and measures what the queue costs: `submit` (insert, enqueue, dispatch pass),
the dispatch latency from one job's slot freeing to the next job being launched, and the start
latency from launch to the job running in its worker (process start and imports). Each job is
the torch-free test job sleeping `--steps` x 50 ms.

Run: .venv/bin/python benchmarks/bench_queue.py [--slots 1] [--jobs 12] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO),
                                                          os.environ.get("PYTHONPATH")]))

from gexcore.workspace import all_jobs, open_workspace, submit
from tests.workspace._sleep_job import SleepJob

USERS = ("ann", "bob", "cy")


def run(slots: int, n_jobs: int, steps: int) -> dict:
    os.environ["GEX_MAX_PARALLEL"] = str(slots)
    os.environ["GEX_MAX_QUEUED"] = str(n_jobs)
    base = Path(tempfile.mkdtemp(prefix="bench_queue_")) / "base"
    order = [USERS[(i * 7 + i // 3) % 3] for i in range(n_jobs)]    # users interleaved unevenly
    submitted, submit_s = [], []
    t0 = time.perf_counter()
    for i, user in enumerate(order):
        ws = open_workspace(base, user)
        t = time.perf_counter()
        run_id = submit(ws, SleepJob(steps=steps, step_s=0.05, name=f"job {i:02d}"), threads=1)
        submit_s.append(time.perf_counter() - t)
        submitted.append((ws, run_id))
    while any(e.active for e in all_jobs(base)):
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    runs = [ws.run(run_id) for ws, run_id in submitted]
    entries = {e.run_id: e for e in all_jobs(base)}
    dispatched = sorted(entries.values(), key=lambda e: e.started)
    start = [run.started - entries[run.id].started for run in runs]      # launched -> running
    # A slot frees (an entry settles) -> the next queued job is launched.
    settles = sorted(e.finished for e in entries.values())
    launch = []
    for e in dispatched[slots:]:
        freed = max((f for f in settles if f <= e.started), default=None)
        if freed is not None:
            launch.append(e.started - freed)
    work = sum(r.finished - r.started for r in runs)
    return {
        "slots": slots, "jobs": n_jobs, "users": len(set(order)),
        "done": sum(r.status == "done" for r in runs),
        "in_order": [e.run_id for e in dispatched] == [run_id for _, run_id in submitted],
        "wall_s": wall, "work_s": work,
        "submit_ms": 1000 * statistics.median(submit_s),
        "dispatch_ms": 1000 * statistics.median(launch) if launch else float("nan"),
        "dispatch_max_ms": 1000 * max(launch) if launch else float("nan"),
        "start_s": statistics.median(start),
    }


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return f"{os.cpu_count()} CPU cores ({cpu}), Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {machine()}; each job sleeps {args.steps} x 50 ms")
    print("| slots | jobs (users) | done | start order = submission order | wall s | "
          "job s (sum) | submit ms (median) | dispatch ms (median / max) | "
          "launch -> running s (median) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for slots in args.slots:
        r = run(slots, args.jobs, args.steps)
        print(f"| {r['slots']} | {r['jobs']} ({r['users']}) | {r['done']} | "
              f"{'yes' if r['in_order'] else 'NO'} | {r['wall_s']:.2f} | {r['work_s']:.2f} | "
              f"{r['submit_ms']:.1f} | {r['dispatch_ms']:.1f} / {r['dispatch_max_ms']:.1f} | "
              f"{r['start_s']:.2f} |")


if __name__ == "__main__":
    main()
