"""The loss curve of a pretrain run: live from its progress reports, final from its checkpoint.

The worker keeps only the latest progress in the registry, so `LossRecorder` also appends every
report to the run's `loss` array; `loss_history` turns either source into the dict that
`viz.loss_curve` draws.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np

from gexcore.progress import Progress, ProgressCallback
from gexcore.workspace.runs import RunInfo
from gexcore.workspace.store import Workspace

__all__ = ["LOSS_ARRAY", "LossRecorder", "history_from_reports", "loss_history"]

LOSS_ARRAY = "loss"      # arrays/<run id>/loss.npy: step, total_steps, epoch, epochs, loss, val


class LossRecorder:
    """Progress callback that passes each report on and appends it to the run's `loss` array,
    saved at most every `every_s` seconds (and always at a labelled or final report)."""

    def __init__(self, ws: Workspace, run_id: str, progress: ProgressCallback, *,
                 every_s: float = 1.0):
        self.ws, self.run_id, self.progress, self.every_s = ws, run_id, progress, every_s
        self.rows: list[list[float]] = []
        self.saved = -math.inf

    def __call__(self, p: Progress) -> None:
        self.progress(p)
        if p.phase != "pretrain":
            return
        self.rows.append([p.step, p.total_steps, p.epoch, p.epochs, p.loss, p.val_loss])
        now = time.monotonic()
        if now - self.saved >= self.every_s or p.message or p.step >= p.total_steps:
            self.saved = now
            self.ws.save_array(self.run_id, LOSS_ARRAY, np.asarray(self.rows, dtype=np.float64))


def loss_history(ws: Workspace, run: RunInfo) -> dict[str, Any] | None:
    """`History.to_dict()`-shaped losses of a pretrain run: the checkpoint's once it is done,
    else rebuilt from the live reports; None when there is nothing yet."""
    if run.status == "done":
        meta = ws.run_dir(run.id) / "metadata.json"
        if meta.exists():
            return json.loads(meta.read_text(encoding="utf-8")).get("history")
    rows = ws.load_array(run.id, LOSS_ARRAY)
    return history_from_reports(rows) if rows is not None and len(rows) else None


def history_from_reports(rows: np.ndarray) -> dict[str, Any]:
    """Per-step losses up to the last report (the running epoch included, so a long first
    epoch already draws a curve) and per-epoch losses of the finished epochs, from (step,
    total, epoch, epochs, running loss, val loss) reports: a report's running mean over its
    epoch so far gives the mean loss of the steps since the report before it."""
    step, total, _, epochs, loss, val = np.asarray(rows, dtype=float).T
    per_epoch = max(1, round(total[-1] / max(epochs[-1], 1)))
    per_step = np.full(int(step.max()), np.nan)
    start, done, loss_sum = -1, 0, 0.0              # epoch start step; steps and sum so far
    for s, mean in zip(step.astype(int), loss):
        epoch_start = (s - 1) // per_epoch * per_epoch
        if epoch_start != start:
            start, done, loss_sum = epoch_start, 0, 0.0
        k = s - start
        if k <= done or not math.isfinite(mean):    # a repeated report of the same step
            continue
        per_step[start + done:s] = (mean * k - loss_sum) / (k - done)
        done, loss_sum = k, mean * k
    n_epochs = int(step.max()) // per_epoch
    whole = per_step[:n_epochs * per_epoch]
    train = [float(np.nanmean(e)) for e in whole.reshape(n_epochs, per_epoch)] if n_epochs else []
    ends = {int(s) // per_epoch: v for s, v in zip(step, val) if int(s) % per_epoch == 0}
    val_loss = [ends.get(e, math.nan) for e in range(1, n_epochs + 1)]
    finite = [v for v in val_loss if math.isfinite(v)]
    best = val_loss.index(min(finite)) + 1 if finite else 0
    return {"train_loss": train, "val_loss": val_loss if finite else [],
            "step_loss": [float(v) for v in per_step], "best_epoch": best,
            "steps": int(step.max()), "steps_per_epoch": per_epoch}
