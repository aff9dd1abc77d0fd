"""Per-split features: pretrained and random-init encoders, embeddings and baseline inputs.

Everything here is fitted on the training rows only (pretraining too, unless transductive).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
from anndata import AnnData
from sklearn.decomposition import PCA

from gexcore.data.normalize import NormalizeConfig, Normalizer
from gexcore.models.encoder import Encoder
from gexcore.models.gene_transformer import GeneTransformer
from gexcore.models.mlp import MLPEncoder
from gexcore.models.objectives import objective_class
from gexcore.models.presets import new_encoder
from gexcore.progress import Progress, ProgressCallback, StopCallback
from gexcore.train.config import TrainConfig

__all__ = ["RANDOM_MLP", "RANDOM_TRANSFORMER", "FeatureSet", "SplitFeatures", "build_features"]

logger = logging.getLogger(__name__)

RANDOM_INIT = "random-init {}"            # + the body's label: one baseline per encoder network
RANDOM_MLP = RANDOM_INIT.format(MLPEncoder.label)
RANDOM_TRANSFORMER = RANDOM_INIT.format(GeneTransformer.label)


@dataclass
class FeatureSet:
    """One representation of the train and test rows, plus the encoder that made it (if any)."""

    train: np.ndarray
    test: np.ndarray
    encoder: Encoder | None = None
    X_train: np.ndarray | None = None        # the encoder's normalised inputs, for fine-tuning
    X_test: np.ndarray | None = None


@dataclass
class SplitFeatures:
    """Features of one split: `raw` genes, `pca`, and one FeatureSet per encoder name."""

    raw: FeatureSet
    pca: FeatureSet
    encoders: dict[str, FeatureSet] = field(default_factory=dict)
    pretrain_seconds: dict[str, float] = field(default_factory=dict)


def build_features(train: AnnData, test: AnnData, *, methods: tuple[str, ...], seed: int,
                   pretrain_epochs: int, preset: str = "small", n_pca: int = 50,
                   top_genes: int | None = None, transductive: bool = False,
                   progress: ProgressCallback | None = None,
                   should_stop: StopCallback | None = None) -> SplitFeatures:
    """Normalise, PCA and pretrain on `train` (plus `test` when transductive); embed both."""
    normalizer = Normalizer(NormalizeConfig(n_top_genes=top_genes)).fit(train)
    raw_train, raw_test = (normalizer.transform(a).X for a in (train, test))
    fill = np.nan_to_num
    n_comp = max(1, min(n_pca, raw_train.shape[0] - 1, raw_train.shape[1]))
    pca = PCA(n_components=n_comp, random_state=seed).fit(fill(raw_train))
    out = SplitFeatures(raw=FeatureSet(fill(raw_train), fill(raw_test)),
                        pca=FeatureSet(pca.transform(fill(raw_train)),
                                       pca.transform(fill(raw_test))))
    pool = ad.concat([train, test]) if transductive else train      # what pretraining sees
    # One untrained baseline per body, built as the first method with that body builds it;
    # the body comes first from the seed, so which of the MLP methods does not matter.
    baselines = {}
    for method in methods:
        baselines.setdefault(RANDOM_INIT.format(objective_class(method).body_cls.label), method)
    for name in sorted(baselines):
        enc = new_encoder(baselines[name], preset=preset, top_genes=top_genes)
        enc.initialize(train, seed=seed)
        out.encoders[name] = _embed(enc, train, test)
    for method in methods:
        if should_stop is not None and should_stop():
            break
        enc = new_encoder(method, preset=preset, top_genes=top_genes)
        config = TrainConfig(epochs=pretrain_epochs, seed=seed, log_every=50)
        report = _relabel(progress, f"pretrain {method} (seed {seed})")
        enc.pretrain(pool, config, progress=report, should_stop=should_stop)
        out.encoders[method] = _embed(enc, train, test)
        out.pretrain_seconds[method] = enc.history.seconds
    return out


def _embed(enc: Encoder, train: AnnData, test: AnnData) -> FeatureSet:
    X_train, X_test = (enc.normalizer.transform(a).X for a in (train, test))
    return FeatureSet(enc.embed(train), enc.embed(test), enc, X_train, X_test)


def _relabel(progress: ProgressCallback | None, message: str) -> ProgressCallback | None:
    if progress is None:
        return None

    def report(p: Progress) -> None:
        progress(Progress(**{**p.__dict__, "message": message}))
    return report
