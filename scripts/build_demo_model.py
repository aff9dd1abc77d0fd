"""Build the demo checkpoints shipped in assets/models/demo_<method> (run once; ~6 min CPU).

    .venv/bin/python scripts/build_demo_model.py [transformer] [vime]

Pretrains each encoder on the simulated pan-cancer demo cohort, then stores its embedding of
that cohort and a UMAP of it, so the app opens with a map in seconds. Two are shipped: the
transformer for attention-derived gene importance, and VIME, whose embedding separates the
cancer types best (15-nearest-neighbour type purity 0.91, vs 0.84 for 50 PCs of expression and
0.43 for the small transformer, which mostly learns the batches); the app shows VIME first.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from gexcore.data.demo import load_demo
from gexcore.tasks.projection import ProjectionParams, project
from gexcore.train.config import TrainConfig
from gexcore.workspace.pretrain import new_encoder

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"
EPOCHS = {"transformer": 8, "vime": 15}


def build(method: str) -> None:
    started = time.perf_counter()
    out = MODELS / f"demo_{method}"
    adata = load_demo("simulated_pancancer")
    encoder = new_encoder(method, preset="small")
    history = encoder.pretrain(adata, TrainConfig(epochs=EPOCHS[method], seed=0))
    encoder.save(out)
    embedding = encoder.embed(adata)
    params = ProjectionParams()
    coords = project(embedding, params)
    np.save(out / "embedding.npy", embedding)
    np.save(out / "umap.npy", coords)
    (out / "demo.json").write_text(json.dumps({
        "cohort": "simulated_pancancer", "umap_params": params.key(),
        "epochs": history.epochs, "best_val_loss": history.best_val_loss,
        "method": method, "command": f"python scripts/build_demo_model.py {method}"}, indent=1))
    print(f"wrote {out} in {time.perf_counter() - started:.0f} s; best val loss "
          f"{history.best_val_loss:.4f}; embedding {embedding.shape}")


if __name__ == "__main__":
    for name in sys.argv[1:] or list(EPOCHS):
        build(name)
