"""Defaults are declared once, on the dataclasses: the CLI and the jobs start from them (the
forms too: tests/app/test_train.py::test_forms_start_at_the_dataclass_defaults).

Regression: pretraining epochs were 10 in PretrainJob, `gex pretrain` and the Train form but 20
in TrainConfig; the evaluate form said 10 pretraining epochs where EvalConfig said 20.
"""

from __future__ import annotations

import inspect
from dataclasses import replace

from gexcore.cli import _config, _given, build_parser
from gexcore.evaluate.config import QUICK_EVAL, EvalConfig
from gexcore.train.config import TrainConfig
from gexcore.workspace import EvaluateJob, PretrainJob

PRETRAIN = ["pretrain", "x.csv", "--method", "scarf", "--out", "run"]
EVALUATE = ["evaluate", "x.csv", "--label", "type", "--out", "report"]


def _signature_defaults(fn, *names: str) -> dict:
    params = inspect.signature(fn).parameters
    return {name: params[name].default for name in names}


def test_jobs_start_at_the_config_defaults():
    assert PretrainJob(cohort="c").train == TrainConfig()
    assert EvaluateJob(cohort="c").config == EvalConfig()
    # an evaluation pretrains as a default pretrain run does, so its report scores that encoder
    assert EvalConfig().pretrain_epochs == TrainConfig().epochs
    # the app's quick evaluation differs from the protocol only in what makes it quick
    assert replace(QUICK_EVAL, methods=EvalConfig().methods, fractions=EvalConfig().fractions,
                   seeds=EvalConfig().seeds) == EvalConfig()


def test_gex_pretrain_defaults_are_the_dataclass_defaults():
    from gexcore.models.presets import new_encoder

    args = build_parser().parse_args(PRETRAIN)
    assert _config(TrainConfig, args) == TrainConfig()
    assert _given(args, "preset", "top_genes") == {}         # new_encoder's defaults apply ...
    job = PretrainJob(cohort="c")                             # ... which are the job's
    assert _signature_defaults(new_encoder, "preset", "top_genes") == {
        "preset": job.preset, "top_genes": job.top_genes}


def test_gex_evaluate_defaults_are_the_dataclass_defaults():
    from gexcore.evaluate import run_evaluation

    args = build_parser().parse_args(EVALUATE)
    assert _config(EvalConfig, args) == EvalConfig()
    assert _given(args, "groups", "missing") == {}           # run_evaluation's defaults apply
    job = EvaluateJob(cohort="c")
    assert _signature_defaults(run_evaluation, "groups", "missing") == {
        "groups": job.groups, "missing": job.missing}


def test_every_gex_pretrain_training_flag_reaches_the_config():
    flags = ["--epochs", "3", "--batch-size", "16", "--lr", "0.01", "--seed", "4", "--device",
             "cpu", "--precision", "fp32", "--val-fraction", "0.2", "--patience", "2",
             "--checkpoint-every", "50"]
    assert _config(TrainConfig, build_parser().parse_args(PRETRAIN + flags)) == TrainConfig(
        epochs=3, batch_size=16, lr=0.01, seed=4, device="cpu", precision="fp32",
        val_fraction=0.2, patience=2, checkpoint_every=50)


def test_every_gex_evaluate_protocol_flag_reaches_the_config():
    flags = ["--methods", "vime", "byol", "--fractions", "1", "0.5", "--seeds", "2",
             "--test-size", "0.3", "--pretrain-epochs", "4", "--finetune-epochs", "5",
             "--finetune-lr", "0.01", "--no-finetune", "--preset", "base", "--top-genes", "7",
             "--transductive"]
    assert _config(EvalConfig, build_parser().parse_args(EVALUATE + flags)) == EvalConfig(
        methods=("vime", "byol"), fractions=(0.5, 1.0), seeds=2, test_size=0.3,
        pretrain_epochs=4, finetune_epochs=5, finetune_lr=0.01, finetune=False, preset="base",
        top_genes=7, transductive=True)
