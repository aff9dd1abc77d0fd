"""The evaluation protocol: seeds x splits x label fractions x (SSL models and baselines).

Per seed: a patient-aware stratified split; normaliser, PCA and pretraining fitted on the
training rows only (unless `transductive`); nested class-stratified label fractions of the
training rows; every head scored on the same held-out test rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from gexcore.evaluate.config import EvalConfig
from gexcore.evaluate.features import RANDOM_MLP, RANDOM_TRANSFORMER, build_features
from gexcore.evaluate.splits import nested_fractions, patient_groups, train_test_split
from gexcore.evaluate.tasks import ClassificationTask, SurvivalTask
from gexcore.progress import Progress, ProgressCallback, StopCallback

__all__ = [
    "PCA_BASELINE",
    "RAW_BASELINE",
    "SCRATCH_BASELINE",
    "EvalConfig",
    "EvalResult",
    "evaluate_cohort",
]

logger = logging.getLogger(__name__)

PCA_BASELINE = "PCA + linear"
RAW_BASELINE = "raw-feature linear"
SCRATCH_BASELINE = "MLP from scratch"


@dataclass
class EvalResult:
    """Long-format scores (one row per seed x fraction x model) and what produced them."""

    task: Literal["classification", "survival"]
    scores: pd.DataFrame
    config: EvalConfig
    info: dict                       # cohort size, grouping, label column, timings
    predictions: pd.DataFrame        # test rows of seed 0 at the largest fraction, per model
    extras: dict                     # task-specific: confusion matrices, risk groups


def evaluate_cohort(adata: AnnData, task: ClassificationTask | SurvivalTask,
                    config: EvalConfig | None = None, *,
                    progress: ProgressCallback | None = None,
                    should_stop: StopCallback | None = None) -> EvalResult:
    """Run the protocol for one task on one cohort; see the module docstring."""
    config = config or EvalConfig()
    task.check(adata)
    adata = task.labelled(adata)
    groups, grouped_by = patient_groups(adata)
    started, rows, preds, extras = time.perf_counter(), [], [], {}
    for seed in range(config.seeds):
        if should_stop is not None and should_stop():
            break
        _report(progress, seed, config.seeds, f"split and pretrain (seed {seed})")
        split = train_test_split(adata, stratify=task.strata(adata), seed=seed,
                                 test_size=config.test_size)
        split.check_disjoint(groups)
        train, test = adata[split.train].copy(), adata[split.test].copy()
        feats = build_features(train, test, methods=config.methods, seed=seed,
                               pretrain_epochs=config.pretrain_epochs, preset=config.preset,
                               n_pca=config.n_pca, top_genes=config.top_genes,
                               transductive=config.transductive, progress=progress,
                               should_stop=should_stop)
        subsets = nested_fractions(task.strata(train), config.fractions, seed=seed)
        for fraction, labelled in subsets.items():
            keep = seed == 0 and fraction == max(subsets)
            for name, regime, model, X_train, X_test in _fit_all(task, feats, train, labelled,
                                                                 config, seed):
                scores, pred = task.score(model, X_test, train, test)
                rows.append({"seed": seed, "fraction": fraction, "n_labelled": len(labelled),
                             "model": name, "regime": regime, **scores})
                if keep:
                    preds.append(pred.assign(model=name, regime=regime))
                    extras[f"{name} | {regime}"] = task.extras(model, X_train, X_test, train,
                                                               test)
        _report(progress, seed + 1, config.seeds, f"seed {seed} done")
    info = {"n_samples": int(adata.n_obs), "n_genes": int(adata.n_vars), "grouped_by": grouped_by,
            "seconds": round(time.perf_counter() - started, 1), **task.describe(adata),
            "pretraining_saw_test": config.transductive}
    return EvalResult(task.name, pd.DataFrame(rows), config, info,
                      pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(), extras)


def _fit_all(task, feats, train: AnnData, labelled: np.ndarray, config: EvalConfig, seed: int):
    """Yield (model name, regime, fitted head, train inputs, test inputs) for every model."""
    for name, fs in ((PCA_BASELINE, feats.pca), (RAW_BASELINE, feats.raw)):
        yield name, "baseline", task.fit_linear(fs.train, train, labelled), fs.train, fs.test
    for name, fs in feats.encoders.items():
        tuned = (fs.X_train, fs.X_test)
        if name == RANDOM_MLP and config.finetune:
            yield (SCRATCH_BASELINE, "baseline", task.fit_finetune(
                fs.encoder, fs.X_train, train, labelled, config, seed), *tuned)
        regime = "baseline" if name in (RANDOM_MLP, RANDOM_TRANSFORMER) else "frozen"
        yield name, regime, task.fit_linear(fs.train, train, labelled), fs.train, fs.test
        if config.finetune and regime == "frozen":
            yield (name, "fine-tuned", task.fit_finetune(
                fs.encoder, fs.X_train, train, labelled, config, seed), *tuned)


def _report(progress: ProgressCallback | None, step: int, total: int, message: str) -> None:
    if progress is not None:
        progress(Progress(phase="evaluate", step=step, total_steps=total, message=message))
