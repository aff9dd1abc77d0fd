"""The user-facing encoder: pretrain on a cohort, embed cohorts, save and load checkpoints."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from anndata import AnnData

from gexcore.data.genes import MIN_GENE_OVERLAP
from gexcore.data.normalize import NormalizeConfig, Normalizer
from gexcore.errors import CheckpointError
from gexcore.models.checkpoint import load_checkpoint, save_checkpoint
from gexcore.models.methods import require
from gexcore.models.objectives import Method, objective_class
from gexcore.models.objectives.base import MarginalFill, Objective
from gexcore.progress import ProgressCallback, StopCallback
from gexcore.train.loop import History, TrainConfig, train

__all__ = ["Encoder", "cohort_tensors", "pretrain"]

logger = logging.getLogger(__name__)


def cohort_tensors(adata: AnnData, normalizer: Normalizer, *,
                   min_overlap: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised (N, G) float32 values with missing cells 0, and the (N, G) missing mask."""
    X = normalizer.transform(adata, min_overlap=min_overlap).X
    missing = np.isnan(X)
    return torch.from_numpy(np.nan_to_num(X, nan=0.0)), torch.from_numpy(missing)


class Encoder:
    """One pretrained encoder: its method, configs, normaliser, gene vocabulary and weights.

    What it can do (`can_restore`, `has_attention`, `input_gradients`) is its method's
    Objective class's declaration; ask these, not the method name.
    """

    def __init__(self, method: Method = "transformer", model_config=None, objective_config=None,
                 *, normalize: NormalizeConfig | None = None):
        self.objective_cls = objective_class(method)     # InputError for an unknown method
        self.method = method
        self.model_config = (model_config if model_config is not None
                             else self.objective_cls.model_config_cls())
        self.objective_config = (objective_config if objective_config is not None
                                 else self.objective_cls.config_cls())
        self.normalize = normalize or NormalizeConfig()
        self.normalizer: Normalizer | None = None
        self.objective: Objective | None = None
        self.history: History | None = None
        self.metadata: dict = {}

    @property
    def genes(self) -> list[str]:
        """The gene vocabulary, fixed at pretraining."""
        self._check_ready()
        return list(self.normalizer.genes_)

    @property
    def dim(self) -> int:
        return int(self.body.out_dim)

    @property
    def body(self) -> torch.nn.Module:
        """The encoder network (an MLPEncoder or GeneTransformer), without pretraining heads."""
        self._check_ready()
        return self.objective.body

    @property
    def can_restore(self) -> bool:
        """Whether `restore` predicts hidden values (imputation, filling a cohort)."""
        return self.objective_cls.can_restore

    @property
    def has_attention(self) -> bool:
        """Whether the body gives attention maps (`gexcore.explain.attention_importance`)."""
        return self.objective_cls.has_attention

    @property
    def input_gradients(self) -> bool:
        """Whether integrated gradients through the body's input are defined for the method."""
        return self.objective_cls.input_gradients

    def pretrain(self, adata: AnnData, config: TrainConfig | None = None, *,
                 progress: ProgressCallback | None = None,
                 should_stop: StopCallback | None = None,
                 checkpoint_dir: str | Path | None = None, resume: bool = False) -> History:
        """Fit the normaliser and the SSL objective on `adata` (training samples only)."""
        config = config or TrainConfig()
        x, missing = self.initialize(adata, seed=config.seed)
        label = f"{self.method} on {x.shape[0]:,} x {x.shape[1]:,}"
        self.history = train(self.objective, x, missing, config, progress=progress,
                             should_stop=should_stop, checkpoint_dir=checkpoint_dir,
                             resume=resume, description=label)
        self.objective.to("cpu").eval()
        self.metadata = {"train_config": asdict(config), "history": self.history.to_dict(),
                         "data_hash": _data_hash(adata), "n_samples": int(adata.n_obs),
                         "source": str(adata.uns.get("provenance", {}).get("source", ""))}
        return self.history

    def initialize(self, adata: AnnData, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Fit the normaliser and build untrained weights (the random-init baseline).

        Returns the training tensors `(x, missing)` that `pretrain` then trains on.
        """
        self.normalizer = Normalizer(self.normalize).fit(adata)
        x, missing = cohort_tensors(adata, self.normalizer)
        torch.manual_seed(seed)                            # weight init and dropout
        self.objective = self.objective_cls.build(x.shape[1], self.model_config,
                                                  self.objective_config)
        # Bin edges, a bank of marginal draws, ...: from the training rows only.
        self.objective.fit_data(x, missing, generator=torch.Generator().manual_seed(seed))
        self.objective.eval()
        return x, missing

    @torch.no_grad()
    def embed(self, adata: AnnData, *, batch_size: int = 256, key: str | None = None,
              min_overlap: float = MIN_GENE_OVERLAP) -> np.ndarray:
        """(n_samples, dim) float32 embedding; with `key`, also stored in `adata.obsm[key]`."""
        self._check_ready()
        x, missing = cohort_tensors(adata, self.normalizer, min_overlap=min_overlap)
        self.objective.eval()
        parts = [self.objective.embed(x[i:i + batch_size], missing[i:i + batch_size])
                 for i in range(0, len(x), batch_size)]
        out = torch.cat(parts).float().numpy() if parts else np.zeros((0, self.dim), np.float32)
        if key is not None:
            adata.obsm[key] = out
        return out

    @torch.no_grad()
    def restore(self, x: torch.Tensor, missing: torch.Tensor, targets: torch.Tensor, *,
                fill: MarginalFill | None = None) -> torch.Tensor:
        """Predicted normalised values at `targets` (B, G), NaN elsewhere, on the model's device.

        `x` (B, G) has missing cells 0, `missing` marks them; target values are never read.
        CapabilityError for a method without a value decoder (`can_restore` False).
        """
        self._check_ready()
        require(self.method, "can_restore")
        device = next(self.objective.parameters()).device
        return self.objective.restore(x.to(device), missing.to(device), targets.to(device),
                                      fill=fill)

    def save(self, path: str | Path) -> Path:
        """Write `model.safetensors`, `config.json`, `metadata.json` atomically."""
        self._check_ready()
        config = {"method": self.method, "model_config": asdict(self.model_config),
                  "objective_config": asdict(self.objective_config),
                  "normalize": asdict(self.normalize), "normalizer": self.normalizer.to_dict(),
                  "n_genes": len(self.normalizer.genes_), "dim": self.dim}
        return save_checkpoint(path, self.objective.state_dict(), config, self.metadata)

    @classmethod
    def load(cls, path: str | Path) -> Encoder:
        """Rebuild from a checkpoint folder; checks the method and the gene vocabulary size."""
        ckpt = load_checkpoint(path)
        cfg = ckpt.config
        method = cfg.get("method")
        try:
            objective_cls = objective_class(method)
        except ValueError as err:
            raise CheckpointError(f"{path}: unknown method {method!r} in config.json "
                                  f"({err}).") from None
        try:
            enc = cls(method, objective_cls.model_config_cls.from_dict(cfg["model_config"]),
                      objective_cls.config_cls.from_dict(cfg["objective_config"]),
                      normalize=NormalizeConfig.from_dict(cfg["normalize"]))
            enc.normalizer = Normalizer.from_dict(cfg["normalizer"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: config.json does not describe this encoder ({err}).") from err
        if len(enc.normalizer.genes_) != cfg.get("n_genes"):
            raise CheckpointError(f"{path}: vocabulary has {len(enc.normalizer.genes_)} genes but "
                                  f"config.json says {cfg.get('n_genes')}.")
        enc.objective = objective_cls.build(cfg["n_genes"], enc.model_config,
                                            enc.objective_config)
        try:
            enc.objective.load_state_dict(ckpt.tensors, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"{path}: weights do not fit the {method} model "
                                  f"({str(err).splitlines()[0]}).") from err
        enc.objective.eval()
        enc.metadata = ckpt.metadata
        return enc

    def _check_ready(self) -> None:
        if self.objective is None or self.normalizer is None:
            raise RuntimeError("this Encoder is not pretrained; call pretrain(adata) or "
                               "Encoder.load(path) first.")


def pretrain(adata: AnnData, *, method: Method = "transformer", config: TrainConfig | None = None,
             model_config=None, objective_config=None, normalize: NormalizeConfig | None = None,
             **kwargs) -> Encoder:
    """Pretrain a new `Encoder` on `adata`; `kwargs` go to `Encoder.pretrain` (progress, ...)."""
    enc = Encoder(method, model_config, objective_config, normalize=normalize)
    enc.pretrain(adata, config, **kwargs)
    return enc


def _data_hash(adata: AnnData) -> str:
    h = hashlib.sha256(np.ascontiguousarray(adata.X, dtype=np.float32).tobytes())
    h.update("\n".join(map(str, adata.var_names)).encode())
    return h.hexdigest()[:16]
