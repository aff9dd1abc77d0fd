"""The "impute" job: fill a stored cohort's missing genes with a finished transformer or VIME
run, and store the result as a new cohort (the original is never changed)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from gexcore import keys
from gexcore.errors import InputError
from gexcore.models.methods import methods_with
from gexcore.progress import Progress
from gexcore.workspace.jobs import JobContext, register_job_kind
from gexcore.workspace.pretrain import finished_encoder
from gexcore.workspace.store import Workspace

__all__ = ["Gap", "ImputeJob", "gap", "run_impute"]


@dataclass(frozen=True)
class ImputeJob:
    """Fill `cohort`'s missing genes with pretrain run `run`; `name` names the new cohort."""

    cohort: str
    run: str
    name: str = ""

    def check(self, ws: Workspace) -> None:
        ws.cohort(self.cohort)
        run = finished_encoder(ws, self.run)
        method, able = run.params.get("method"), methods_with("can_restore")
        if method not in able:
            raise InputError(f"{run.name} is a {method} encoder, which has no value decoder; "
                             f"fill genes with a {' or '.join(able)} run.")

    def describe(self, ws: Workspace) -> str:
        return f"impute {ws.cohort(self.cohort).name} with {ws.run(self.run).name}"

    def cohort_name(self, ws: Workspace) -> str:
        return self.name.strip() or (f"{ws.cohort(self.cohort).name} "
                                     f"(filled by {ws.run(self.run).name})")


@dataclass(frozen=True)
class Gap:
    """What a run's encoder could fill in a cohort: its genes the cohort lacks, empty cells."""

    model_genes: int
    missing_genes: int
    empty_cells: int

    @property
    def enough_overlap(self) -> bool:
        """The cohort measures at least `MIN_GENE_OVERLAP` of the model's genes."""
        from gexcore.data.genes import MIN_GENE_OVERLAP

        return self.model_genes - self.missing_genes >= MIN_GENE_OVERLAP * self.model_genes

    @property
    def empty(self) -> bool:
        return not (self.missing_genes or self.empty_cells)


def gap(ws: Workspace, run_id: str, adata: AnnData) -> Gap:
    """Read from the checkpoint's config (no torch): the model's genes against the cohort's."""
    config = json.loads((ws.run_dir(run_id) / "config.json").read_text(encoding="utf-8"))
    genes = pd.Index(config["normalizer"]["genes"])
    pos = adata.var_names.get_indexer(genes)
    present = pos[pos >= 0]
    empty = int(np.isnan(np.asarray(adata.X[:, present], dtype=np.float32)).sum())
    return Gap(len(genes), int((pos < 0).sum()), empty)


def run_impute(job: ImputeJob, ctx: JobContext) -> dict[str, Any]:
    from gexcore.models.encoder import Encoder
    from gexcore.tasks.restore import impute_cohort

    started = time.perf_counter()
    ctx.progress(Progress("impute", 0, 1, message="loading"))
    ws = ctx.workspace
    out = impute_cohort(Encoder.load(ws.run_dir(job.run)), ws.load_cohort(job.cohort))
    source = f"{ws.cohort(job.cohort).source} + imputed by run {job.run}"
    cohort_id = ws.add_cohort(out, job.cohort_name(ws), source=source)
    ctx.progress(Progress("impute", 1, 1, message="done"))
    info = out.uns[keys.UNS_IMPUTATION]
    return {"cohort": cohort_id, "n_cells": info["n_cells"],
            "n_genes_added": info["n_genes_added"],
            "seconds": round(time.perf_counter() - started, 2)}


register_job_kind("impute", ImputeJob, run_impute)
