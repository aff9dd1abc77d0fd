"""The `gex` command: the same operations as the app's pages, headless."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gexcore.cli_user import add_user_command
from gexcore.errors import GexError
from gexcore.models.methods import METHODS

__all__ = ["build_parser", "main"]

# Options left out are absent from the parsed args, so the config dataclass (or the called
# function) supplies its own default: defaults are declared there once, not here again.
_FROM_CONFIG = argparse.SUPPRESS


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The `EXPRESSION [--clinical FILE]` arguments every command that reads a cohort shares."""
    parser.add_argument("expression", type=Path,
                        help="expression file (CSV/TSV/TXT[.gz], Parquet, h5ad, GCT, GEO series "
                             "matrix, ARCHS4 .h5) or a folder of GDC STAR count files")
    parser.add_argument("--clinical", type=Path, help="clinical table to join on sample id "
                        "(CSV/TSV, cBioPortal clinical file, Xena phenotype)")
    g = parser.add_argument_group("reader options")
    g.add_argument("--format", default="auto",
                   choices=["auto", "table", "parquet", "h5ad", "gct", "geo", "gdc_star",
                            "archs4"],
                   help="file format (default: detected from the content)")
    g.add_argument("--orientation", default="auto",
                   choices=["auto", "genes_by_samples", "samples_by_genes"],
                   help="layout of a plain table (default: detected from the ids)")
    g.add_argument("--gene-id", default="auto", choices=["auto", "symbol", "ensembl", "as_is"],
                   help="which gene id becomes the gene name (default: symbol where known)")
    g.add_argument("--duplicates", default="auto", choices=["auto", "sum", "mean", "first"],
                   help="how to merge duplicated genes (default: sum counts, average the rest)")
    g.add_argument("--scale", default="auto",
                   choices=["auto", "counts", "linear", "log", "z-scored"],
                   help="declare the value scale (counts are then checked for negatives)")
    g.add_argument("--star-value", default="unstranded",
                   choices=["unstranded", "tpm_unstranded", "fpkm_uq_unstranded"],
                   help="GDC STAR column to read")
    g.add_argument("--sample-sheet", type=Path, help="GDC sample sheet (default: found in the folder)")
    g.add_argument("--sample-column", help="id column of the clinical table")
    g.add_argument("--time-column", help="survival time column (default: detected)")
    g.add_argument("--event-column", help="survival event column (default: detected)")
    a = parser.add_argument_group("ARCHS4 sample selection (all given filters must hold)")
    a.add_argument("--series", nargs="+", metavar="GSE", help="GEO series to take")
    a.add_argument("--meta-regex", action="append", metavar="FIELD=REGEX",
                   help="case-insensitive regex on a meta/samples field (FIELD may be "
                        "title,characteristics_ch1 for either); repeat to require several")
    a.add_argument("--max-singlecell-prob", type=float, metavar="P",
                   help="keep samples with singlecellprobability below P (e.g. 0.5)")
    a.add_argument("--max-samples", type=int, metavar="N",
                   help="then a random N of them (--sample-seed, default 0)")
    a.add_argument("--sample-seed", type=int, default=0, metavar="S",
                   help="seed of the --max-samples draw (default 0)")


def read_from_args(args: argparse.Namespace):
    """Call `read_cohort` with the shared input arguments."""
    from gexcore.data.archs4 import SampleSelection
    from gexcore.data.read import read_cohort

    select = SampleSelection.from_options(
        series=args.series, meta_regex=args.meta_regex,
        max_singlecell_prob=args.max_singlecell_prob, max_samples=args.max_samples,
        seed=args.sample_seed)
    return read_cohort(
        args.expression, args.clinical, format=args.format, orientation=args.orientation,
        gene_id=args.gene_id, duplicates=args.duplicates, scale=args.scale,
        star_value=args.star_value, sample_sheet=args.sample_sheet,
        sample_column=args.sample_column, time_column=args.time_column,
        event_column=args.event_column, select=select,
    )


def _cmd_info(args: argparse.Namespace) -> int:
    from gexcore import keys
    from gexcore.data.validate import ValidationReport

    adata = read_from_args(args)
    report = adata.uns[keys.UNS_VALIDATION]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(ValidationReport(**report).lines()))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from gexcore.data.demo import list_demos, load_demo

    if args.name is None:
        for d in list_demos():
            tag = " [simulated]" if d.simulated else ""
            print(f"{d.name:22s} {d.label}{tag}\n{'':22s} {d.description}")
        return 0
    adata = load_demo(args.name)
    out = args.out or Path(f"{args.name}.h5ad")
    _write_h5ad(adata, out)
    print(f"wrote {out} ({adata.n_obs:,} samples x {adata.n_vars:,} genes)")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    if args.out.suffix != ".h5ad":
        raise GexError(f"{args.out}: the output must end in .h5ad.")
    adata = read_from_args(args)
    _write_h5ad(adata, args.out)
    print(f"wrote {args.out} ({adata.n_obs:,} samples x {adata.n_vars:,} genes)")
    return 0


