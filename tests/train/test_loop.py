"""The training loop on tiny objectives: learning, determinism, early stopping, cancel, resume."""

from __future__ import annotations

import json
import logging
import math
import os

import pytest
import torch
from torch import nn

from gexcore.errors import CheckpointError, InputError
from gexcore.models.objectives.base import LossOutput, Objective
from gexcore.progress import Progress
from gexcore.train import state as train_state
from gexcore.train.device import autocast_context, precision_name, resolve_device
from gexcore.train.loop import History, TrainConfig, split_rows, steps_per_epoch, train
from tests.crash import killed_at

N_GENES = 12


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: a thread pool only adds spin-waits, 50x slower on a busy 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ToyObjective(Objective):
    """Masked reconstruction with an MLP (BatchNorm, dropout); masks come from `generator`."""

    def __init__(self, n_genes: int = N_GENES, hidden: int = 16, mask_rate: float = 0.3,
                 init_seed: int = 0):
        super().__init__()
        torch.manual_seed(init_seed)
        self.encoder = nn.Sequential(nn.Linear(n_genes, hidden), nn.BatchNorm1d(hidden),
                                     nn.ReLU(), nn.Dropout(0.1))
        self.decoder = nn.Linear(hidden, n_genes)
        self.mask_rate = mask_rate
        self.after_steps: list[tuple[int, int]] = []

    def forward(self, x, missing, generator=None):
        mask = (torch.rand(x.shape, generator=generator, device=x.device) < self.mask_rate)
        mask &= ~missing
        recon = self.decoder(self.encoder(x.masked_fill(mask, 0.0)))   # (B, G)
        loss = (((recon - x) ** 2) * mask).sum() / mask.sum().clamp(min=1)
        return LossOutput(loss, {"masked": mask.float().mean().item()})

    def after_step(self, step, total_steps):
        self.after_steps.append((step, total_steps))

    @torch.no_grad()
    def embed(self, x, missing):
        return self.encoder(x)


class DriftObjective(Objective):
    """One weight w: training pulls it to 5, validation wants 1, so val loss turns up mid-run.

    Every validation call records w, so a test knows which weights each epoch had.
    """

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.val_ws: list[float] = []

    def forward(self, x, missing, generator=None):
        if self.training:
            return LossOutput((self.w - 5.0) ** 2 + 0.0 * x.sum())
        self.val_ws.append(self.w.item())
        return LossOutput((self.w - 1.0) ** 2)


