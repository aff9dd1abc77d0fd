"""Imputation protocol: per seed, split, pretrain the imputing encoders on train, score test."""

from __future__ import annotations

import time

import pandas as pd
from anndata import AnnData

from gexcore.evaluate.protocol import EvalConfig, EvalResult
from gexcore.evaluate.splits import patient_groups, train_test_split
from gexcore.models.methods import methods_with
from gexcore.models.presets import new_encoder
from gexcore.progress import ProgressCallback, StopCallback
from gexcore.tasks.imputation import Missing
from gexcore.train.config import TrainConfig

__all__ = ["evaluate_imputation"]
_DEFAULT_TOP_GENES = 500                         # one gene space for every imputer


def evaluate_imputation(adata: AnnData, config: EvalConfig | None = None, *,
                        rates: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9),
                        missing: Missing = "cells",
                        progress: ProgressCallback | None = None,
                        should_stop: StopCallback | None = None) -> EvalResult:
    """RMSE and Pearson r on hidden test cells for mean, KNN and the imputing encoders;
    `missing` hides random cells ("cells") or whole genes, as a smaller panel ("genes")."""
    from gexcore.tasks.imputation import imputation_curve

    config = config or EvalConfig()
    top = config.top_genes or _DEFAULT_TOP_GENES
    methods = [m for m in config.methods if m in methods_with("can_restore")]
    started, frames = time.perf_counter(), []
    for seed in range(config.seeds):
        if should_stop is not None and should_stop():
            break
        split = train_test_split(adata, seed=seed, test_size=config.test_size)
        train, test = adata[split.train].copy(), adata[split.test].copy()
        encoders = {}
        for method in methods:
            enc = new_encoder(method, preset=config.preset, top_genes=top)
            enc.pretrain(train, TrainConfig(epochs=config.pretrain_epochs, seed=seed),
                         progress=progress, should_stop=should_stop)
            encoders[method] = enc
        frames.append(imputation_curve(train, test, encoders=encoders, rates=rates,
                                       seeds=(seed,), missing=missing, progress=progress))
    scores = pd.concat(frames, ignore_index=True).rename(columns={"method": "model"})
    info = {"n_samples": int(adata.n_obs), "n_genes": int(adata.n_vars), "genes_scored": top,
            "grouped_by": patient_groups(adata)[1], "pretraining_saw_test": False,
            "missing": missing,
            "seconds": round(time.perf_counter() - started, 1)}
    return EvalResult("imputation", scores, config, info, pd.DataFrame(), {})
