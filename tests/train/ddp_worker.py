"""Run by test_ddp.py under `torchrun --nproc_per_node=2`: CPU processes train the toy objective.

Usage: torchrun --nproc_per_node=2 --standalone tests/train/ddp_worker.py OUT_DIR
Writes OUT_DIR/rank<r>.json (histories, rows seen) and rank<r>.<run>.safetensors (weights).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repo root: gexcore, tests

import torch
from safetensors.torch import save_file

from gexcore.train.loop import TrainConfig, train
from tests.train.test_loop import ToyObjective, stop_after, toy_data

N_ROWS = 100
CONFIG = TrainConfig(epochs=4, batch_size=8, lr=1e-2, val_fraction=0.2, patience=None,
                     device="cpu", log_every=1, checkpoint_every=3)


class RecordingObjective(ToyObjective):
    """The toy objective on columns 1:, remembering column 0 (the row id) of each train batch."""

    def __init__(self, init_seed: int = 0):
        super().__init__(init_seed=init_seed)
        self.batches: list[list[int]] = []

    def forward(self, x, missing, generator=None):
        if self.training:
            self.batches.append(x[:, 0].round().long().tolist())
        return super().forward(x[:, 1:], missing[:, 1:], generator)


def main(out: Path) -> None:
    rank = int(os.environ["RANK"])
    x, missing = toy_data(N_ROWS)
    x = torch.cat([torch.arange(N_ROWS, dtype=torch.float32)[:, None], x], dim=1)
    missing = torch.cat([torch.zeros(N_ROWS, 1, dtype=torch.bool), missing], dim=1)

    reports = []
    straight = RecordingObjective()          # train() joins and leaves the process group
    history = train(straight, x, missing, CONFIG, progress=reports.append,
                    checkpoint_dir=out / "straight")

    # Only rank 0 asks to stop (after 7 steps, mid-epoch 2); both ranks must stop together.
    first = RecordingObjective()
    cancelled = train(first, x, missing, CONFIG, checkpoint_dir=out / "resumed",
                      should_stop=stop_after(7) if rank == 0 else None)
    resumed = RecordingObjective(init_seed=9)
    resumed_history = train(resumed, x, missing, CONFIG, checkpoint_dir=out / "resumed",
                            resume=True)

    for name, module in (("straight", straight), ("resumed", resumed)):
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(out / f"rank{rank}.{name}.safetensors"))
    result = {"history": history.to_dict(), "cancelled": cancelled.to_dict(),
              "resumed": resumed_history.to_dict(), "batches": straight.batches,
              "n_reports": len(reports)}
    (out / f"rank{rank}.json").write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
