"""Two CPU processes under torchrun (gloo): same weights everywhere, disjoint shards, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from gexcore.train.loop import split_rows

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = WORKER.parents[2]

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """Run the worker once under torchrun; the tests below read what the two ranks wrote."""
    out = tmp_path_factory.mktemp("ddp")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--standalone", str(WORKER), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=180, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out


def ranks(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def weights(out: Path, rank: int, name: str) -> dict[str, torch.Tensor]:
    return load_file(out / f"rank{rank}.{name}.safetensors")


def assert_equal_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():       # parameters and BatchNorm buffers alike
        assert torch.equal(tensor, b[name]), name


def test_both_ranks_end_with_identical_weights_and_history(ddp_run):
    assert_equal_weights(weights(ddp_run, 0, "straight"), weights(ddp_run, 1, "straight"))
    first, second = (r["history"] for r in ranks(ddp_run))
    for key in ("train_loss", "val_loss", "step_loss", "best_epoch", "metrics"):
        assert first[key] == second[key], key
    assert first["world_size"] == 2 and first["device"] == "cpu"


def test_the_loss_goes_down(ddp_run):
    history = ranks(ddp_run)[0]["history"]
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_each_rank_sees_half_of_the_training_rows_each_epoch(ddp_run):
    train_rows, _ = split_rows(100, 0.2, seed=0)          # 80 rows, 40 per rank, 5 batches of 8
    seen = [r["batches"] for r in ranks(ddp_run)]
    assert len(seen[0]) == len(seen[1]) == 4 * 5
    for epoch in range(4):
        shards = [sorted(row for batch in batches[5 * epoch:5 * (epoch + 1)] for row in batch)
                  for batches in seen]
        assert len(shards[0]) == len(set(shards[0])) == 40
        assert set(shards[0]).isdisjoint(shards[1])
        assert sorted(shards[0] + shards[1]) == train_rows.tolist()


def test_only_rank_zero_reports_and_writes(ddp_run):
    first, second = ranks(ddp_run)
    assert first["n_reports"] > 0 and second["n_reports"] == 0
    assert sorted(p.name for p in (ddp_run / "straight").iterdir()) == ["train_state"]
    state = json.loads((ddp_run / "straight" / "train_state" / "state.json").read_text())
    assert state["world_size"] == 2


def test_a_stop_on_one_rank_stops_both_and_resume_matches_the_straight_run(ddp_run):
    first, second = ranks(ddp_run)
    assert first["cancelled"]["cancelled"] and second["cancelled"]["cancelled"]
    assert first["cancelled"]["steps"] == second["cancelled"]["steps"] == 7
    for rank, result in enumerate((first, second)):
        assert result["resumed"]["step_loss"] == result["history"]["step_loss"]
        assert result["resumed"]["val_loss"] == result["history"]["val_loss"]
        assert_equal_weights(weights(ddp_run, rank, "resumed"), weights(ddp_run, rank, "straight"))