def toy_data(n: int = 100, n_genes: int = N_GENES, seed: int = 0):
    """Rank-3 data plus noise, ~10% missing (set to 0): masked genes are predictable."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g)
    x = z @ torch.randn(3, n_genes, generator=g) + 0.1 * torch.randn(n, n_genes, generator=g)
    missing = torch.rand(n, n_genes, generator=g) < 0.1
    return x.masked_fill(missing, 0.0).float(), missing


def quick(**overrides) -> TrainConfig:
    base = {"epochs": 4, "batch_size": 16, "lr": 1e-2, "val_fraction": 0.1, "patience": None,
            "seed": 0, "device": "cpu", "log_every": 2}
    return TrainConfig(**{**base, **overrides})


def params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def assert_same_params(a: nn.Module, b: nn.Module) -> None:
    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        assert torch.allclose(pa[name].float(), pb[name].float(), rtol=1e-6, atol=1e-7), name


def stop_after(n_calls: int):
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) >= n_calls
    return should_stop


# --- learning and determinism -------------------------------------------------------------

def test_training_lowers_the_validation_loss():
    x, missing = toy_data(200)
    objective = ToyObjective()
    history = train(objective, x, missing, quick(epochs=8))
    assert history.val_loss[-1] < 0.6 * history.val_loss[0]
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.epochs == 8 and not history.stopped_early and not history.cancelled
    assert history.n_val == 20 and history.n_train == 180
    assert history.steps == 8 * steps_per_epoch(180, 16) == len(history.step_loss)
    assert set(history.metrics) == {"masked"} and 0.2 < history.metrics["masked"] < 0.4
    assert history.device == "cpu" and history.precision == "fp32"
    assert not objective.training                         # left in eval mode


def test_same_seed_same_history_and_weights():
    x, missing = toy_data()
    a, b = ToyObjective(), ToyObjective()
    history_a = train(a, x, missing, quick())
    history_b = train(b, x, missing, quick())
    assert history_a.step_loss == history_b.step_loss
    assert history_a.val_loss == history_b.val_loss
    assert_same_params(a, b)
    history_c = train(ToyObjective(), x, missing, quick(seed=1))
    assert history_c.step_loss != history_a.step_loss


def test_the_callers_random_state_is_left_alone():
    x, missing = toy_data()
    objective = ToyObjective()
    before = torch.get_rng_state()
    train(objective, x, missing, quick(epochs=1))
    assert torch.equal(before, torch.get_rng_state())


def test_after_step_sees_every_optimiser_step():
    x, missing = toy_data()
    objective = ToyObjective()
    history = train(objective, x, missing, quick(epochs=2))
    total = history.steps
    assert objective.after_steps == [(step, total) for step in range(1, total + 1)]


def test_split_is_seeded_disjoint_and_keeps_one_val_row():
    train_rows, val_rows = split_rows(100, 0.1, seed=3)
    assert len(val_rows) == 10 and len(train_rows) == 90
    assert set(train_rows.tolist()).isdisjoint(val_rows.tolist())
    assert torch.equal(split_rows(100, 0.1, seed=3)[1], val_rows)
    assert not torch.equal(split_rows(100, 0.1, seed=4)[1], val_rows)
    assert len(split_rows(5, 0.01, seed=0)[1]) == 1          # at least one row
    assert len(split_rows(5, 0.0, seed=0)[1]) == 0


def test_without_validation_rows_the_last_epoch_is_kept():
    x, missing = toy_data()
    history = train(ToyObjective(), x, missing, quick(val_fraction=0.0, patience=2))
    assert history.val_loss == [] and history.best_epoch == 4 and history.n_val == 0


def test_a_last_batch_of_one_row_is_dropped_without_batchnorm_errors():
    x, missing = toy_data(34)           # 31 training rows in batches of 15: 15, 15 and 1
    config = quick(batch_size=15, epochs=2)
    history = train(ToyObjective(), x, missing, config)
    assert history.n_train == 31
    assert steps_per_epoch(31, 15) == 2
    assert history.steps == 4


# --- early stopping and cancel ------------------------------------------------------------

def drift_config(**overrides) -> TrainConfig:
    base = {"epochs": 30, "batch_size": 10, "lr": 0.1, "warmup_fraction": 0.0,
            "min_lr_ratio": 1.0, "grad_clip": None, "val_fraction": 0.2, "patience": 2,
            "device": "cpu"}
    return TrainConfig(**{**base, **overrides})


def test_early_stopping_on_a_plateau_restores_the_best_weights():
    x, missing = toy_data(30)
    objective = DriftObjective()
    history = train(objective, x, missing, drift_config())
    assert history.stopped_early and history.epochs < 30
    assert len(history.val_loss) == history.best_epoch + 2              # patience 2
    assert history.val_loss[history.best_epoch - 1] == min(history.val_loss)
    assert history.best_val_loss == min(history.val_loss)
    # Each epoch validates in 1 batch: val_ws[e] is w at the end of epoch e + 1.
    assert objective.w.item() == pytest.approx(objective.val_ws[history.best_epoch - 1])
    assert objective.w.item() != pytest.approx(objective.val_ws[-1])


def test_should_stop_cancels_cleanly_and_keeps_the_best_epoch():
    x, missing = toy_data(30)                             # 24 train rows, batch 10: 3 steps
    objective = DriftObjective()
    history = train(objective, x, missing, drift_config(patience=None),
                    should_stop=stop_after(8))            # mid-epoch 3
    assert history.cancelled and not history.stopped_early
    assert history.steps == 8 and history.epochs == 2 and history.best_epoch == 2
    assert objective.w.item() == pytest.approx(objective.val_ws[history.best_epoch - 1])


def test_progress_reports_rising_steps_and_a_final_report():
    x, missing = toy_data()
    reports: list[Progress] = []
    history = train(ToyObjective(), x, missing, quick(log_every=3), progress=reports.append)
    steps = [r.step for r in reports]
    assert steps == sorted(steps) and steps[0] > 0
    final = reports[-1]
    assert final.message == "done" and final.step == history.steps == final.total_steps
    assert final.fraction == 1.0 and final.eta_s == 0.0 and final.epochs == 4
    assert all(r.phase == "pretrain" and r.samples_per_s > 0 for r in reports)
    for epoch in (1, 2, 3, 4):                            # 6 steps per epoch
        assert any(r.step == 6 * epoch and r.epoch == epoch
                   and r.val_loss == history.val_loss[epoch - 1] for r in reports)
    assert any(r.step % 3 == 0 and math.isfinite(r.eta_s) for r in reports[:-1])


def test_one_log_line_at_the_end(caplog):
    x, missing = toy_data()
    with caplog.at_level(logging.INFO, logger="gexcore.train.loop"):
        train(ToyObjective(), x, missing, quick(epochs=1), description="toy")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pretrained")]
    assert len(lines) == 1
    assert lines[0].startswith("pretrained toy on 100 x 12 in 0:00:") and "(cpu, fp32)" in lines[0]


# --- resume -------------------------------------------------------------------------------

class Boom(RuntimeError):
    pass


def crash_after(n_calls: int):
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        if len(calls) >= n_calls:
            raise Boom("simulated crash")
        return False
    return should_stop


@pytest.mark.parametrize("interruption", ["cancel", "crash"])
def test_resume_gives_the_same_run_as_no_interruption(tmp_path, interruption):
    x, missing = toy_data()             # 90 train rows, batch 16: 6 steps per epoch
    straight = ToyObjective()
    expected = train(straight, x, missing, quick())

    config = quick(checkpoint_every=4)
    first = ToyObjective()
    if interruption == "cancel":        # cancel at step 9 writes train_state at step 9
        history = train(first, x, missing, config, should_stop=stop_after(9),
                        checkpoint_dir=tmp_path)
        assert history.cancelled and history.steps == 9
    else:                               # crash at step 11: the last state is from step 8
        with pytest.raises(Boom):
            train(first, x, missing, config, should_stop=crash_after(11),
                  checkpoint_dir=tmp_path)
    saved = train_state.load_train_state(tmp_path)
    assert saved.meta["loop"]["step"] == (9 if interruption == "cancel" else 8)

    resumed = ToyObjective(init_seed=123)                 # weights come from train_state
    history = train(resumed, x, missing, config, checkpoint_dir=tmp_path, resume=True)
    # On CPU the resumed curve is not just close but bit-identical.
    assert history.step_loss == expected.step_loss
    assert history.val_loss == expected.val_loss
    assert history.train_loss == expected.train_loss
    assert history.metrics == expected.metrics
    assert history.steps == expected.steps and history.best_epoch == expected.best_epoch
    assert not history.cancelled
    assert_same_params(resumed, straight)


def test_resume_after_the_last_epoch_changes_nothing(tmp_path):
    x, missing = toy_data()
    first = ToyObjective()
    done = train(first, x, missing, quick(epochs=2), checkpoint_dir=tmp_path)
    again = ToyObjective(init_seed=5)
    history = train(again, x, missing, quick(epochs=2), checkpoint_dir=tmp_path, resume=True)
    assert history.step_loss == done.step_loss and history.val_loss == done.val_loss
    assert_same_params(again, first)


def test_resume_without_train_state_starts_fresh_with_a_warning(tmp_path, caplog):
    """Regression: the only sign resume started from step 0 was an INFO line (shown with -v)."""
    x, missing = toy_data()
    with caplog.at_level(logging.WARNING, logger="gexcore.train.resume"):
        history = train(ToyObjective(), x, missing, quick(epochs=1), checkpoint_dir=tmp_path,
                        resume=True)
    assert any(r.levelno == logging.WARNING and "cannot resume" in r.getMessage()
               for r in caplog.records)
    assert history.epochs == 1 and (tmp_path / "train_state" / "state.json").is_file()
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train(ToyObjective(), x, missing, quick(epochs=1), resume=True)


def test_resume_with_other_settings_or_data_names_the_difference(tmp_path):
    x, missing = toy_data()
    train(ToyObjective(), x, missing, quick(epochs=1), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="batch_size is 8, train_state has 16"):
        train(ToyObjective(), x, missing, quick(epochs=1, batch_size=8),
              checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(InputError, match="the data is 90 x 12"):
        train(ToyObjective(), x[:90], missing[:90], quick(epochs=1),
              checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(InputError, match="data values differ"):
        train(ToyObjective(), x + 1.0, missing, quick(epochs=1), checkpoint_dir=tmp_path,
              resume=True)
    with pytest.raises(InputError, match="model differs"):
        train(ToyObjective(hidden=8), x, missing, quick(epochs=1), checkpoint_dir=tmp_path,
              resume=True)
    # settings that do not change the curve may differ
    train(ToyObjective(), x, missing, quick(epochs=1, log_every=5, patience=3),
          checkpoint_dir=tmp_path, resume=True)


def test_train_state_layout_is_safetensors_and_json(tmp_path):
    x, missing = toy_data()
    train(ToyObjective(), x, missing, quick(epochs=2), checkpoint_dir=tmp_path)
    folder = tmp_path / "train_state"
    assert sorted(p.name for p in folder.iterdir()) == ["best.safetensors", "state.json",
                                                         "state.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_state"]   # no temp folders
    meta = json.loads((folder / "state.json").read_text())
    assert meta["loop"] == {"step": 12, "epoch": 2, "batch": 0, "loss_sum": 0.0,
                            "n_batches": 0, "metric_sums": {"masked": 0.0}, "bad_epochs": 0}
    assert meta["config"]["batch_size"] == 16 and meta["data"]["n_rows"] == 100
    saved = train_state.load_train_state(tmp_path)
    names = set(saved.tensors)
    assert "model.decoder.weight" in names and "model.encoder.1.running_mean" in names
    assert "optim.0.exp_avg" in names and "optim.0.step" in names
    assert {"rng.0.cpu", "rng.0.objective"} <= names
    assert set(saved.best) == {n for n in names if n.startswith("model.")}


# --- crash-safe writes --------------------------------------------------------------------

def test_a_crash_while_writing_leaves_the_previous_state(tmp_path, monkeypatch):
    x, missing = toy_data()
    config = quick(checkpoint_every=2)
    real_write = train_state._write_json
    writes = []

    def failing_write(path, data):
        writes.append(data["loop"]["step"])
        if len(writes) == 3:
            raise OSError("disk full (simulated)")
        real_write(path, data)

    monkeypatch.setattr(train_state, "_write_json", failing_write)
    with pytest.raises(OSError, match="disk full"):
        train(ToyObjective(), x, missing, config, checkpoint_dir=tmp_path)
    monkeypatch.setattr(train_state, "_write_json", real_write)
    assert writes == [2, 4, 6]
    assert train_state.load_train_state(tmp_path).meta["loop"]["step"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_state"]

    straight = ToyObjective()
    expected = train(straight, x, missing, config)
    resumed = ToyObjective()
    history = train(resumed, x, missing, config, checkpoint_dir=tmp_path, resume=True)
    assert history.step_loss == pytest.approx(expected.step_loss, rel=1e-6, abs=1e-7)
    assert_same_params(resumed, straight)


# Each point of the second train_state write (step 6; the first, at step 4, had no state to
# replace): (function, its n-th call in the run, the step the state on disk is then from).
KILL_POINTS = {
    "before any tensor is written": ("_write_tensors", 2, 4),
    "tensors written, state.json not": ("_write_json", 2, 4),
    "complete, before the first rename": ("os.replace", 2, 4),
    "between the two renames": ("os.replace", 3, 6),
    "after the renames, old state not yet removed": ("fsync_dir", 2, 6),
}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_resume_after_a_kill_at_each_point_of_the_state_write(tmp_path, point):
    """Regression: a kill between the two renames made resume start again from step 0."""
    name, call, step = KILL_POINTS[point]
    owner = os if name == "os.replace" else train_state
    x, missing = toy_data()
    config = quick(checkpoint_every=4)
    straight = ToyObjective()
    expected = train(straight, x, missing, config)
    with killed_at(owner, name.removeprefix("os."), call):
        train(ToyObjective(), x, missing, config, checkpoint_dir=tmp_path)
    assert train_state.load_train_state(tmp_path).meta["loop"]["step"] == step
    resumed = ToyObjective(init_seed=123)
    history = train(resumed, x, missing, config, checkpoint_dir=tmp_path, resume=True)
    assert history.step_loss == expected.step_loss and history.val_loss == expected.val_loss
    assert_same_params(resumed, straight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_state"]


def test_a_train_state_folder_not_ours_is_never_replaced(tmp_path):
    (tmp_path / "train_state").mkdir()
    (tmp_path / "train_state" / "mine.txt").write_text("notes")
    with pytest.raises(CheckpointError, match="not written by GexScope"):
        train_state.save_train_state(tmp_path, {"model.w": torch.ones(2)}, {"step": 1})
    assert (tmp_path / "train_state" / "mine.txt").read_text() == "notes"


def test_optimizer_state_round_trips_through_tensors():
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.8, 0.9))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    tensors, groups = train_state.optimizer_to_tensors(optimizer.state_dict())
    json.dumps(groups)
    rebuilt = train_state.optimizer_from_tensors(tensors, json.loads(json.dumps(groups)))
    fresh = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.8, 0.9))
    fresh.load_state_dict(rebuilt)
    assert fresh.param_groups[0]["betas"] == (0.8, 0.9)
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(fresh.state[model.weight][key], optimizer.state[model.weight][key])


# --- configuration and inputs -------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("epochs", 0), ("batch_size", 1), ("lr", 0.0), ("lr", float("nan")), ("weight_decay", -1),
    ("warmup_fraction", 1.0), ("min_lr_ratio", 1.5), ("grad_clip", 0.0), ("val_fraction", 1.0),
    ("patience", 0), ("seed", -1), ("device", "gpu"), ("precision", "fp16"),
    ("checkpoint_every", 0), ("log_every", 0), ("epochs", 2.0), ("batch_size", True),
])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"TrainConfig.{field} must be"):
        TrainConfig(**{field: value})


def test_config_round_trips_and_names_unknown_keys():
    config = TrainConfig(epochs=3, grad_clip=None, patience=None, device="cuda:1")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="no field.*batchsize"):
        TrainConfig.from_dict({"batchsize": 3})


def test_history_to_dict_is_json_safe():
    history = History(train_loss=[1.0, float("nan")], metrics={"r": float("inf")})
    text = json.dumps(history.to_dict(), allow_nan=False)
    back = History.from_dict(json.loads(text))
    assert back.train_loss[0] == 1.0 and math.isnan(back.train_loss[1])
    assert math.isnan(back.metrics["r"])


def test_bad_inputs_are_named():
    x, missing = toy_data()
    with pytest.raises(ValueError, match="float32"):
        train(ToyObjective(), x.double(), missing, quick())
    with pytest.raises(ValueError, match="missing must be a bool"):
        train(ToyObjective(), x, missing.float(), quick())
    bad = x.clone()
    bad[7, 3] = float("nan")
    with pytest.raises(ValueError, match="row 7, column 3"):
        train(ToyObjective(), bad, missing, quick())
    with pytest.raises(ValueError, match="fewer than 2 per process"):
        train(ToyObjective(), x[:2], missing[:2], quick())


def test_a_diverging_loss_stops_with_a_clear_error():
    x, missing = toy_data()
    with pytest.raises(FloatingPointError, match="lower lr"):
        train(ToyObjective(), x * 1e30, missing, quick(lr=1e6, grad_clip=None))


# --- device and precision -----------------------------------------------------------------

def test_device_and_precision_choices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not understood|not supported"):
        resolve_device("tpu:0")
    cpu = torch.device("cpu")
    assert precision_name(cpu, "auto") == "fp32" and precision_name(cpu, "bf16") == "bf16"
    with autocast_context(cpu, "auto"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with autocast_context(cpu, "bf16"):                    # CPU bf16 only when asked for
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_run_and_resume(tmp_path):
    x, missing = toy_data()
    config = quick(device="cuda", checkpoint_every=4)
    straight = ToyObjective()
    expected = train(straight, x, missing, config)
    assert expected.precision == "bf16" and expected.device.startswith("cuda")
    assert expected.val_loss[-1] < expected.val_loss[0]
    train(ToyObjective(), x, missing, config, should_stop=stop_after(9),
          checkpoint_dir=tmp_path)
    resumed = ToyObjective(init_seed=7)
    history = train(resumed, x, missing, config, checkpoint_dir=tmp_path, resume=True)
    assert history.step_loss == pytest.approx(expected.step_loss, rel=1e-3, abs=1e-4)
    for name, value in params(straight).items():
        assert torch.allclose(value.float(), params(resumed)[name].float(), rtol=1e-3,
                              atol=1e-4), name