def _write_h5ad(adata, out: Path) -> None:
    """Replace `out` (a file the user named) atomically; nothing beside it is touched."""
    from gexcore.atomic import atomic_write

    atomic_write(out, lambda tmp: adata.write_h5ad(tmp))


def _given(args: argparse.Namespace, *names: str) -> dict:
    """The options among `names` given on the command line; options declared with
    `argparse.SUPPRESS` are absent from `args` when left out, so the callee's defaults apply."""
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


def _config(cls: type, args: argparse.Namespace):
    """A config dataclass from the given options named after its fields; the rest keep the
    dataclass defaults, declared there only."""
    from dataclasses import fields

    return cls(**_given(args, *(f.name for f in fields(cls))))


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from gexcore.atomic import check_output_dir
    from gexcore.models.checkpoint import ENCODER_OUTPUT
    from gexcore.train import is_main_process
    from gexcore.train.config import TrainConfig
    from gexcore.workspace.pretrain import new_encoder

    if is_main_process():           # refuse a folder of the user's before training; finish or
        check_output_dir(args.out, ENCODER_OUTPUT)        # clean a save killed last time
    adata = read_from_args(args)
    train_config = _config(TrainConfig, args)
    with _job_slot(args, "pretrain", train_config) as slot:     # waits as the app's jobs do
        # Built as the app's pretrain job builds it, so CLI and pages train the same model.
        encoder = new_encoder(args.method, **_given(args, "preset", "top_genes"),
                              device=train_config.device)
        with _progress_bar(f"pretrain {args.method}") as report:
            history = encoder.pretrain(adata, train_config, progress=report,
                                       checkpoint_dir=args.out, resume=args.resume,
                                       should_stop=slot.stop_if_cancelled)
        if is_main_process():                           # under torchrun only rank 0 writes
            encoder.save(args.out)
    if is_main_process():
        best = f"{history.best_val_loss:.4f}" if history.best_val_loss is not None else "n/a"
        print(f"wrote {args.out}: {args.method}, {encoder.dim}-d embedding, "
              f"{history.epochs} epoch(s), best val loss {best}")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    from gexcore.models.encoder import Encoder

    encoder = Encoder.load(args.model)
    adata = read_from_args(args)
    key = args.key or f"X_{Path(args.model).name}"
    encoder.embed(adata, key=key)
    _write_h5ad(adata, args.out)
    print(f"wrote {args.out}: obsm['{key}'] {adata.n_obs:,} x {encoder.dim}")
    return 0


def _cmd_impute(args: argparse.Namespace) -> int:
    from gexcore import keys
    from gexcore.atomic import atomic_write
    from gexcore.models.encoder import Encoder
    from gexcore.tasks.restore import impute_cohort

    if args.out.suffix not in (".h5ad", ".csv"):
        raise ValueError(f"--out must end in .h5ad or .csv, not {args.out.name!r}.")
    out = impute_cohort(Encoder.load(args.model), read_from_args(args))
    if args.out.suffix == ".h5ad":
        _write_h5ad(out, args.out)
    else:                                           # samples x genes, as the reader reads it
        atomic_write(args.out, lambda tmp: out.to_df().to_csv(tmp, index_label="sample"))
    info = out.uns[keys.UNS_IMPUTATION]
    print(f"wrote {args.out}: {out.n_obs:,} samples x {out.n_vars:,} genes; filled "
          f"{info['n_cells']:,} cells ({info['n_genes_added']:,} genes added) with the "
          f"{info['method']} model, in {info['units']} units")
    return 0


def _add_target_arguments(parser: argparse.ArgumentParser, title: str, survival_help: str):
    """--label, or --time/--event/--survival: what `gex evaluate` and `gex fit` predict."""
    group = parser.add_argument_group(title)
    group.add_argument("--label", help="clinical column to classify")
    group.add_argument("--time", help="survival time column")
    group.add_argument("--event", help="survival event column (0/1, or e.g. 1:DECEASED)")
    group.add_argument("--survival", action="store_true", help=survival_help)
    return group


