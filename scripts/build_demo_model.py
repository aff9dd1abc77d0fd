"""Build the demo checkpoint shipped in assets/models/demo_transformer (run once; ~2 min CPU).

    .venv/bin/python scripts/build_demo_model.py

Pretrains the small gene transformer on the simulated pan-cancer demo cohort, then stores its
embedding of that cohort and a UMAP of it, so the app opens with a map in seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from gexcore.data.demo import load_demo
from gexcore.tasks.projection import ProjectionParams, project
from gexcore.train.config import TrainConfig
from gexcore.workspace.pretrain import new_encoder

OUT = Path(__file__).resolve().parents[1] / "assets" / "models" / "demo_transformer"


def main() -> None:
    started = time.perf_counter()
    adata = load_demo("simulated_pancancer")
    encoder = new_encoder("transformer", preset="small")
    history = encoder.pretrain(adata, TrainConfig(epochs=8, seed=0))
    encoder.save(OUT)
    embedding = encoder.embed(adata)
    params = ProjectionParams()
    coords = project(embedding, params)
    np.save(OUT / "embedding.npy", embedding)
    np.save(OUT / "umap.npy", coords)
    (OUT / "demo.json").write_text(json.dumps({
        "cohort": "simulated_pancancer", "umap_params": params.key(),
        "epochs": history.epochs, "best_val_loss": history.best_val_loss,
        "command": "python scripts/build_demo_model.py"}, indent=1))
    print(f"wrote {OUT} in {time.perf_counter() - started:.0f} s; best val loss "
          f"{history.best_val_loss:.4f}; embedding {embedding.shape}")


if __name__ == "__main__":
    main()
