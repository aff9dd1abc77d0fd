"""Live loss curves: every progress report kept, per-step losses rebuilt from running means."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gexcore import viz
from gexcore.models.encoder import Encoder
from gexcore.models.mlp import MLPConfig
from gexcore.train.config import TrainConfig
from gexcore.workspace.losslog import LOSS_ARRAY, LossRecorder, history_from_reports


def _reports(step_losses, per_epoch, log_every, val):
    """Reports as the training loop sends them: every `log_every` steps, then at epoch end."""
    rows, total, epochs = [], len(step_losses), len(step_losses) // per_epoch
    for s in range(1, total + 1):
        start = (s - 1) // per_epoch * per_epoch
        running = float(np.mean(step_losses[start:s]))
        epoch = start // per_epoch + 1
        old_val = val[epoch - 2] if epoch > 1 else math.nan
        if s % log_every == 0:
            rows.append([s, total, epoch, epochs, running, old_val])
        if s % per_epoch == 0:
            rows.append([s, total, epoch, epochs, running, val[epoch - 1]])
    return np.array(rows)


def test_history_rebuilds_steps_and_epochs_from_running_means():
    steps = [4.0, 3.0, 2.0, 1.0, 2.0, 1.0, 1.0, 0.0, 0.5]    # 3rd epoch still running
    rows = _reports(steps[:8], per_epoch=4, log_every=2, val=[2.0, 1.5])
    rows = np.vstack([rows, [9, 12, 3, 3, 0.5, 1.5]])
    rows[:, 1], rows[:, 3] = 12, 3
    history = history_from_reports(rows)
    # steps between two reports share their mean; the running epoch's step is there too
    assert history["step_loss"] == pytest.approx([3.5, 3.5, 1.5, 1.5, 1.5, 1.5, 0.5, 0.5, 0.5])
    assert history["steps_per_epoch"] == 4
    assert history["train_loss"] == pytest.approx([2.5, 1.0])          # whole epochs only
    assert history["val_loss"] == pytest.approx([2.0, 1.5])
    assert history["best_epoch"] == 2


def test_history_with_reports_that_do_not_divide_an_epoch():
    steps = [5.0, 4.0, 3.0, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0, 0.0]
    history = history_from_reports(_reports(steps, per_epoch=5, log_every=3,
                                            val=[math.nan, math.nan]))
    assert history["train_loss"] == pytest.approx([3.4, 1.0])
    assert history["val_loss"] == [] and history["best_epoch"] == 0
    assert len(history["step_loss"]) == 10
    assert np.mean(history["step_loss"][:5]) == pytest.approx(3.4)


def test_recorder_keeps_every_report_of_a_real_training(tmp_workspace, tiny_cohort):
    seen = []
    recorder = LossRecorder(tmp_workspace, "run-1", seen.append, every_s=0.0)
    enc = Encoder("scarf", MLPConfig(hidden=32, n_layers=2))
    history = enc.pretrain(tiny_cohort, TrainConfig(epochs=3, batch_size=16, log_every=1,
                                                    seed=0), progress=recorder)
    rows = tmp_workspace.load_array("run-1", LOSS_ARRAY)
    assert len(seen) == len(rows) and len(rows) >= history.steps
    rebuilt = history_from_reports(rows)
    assert rebuilt["train_loss"] == pytest.approx(history.train_loss, rel=1e-5)
    assert rebuilt["step_loss"] == pytest.approx(history.step_loss, rel=1e-4)
    assert rebuilt["val_loss"] == pytest.approx(history.val_loss, rel=1e-6)


def test_first_epoch_draws_before_it_ends():
    """A long first epoch (a transformer on a big cohort) shows its steps at once."""
    rows = _reports([3.0, 2.0, 1.0, 1.0, 1.0, 1.0], per_epoch=6, log_every=2, val=[1.0])[:2]
    history = history_from_reports(rows)
    assert history["train_loss"] == []
    assert history["step_loss"] == pytest.approx([2.5, 2.5, 1.0, 1.0])
    fig = viz.loss_curve(history)
    assert [t.name for t in fig.data] == ["step"]
    assert list(fig.data[0].x) == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6])   # epoch units