def _survival_asked(args: argparse.Namespace) -> bool:
    """Does the command ask for survival? If so, its named columns go to the reader, which
    parses and checks them."""
    if not (args.survival or args.time is not None or args.event is not None):
        return False
    args.time_column = args.time or args.time_column
    args.event_column = args.event or args.event_column
    return True


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from gexcore import keys
    from gexcore.atomic import check_output_dir
    from gexcore.evaluate import run_evaluation
    from gexcore.evaluate.config import EvalConfig
    from gexcore.evaluate.report import REPORT_OUTPUT

    survival = _survival_asked(args)
    if sum([args.label is not None, survival, args.impute]) != 1:
        raise ValueError("choose one task: --label COLUMN, --time COLUMN --event COLUMN "
                         "(or --survival for the detected columns), or --impute.")
    check_output_dir(args.out, REPORT_OUTPUT)           # before reading and evaluating
    adata = read_from_args(args)
    if survival and keys.OBS_TIME not in adata.obs:
        raise ValueError(f"{args.expression.name}: no survival columns found; name them with "
                         "--time COLUMN --event COLUMN (and give --clinical FILE).")
    if getattr(args, "top_genes", None) == 0:
        args.top_genes = None                           # all genes for baselines and MLPs
    config = _config(EvalConfig, args)
    task = "classification" if args.label else "survival" if survival else "imputation"
    with _job_slot(args, "evaluate", config) as slot, _progress_bar(f"evaluate {task}") as report:
        out = run_evaluation(adata, task, config, out=args.out, label=args.label,
                             progress=report, should_stop=slot.stop_if_cancelled,
                             **_given(args, "groups", "missing"))
    print((out / "report.md").read_text())
    print(f"wrote {out}: results.json, report.md, curves.html")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from gexcore.atomic import check_output_dir
    from gexcore.data.normalize import NormalizeConfig
    from gexcore.explore.features import EXPRESSION_TOP_GENES
    from gexcore.models.encoder import Encoder
    from gexcore.tasks.predictor import PREDICTOR_OUTPUT, fit_predictor

    survival = _survival_asked(args)
    if (args.label is not None) == survival:
        raise ValueError("choose one target: --label COLUMN, or --time COLUMN --event COLUMN "
                         "(or --survival for the detected columns).")
    check_output_dir(args.out, PREDICTOR_OUTPUT)        # before reading and fitting
    adata = read_from_args(args)
    encoder = Encoder.load(args.encoder) if args.encoder is not None else None
    model = fit_predictor(adata, "survival" if survival else "classification",
                          label=args.label, encoder=encoder, groups=args.groups,
                          normalize=NormalizeConfig(n_top_genes=EXPRESSION_TOP_GENES))
    model.save(args.out)
    left_out = model.info.get("left_out") or {}
    for name, n in left_out.items():
        print(f"left out class {name!r} ({n} sample): a class needs at least 2 samples",
              file=sys.stderr)
    print(f"wrote {args.out}: {model.description}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from gexcore.atomic import atomic_write
    from gexcore.tasks.predictor import Predictor

    if args.out.suffix != ".csv":
        raise ValueError(f"--out must end in .csv, not {args.out.name!r}.")
    model = Predictor.load(args.model)                  # before reading: a wrong folder fails fast
    table = model.predict(read_from_args(args))
    atomic_write(args.out, lambda tmp: table.to_csv(tmp, index_label="sample"))
    flagged = int((table["flag"] != "").sum())
    print(f"wrote {args.out}: {len(table):,} samples, {flagged:,} flagged as outside what the "
          f"model saw; {model.missing_genes}")
    return 0


def _job_slot(args: argparse.Namespace, kind: str, config):
    """A slot in the server's job queue (the folder holding the app's workspaces): the command
    waits its turn behind the app's jobs and other `gex` commands, first come, first served,
    at most GEX_MAX_PARALLEL at once. No queue with --no-queue, on torchrun ranks other than
    0 (they wait for rank 0 in the rendezvous), or when no workspace folder exists yet."""
    import contextlib
    import os
    from dataclasses import asdict

    from gexcore.train import is_main_process

    base = _workspace_base()
    if (args.no_queue or not is_main_process()
            or not (base.is_dir() or os.environ.get("GEX_WORKSPACE"))):
        return contextlib.nullcontext(_NoSlot())
    from gexcore.workspace.slot import cli_user, job_slot

    def waiting(position: int, seconds: float | None) -> None:
        when = "unknown" if seconds is None else f"~{seconds / 60:.0f} min"
        print(f"gex {kind}: waiting for a job slot in {base}: number {position} in line, "
              f"starts in {when} (--no-queue runs at once)", file=sys.stderr)

    return job_slot(base, cli_user(), kind, name=f"gex {kind} {args.out.name}",
                    params=asdict(config), on_wait=waiting)


def _workspace_base():
    """The folder holding the app's workspaces, as the app finds it."""
    try:
        from gexcore.workspace.identity import default_base
    except ImportError:                    # a tree without the sign-in work: $GEX_WORKSPACE
        import os

        return Path(os.environ.get("GEX_WORKSPACE", Path(__file__).parents[1] / "workspace"))
    return default_base()


class _NoSlot:
    """Outside the queue: never cancelled."""

    def stop_if_cancelled(self) -> bool:
        return False


class _progress_bar:
    """A tqdm bar fed by `Progress` reports (on stderr, so stdout stays parseable)."""

    def __init__(self, desc: str):
        self.desc, self.bar = desc, None

    def __enter__(self):
        return self.update

    def update(self, p) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=p.total_steps, desc=self.desc, unit="step", file=sys.stderr,
                            disable=None)
        self.bar.n = min(p.step, p.total_steps)
        self.bar.set_postfix(epoch=f"{p.epoch}/{p.epochs}", loss=f"{p.loss:.4f}",
                             val=f"{p.val_loss:.4f}", refresh=False)
        self.bar.refresh()

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gex", description="GexScope: self-supervised learning on bulk gene expression.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="validate a cohort and print its report",
                       description="Read a cohort and print the validation report.")
    add_input_arguments(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("demo", help="list the demo cohorts, or write one as .h5ad",
                       description="Without NAME, list the demo cohorts; with NAME, write it.")
    p.add_argument("name", nargs="?", help="demo cohort to write (see `gex demo`)")
    p.add_argument("--out", type=Path, help="output .h5ad (default: NAME.h5ad)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("convert", help="read any supported input and write .h5ad",
                       description="Read a cohort (+ clinical) and write it as one .h5ad file.")
    add_input_arguments(p)
    p.add_argument("out", type=Path, help="output .h5ad path")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("pretrain", help="pretrain a self-supervised encoder on a cohort",
                       description="Pretrain an encoder and write a checkpoint folder "
                                   "(model.safetensors, config.json, metadata.json). Under "
                                   "`torchrun --nproc_per_node=N -m gexcore.cli pretrain ...` "
                                   "it trains data-parallel.")
    add_input_arguments(p)
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--out", type=Path, required=True,
                   help="checkpoint folder to write: new, empty, or a checkpoint to replace "
                        "(your own files in it are kept)")
    p.add_argument("--preset", default=_FROM_CONFIG, choices=["auto", "small", "base", "corpus"],
                   help="model size: small for CPUs, base for GPUs, corpus (transformer) for "
                        "large corpora on a GPU (default: by device)")
    p.add_argument("--top-genes", type=int, default=_FROM_CONFIG,
                   help="keep the N most variable genes (fitted on this cohort; default: 500 "
                        "for the transformer, all genes for the MLP methods; 0 = all)")
    g = p.add_argument_group("training (defaults: gexcore.train.TrainConfig)")
    g.add_argument("--epochs", type=int, default=_FROM_CONFIG)
    g.add_argument("--batch-size", type=int, default=_FROM_CONFIG)
    g.add_argument("--lr", type=float, default=_FROM_CONFIG, help="peak learning rate")
    g.add_argument("--seed", type=int, default=_FROM_CONFIG)
    g.add_argument("--device", default=_FROM_CONFIG, help="auto, cpu, cuda or cuda:N")
    g.add_argument("--precision", default=_FROM_CONFIG, choices=["auto", "bf16", "fp32"])
    g.add_argument("--val-fraction", type=float, default=_FROM_CONFIG)
    g.add_argument("--patience", type=int, default=_FROM_CONFIG,
                   help="epochs without validation improvement before stopping")
    g.add_argument("--checkpoint-every", type=int, default=_FROM_CONFIG,
                   help="optimiser steps between resumable checkpoints (default: each epoch)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state")
    p.add_argument("--no-queue", action="store_true",
                   help="start at once instead of waiting for a slot in the server's job queue "
                        "(GEX_MAX_PARALLEL, shared with the app)")
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("embed", help="embed a cohort with a pretrained encoder",
                       description="Embed a cohort and write it as .h5ad with the embedding in "
                                   "obsm.")
    p.add_argument("model", type=Path, help="checkpoint folder written by `gex pretrain`")
    add_input_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="output .h5ad")
    p.add_argument("--key", help="obsm key (default: X_<model folder name>)")
    p.set_defaults(func=_cmd_embed)

    p = sub.add_parser("impute", help="fill a cohort's missing genes with a pretrained encoder",
                       description="Fill the model's genes a cohort lacks, and its empty "
                                   "cells, with a transformer or VIME encoder's predictions, "
                                   "in the cohort's own units; measured values are kept. "
                                   ".h5ad output marks filled cells in layers['imputed'].")
    p.add_argument("model", type=Path, help="checkpoint folder (transformer or vime)")
    add_input_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="output .h5ad or .csv")
    p.set_defaults(func=_cmd_impute)
    p = sub.add_parser("evaluate", help="score SSL encoders against baselines on a task",
                       description="Leakage-safe evaluation: patient-aware splits, nested label "
                                   "fractions, repeated seeds; SSL encoders (frozen and "
                                   "fine-tuned) beside PCA, raw-feature, from-scratch and "
                                   "random-init baselines. Writes results.json, report.md and "
                                   "curves.html.")
    add_input_arguments(p)
    task = _add_target_arguments(p, "task (choose one)",
                                 "survival on the detected time/event columns")
    task.add_argument("--impute", action="store_true",
                      help="restore held-out genes at 10-90%% missingness")
    p.add_argument("--missing", default=_FROM_CONFIG, choices=["cells", "genes"],
                   help="--impute hides random cells (MCAR, default) or whole genes in every "
                        "test sample (a smaller panel)")
    g = p.add_argument_group("protocol (defaults: gexcore.evaluate.EvalConfig)")
    g.add_argument("--methods", nargs="+", default=_FROM_CONFIG,
                   choices=METHODS)
    g.add_argument("--fractions", nargs="+", type=float, default=_FROM_CONFIG,
                   help="labelled fractions of the training samples (nested)")
    g.add_argument("--seeds", type=int, default=_FROM_CONFIG, help="repeated splits (mean ± sd)")
    g.add_argument("--test-size", type=float, default=_FROM_CONFIG)
    g.add_argument("--pretrain-epochs", type=int, default=_FROM_CONFIG)
    g.add_argument("--finetune-epochs", type=int, default=_FROM_CONFIG)
    g.add_argument("--finetune-lr", type=float, default=_FROM_CONFIG)
    g.add_argument("--no-finetune", dest="finetune", action="store_false", default=_FROM_CONFIG,
                   help="frozen encoders only")
    g.add_argument("--preset", default=_FROM_CONFIG, choices=["small", "base", "corpus"])
    g.add_argument("--top-genes", type=int, default=_FROM_CONFIG,
                   help="genes for baselines and MLP encoders (default all; the transformer "
                        "keeps 500)")
    g.add_argument("--transductive", action="store_true", default=_FROM_CONFIG,
                   help="let pretraining see the test samples (unlabelled); the report says so")
    p.add_argument("--groups", default=_FROM_CONFIG, choices=["median", "tertiles", "quartiles"],
                   help="risk groups for the Kaplan-Meier summary (cut on training risks)")
    p.add_argument("--out", type=Path, required=True,
                   help="report folder to write: new, empty, or a report to replace (your own "
                        "files in it are kept)")
    p.add_argument("--no-queue", action="store_true",
                   help="start at once instead of waiting for a slot in the server's job queue")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("fit", help="fit a prediction model (classifier or Cox risk) for `gex "
                                   "predict`",
                       description="Fit a linear classifier of a label, or a Cox risk model, on "
                                   "every usable sample of a cohort, on an encoder's embedding "
                                   "(--encoder) or on normalised expression, and write one "
                                   "model folder (head, normaliser, encoder, training value "
                                   "ranges, risk-group cut-offs) for `gex predict`.")
    add_input_arguments(p)
    _add_target_arguments(p, "target (choose one)", "Cox risk on the detected time/event columns")
    p.add_argument("--encoder", type=Path,
                   help="checkpoint folder written by `gex pretrain` (default: expression)")
    p.add_argument("--groups", default="median", choices=["median", "tertiles", "quartiles"],
                   help="risk groups, cut at quantiles of the training risks")
    p.add_argument("--out", type=Path, required=True,
                   help="model folder to write: new, empty, or a model to replace")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("predict", help="score a cohort with a model written by `gex fit`",
                       description="Class probabilities and predicted class, or risk and risk "
                                   "group (training cut-offs), per sample, with flags for "
                                   "samples outside what the model saw: too few of its genes "
                                   "measured, or values outside the training range.")
    p.add_argument("model", type=Path, help="model folder written by `gex fit` (or the app)")
    add_input_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="output .csv, one row per sample")
    p.set_defaults(func=_cmd_predict)
    add_user_command(sub)                       # gex user add|passwd|remove|list
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        import logging
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return args.func(args)
    except (GexError, FileNotFoundError, ValueError) as err:
        print(f"gex {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
