"""The built-in job kinds: pretrain an encoder on a stored cohort; embed a cohort with one.

Torch loads inside the functions, so importing this (as the app does) stays cheap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gexcore.errors import InputError
from gexcore.models.methods import METHODS, method_info
from gexcore.progress import Progress
from gexcore.workspace.jobs import JobCancelled, JobContext, register_job_kind
from gexcore.workspace.losslog import LossRecorder
from gexcore.workspace.runs import RunInfo
from gexcore.workspace.store import Workspace, embedding_name

if TYPE_CHECKING:
    from gexcore.models.encoder import Encoder
    from gexcore.models.objectives import Method
    from gexcore.models.presets import Preset
    from gexcore.train.config import TrainConfig

__all__ = [
    "DEFAULT_TOP_GENES",
    "EmbedJob",
    "PretrainJob",
    "finished_encoder",
    "new_encoder",
    "run_embed",
    "run_pretrain",
]

# The methods' `default_top_genes` (declared on their Objective classes; why there), without torch.
DEFAULT_TOP_GENES = {m: method_info(m).default_top_genes for m in METHODS
                     if method_info(m).default_top_genes is not None}


def new_encoder(method: Method, **options) -> Encoder:
    """`gexcore.models.presets.new_encoder` (preset, top_genes, device), loaded on first use so
    this module imports without torch."""
    from gexcore.models.presets import new_encoder as _new_encoder

    return _new_encoder(method, **options)


def _train_config(data: dict[str, Any] | None = None) -> TrainConfig:
    from gexcore.train.config import TrainConfig  # torch: load it only when a job is built

    return TrainConfig.from_dict(data or {})


@dataclass(frozen=True)
class PretrainJob:
    """Pretrain `method` on a stored cohort with `train`; the run folder becomes the checkpoint,
    and the cohort's embedding is stored as `ws.embedding(cohort, run_id)`."""

    cohort: str
    method: Method = "transformer"
    preset: Preset = "auto"
    top_genes: int | None = None          # None = the method's default, 0 = all genes
    train: TrainConfig = field(default_factory=_train_config)
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):              # as stored in the run's params
            object.__setattr__(self, "train", _train_config(self.train))

    def check(self, ws: Workspace) -> None:
        """Refuse bad settings before the job is queued."""
        from gexcore.models.presets import PRESETS

        ws.cohort(self.cohort)
        if self.method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}.")
        presets = ("auto", *PRESETS[self.method])
        if self.preset not in presets:
            raise InputError(f"preset must be one of {', '.join(presets)}, not {self.preset!r}.")
        if self.top_genes is not None and (not isinstance(self.top_genes, int)
                                           or self.top_genes < 0):
            raise InputError(f"top_genes must be None or an integer >= 0, not {self.top_genes!r}.")

    def describe(self, ws: Workspace) -> str:
        return f"{self.method} on {ws.cohort(self.cohort).name}"


def finished_encoder(ws: Workspace, run_id: str) -> RunInfo:
    """The run, if it is a finished pretrain run (an encoder to apply); else InputError."""
    run = ws.run(run_id)
    if run.kind != "pretrain" or run.status != "done":
        raise InputError(f"run {run_id!r} is a {run.status} {run.kind} run; pick a finished "
                         "pretrain run.")
    return run


@dataclass(frozen=True)
class EmbedJob:
    """Embed a stored cohort with a finished pretrain run; stored as `ws.embedding(cohort, run)`."""

    cohort: str
    run: str
    name: str = ""

    def check(self, ws: Workspace) -> None:
        ws.cohort(self.cohort)
        finished_encoder(ws, self.run)

    def describe(self, ws: Workspace) -> str:
        return f"embed {ws.cohort(self.cohort).name} with {ws.run(self.run).name}"


def run_pretrain(job: PretrainJob, ctx: JobContext) -> dict[str, Any]:
    """Pretrain, save the encoder into the run folder, embed the same cohort."""
    adata = ctx.workspace.load_cohort(job.cohort)
    encoder = new_encoder(job.method, preset=job.preset, top_genes=job.top_genes,
                          device=job.train.device)
    progress = LossRecorder(ctx.workspace, ctx.run_id, ctx.progress)    # live loss curve
    history = encoder.pretrain(adata, job.train, progress=progress,
                               should_stop=ctx.should_stop)
    if history.cancelled:
        raise JobCancelled(f"cancelled after {history.steps} steps")
    encoder.save(ctx.out_dir)
    embedding = encoder.embed(adata)
    ctx.workspace.save_array(ctx.run_id, embedding_name(job.cohort), embedding)
    return {"method": job.method, "best_val_loss": history.best_val_loss,
            "best_epoch": history.best_epoch, "epochs": history.epochs,
            "stopped_early": history.stopped_early, "seconds": round(history.seconds, 2),
            "n_samples": int(adata.n_obs), "n_genes": len(encoder.genes), "dim": encoder.dim,
            "device": history.device, "precision": history.precision}


def run_embed(job: EmbedJob, ctx: JobContext) -> dict[str, Any]:
    """Embed the cohort with the run's encoder (genes aligned by name; too little overlap fails)."""
    from gexcore.models.encoder import Encoder

    started = time.perf_counter()
    ctx.progress(Progress("embed", 0, 1, message="loading"))
    encoder = Encoder.load(ctx.workspace.run_dir(job.run))
    adata = ctx.workspace.load_cohort(job.cohort)
    embedding = encoder.embed(adata)
    ctx.workspace.save_array(job.run, embedding_name(job.cohort), embedding)
    ctx.progress(Progress("embed", 1, 1, message="done"))
    return {"n_samples": int(adata.n_obs), "dim": int(embedding.shape[1]),
            "seconds": round(time.perf_counter() - started, 2)}


register_job_kind("pretrain", PretrainJob, run_pretrain)
register_job_kind("embed", EmbedJob, run_embed)
