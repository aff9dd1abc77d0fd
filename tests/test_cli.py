"""The `gex` command: info, demo, convert; errors as one message, never a traceback."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

from gexcore.cli import main
from gexcore.models import checkpoint
from gexcore.models.encoder import Encoder
from gexcore.train import load_train_state
from tests.crash import killed_at

DATA = Path(__file__).resolve().parents[1] / "assets" / "data"
GSE = DATA / "gse7390_breast"
TISSUE = DATA / "tissue_gene_expression"


def test_info_gse7390(capsys):
    assert main(["info", str(GSE / "expression.csv.gz"), "--clinical", str(GSE / "clinical.csv")]) == 0
    out = capsys.readouterr().out
    assert "198 samples x 76 genes" in out
    assert "198 of 198 samples matched" in out
    assert "time=tdm_days (days), event=tdm_event; 51 events in 198" in out
    assert "probe ids" in out


def test_info_tissue_json(capsys):
    assert main(["info", str(TISSUE / "expression.csv.gz"), "--clinical",
                 str(TISSUE / "clinical.csv"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["n_samples"], report["n_genes"]) == (189, 500)
    assert report["scale"] == "log" and report["columns"]["tissue"] == "7 values"


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("gene,S1\nTP53,oops\n")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gex info: error: bad.csv:") and "Traceback" not in err


def test_bad_time_column_lists_columns(capsys):
    code = main(["info", str(GSE / "expression.csv.gz"), "--clinical", str(GSE / "clinical.csv"),
                 "--time-column", "OS_days"])
    assert code == 2
    err = capsys.readouterr().err
    assert "OS_days" in err and "tdm_days" in err


def test_convert_round_trip(tmp_path, capsys):
    out = tmp_path / "gse.h5ad"
    assert main(["convert", str(GSE / "expression.csv.gz"), "--clinical",
                 str(GSE / "clinical.csv"), str(out)]) == 0
    adata = anndata.read_h5ad(out)
    assert adata.shape == (198, 76) and adata.obs["event"].sum() == 51
    assert not list(tmp_path.glob(".*.tmp")), "temp file left behind"


def test_convert_refuses_other_suffix(tmp_path, capsys):
    assert main(["convert", str(GSE / "expression.csv.gz"), str(tmp_path / "x.csv")]) == 2
    assert not (tmp_path / "x.csv").exists()


def test_demo_list_and_write(tmp_path, capsys):
    assert main(["demo"]) == 0
    listing = capsys.readouterr().out
    assert "simulated_pancancer" in listing and "[simulated]" in listing and "gse7390" in listing
    out = tmp_path / "tissue.h5ad"
    assert main(["demo", "tissue", "--out", str(out)]) == 0
    assert anndata.read_h5ad(out).shape == (189, 500)


def test_demo_unknown_name(capsys):
    assert main(["demo", "tcga"]) == 2
    assert "choose one of: simulated_pancancer" in capsys.readouterr().err


def test_console_script_help_runs():
    result = subprocess.run([sys.executable, "-m", "gexcore.cli", "info", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--clinical" in result.stdout and "--orientation" in result.stdout


@pytest.mark.parametrize("method", ["transformer", "scarf", "vime", "byol"])
def test_pretrain_then_embed_on_tissue(method, tmp_path, capsys):
    """Each method trains from the CLI on the real tissue data; the embedding reloads exactly."""
    run = tmp_path / method
    args = [str(TISSUE / "expression.csv.gz"), "--clinical", str(TISSUE / "clinical.csv")]
    assert main(["pretrain", *args, "--method", method, "--out", str(run), "--epochs", "1",
                 "--batch-size", "32"]) == 0
    assert f"wrote {run}: {method}" in capsys.readouterr().out
    assert main(["embed", str(run), *args, "--out", str(tmp_path / "emb.h5ad")]) == 0
    adata = anndata.read_h5ad(tmp_path / "emb.h5ad")
    emb = adata.obsm[f"X_{method}"]
    assert emb.shape[0] == 189 and np.isfinite(emb).all()
    from gexcore.models.encoder import Encoder
    np.testing.assert_array_equal(Encoder.load(run).embed(adata), emb)


def test_pretrain_bad_method_and_embed_bad_model(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["pretrain", str(TISSUE / "expression.csv.gz"), "--method", "pca", "--out", "x"])
    assert main(["embed", str(tmp_path / "no_model"), str(TISSUE / "expression.csv.gz"),
                 "--out", str(tmp_path / "e.h5ad")]) == 2
    assert "not a checkpoint folder" in capsys.readouterr().err
    assert not (tmp_path / "e.h5ad").exists()


def _user_csv_pair(tmp_path):
    """A cohort as a user brings it: genes x samples CSV and a clinical CSV of their own."""
    from gexcore.data.simulate import SimulationConfig, simulate_cohort
    adata = simulate_cohort(SimulationConfig(n_samples=60, n_genes=100, n_cancer_types=3,
                                             n_shared_modules=2, module_size=8, n_batches=2,
                                             n_prognostic_modules=1, seed=1))
    expr = tmp_path / "my_expression.csv"
    clin = tmp_path / "my_clinical.csv"
    adata.to_df().T.to_csv(expr)
    obs = adata.obs.rename(columns={"cancer_type": "Tumour type", "time": "OS_MONTHS",
                                    "event": "OS_STATUS"})
    obs["OS_STATUS"] = np.where(obs["OS_STATUS"] > 0, "1:DECEASED", "0:LIVING")
    obs.rename_axis("sample").to_csv(clin)
    return expr, clin, adata


FAST = ["--methods", "scarf", "--fractions", "0.5", "1.0", "--seeds", "1",
        "--pretrain-epochs", "1", "--finetune-epochs", "1"]


def test_evaluate_classification_on_a_user_csv_pair(tmp_path, capsys):
    expr, clin, _ = _user_csv_pair(tmp_path)
    out = tmp_path / "report"
    assert main(["evaluate", str(expr), "--clinical", str(clin), "--label", "Tumour type",
                 *FAST, "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["task"] == "classification" and data["info"]["label"] == "Tumour type"
    assert {r["model"] for r in data["scores"]} >= {"PCA + linear", "raw-feature linear",
                                                    "MLP from scratch", "scarf"}
    assert "| scarf (fine-tuned) |" in (out / "report.md").read_text()
    assert (out / "curves.html").exists() and (out / "predictions.csv").exists()
    assert "| model | 50% | 100% |" in capsys.readouterr().out
    # Again into the same folder, now holding the user's notes: replaced, notes kept.
    (out / "notes.md").write_text("compare with run 2")
    assert main(["evaluate", str(expr), "--impute", "--methods", "scarf", "--seeds", "1",
                 "--fractions", "1.0", "--pretrain-epochs", "1", "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["task"] == "imputation"
    assert (out / "notes.md").read_text() == "compare with run 2"
    assert not (out / "predictions.csv").exists()        # the classification run's, now stale
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_evaluate_survival_with_cbioportal_style_columns(tmp_path):
    expr, clin, adata = _user_csv_pair(tmp_path)
    out = tmp_path / "surv"
    assert main(["evaluate", str(expr), "--clinical", str(clin), "--time", "OS_MONTHS",
                 "--event", "OS_STATUS", *FAST, "--no-finetune", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["info"]["events"] == int(adata.obs["event"].sum())
    assert all(0 <= r["c_harrell"] <= 1 for r in data["scores"])


def test_evaluate_imputation(tmp_path):
    expr, _, _ = _user_csv_pair(tmp_path)
    out = tmp_path / "imp"
    assert main(["evaluate", str(expr), "--impute", "--methods", "vime", "--seeds", "1",
                 "--pretrain-epochs", "1", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert {r["model"] for r in data["scores"]} == {"mean", "knn", "vime"}
    assert {r["missing_rate"] for r in data["scores"]} == {0.1, 0.3, 0.5, 0.7, 0.9}
    assert data["info"]["missing"] == "cells"
    assert "observed test cells hidden at random" in (out / "report.md").read_text()


def test_evaluate_imputation_of_whole_genes(tmp_path):
    expr, _, _ = _user_csv_pair(tmp_path)
    out = tmp_path / "panel"
    assert main(["evaluate", str(expr), "--impute", "--missing", "genes", "--methods", "vime",
                 "--seeds", "1", "--pretrain-epochs", "1", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["info"]["missing"] == "genes"
    hidden = {r["missing_rate"]: r["n_masked"] for r in data["scores"] if r["model"] == "knn"}
    for rate, n in hidden.items():                 # whole genes x 12 test samples, less the
        cells = round(rate * 100) * 12             # cells the simulator left empty
        assert 0.85 * cells <= n <= cells, (rate, n)
    assert "whole genes hidden in every test sample" in (out / "report.md").read_text()


def test_evaluate_bad_label_lists_the_columns(tmp_path, capsys):
    expr, clin, _ = _user_csv_pair(tmp_path)
    assert main(["evaluate", str(expr), "--clinical", str(clin), "--label", "subtype",
                 *FAST, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "'subtype'" in err and "Tumour type" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_evaluate_needs_exactly_one_task(tmp_path, capsys):
    expr, _, _ = _user_csv_pair(tmp_path)
    assert main(["evaluate", str(expr), "--label", "x", "--impute",
                 "--out", str(tmp_path / "x")]) == 2
    assert "choose one task" in capsys.readouterr().err


def test_impute_fills_a_smaller_panel_from_a_csv(tmp_path, capsys):
    """Pretrain on the full cohort, then fill a panel that lacks 10 genes: CSV and h5ad out."""
    expr, _, adata = _user_csv_pair(tmp_path)
    model = tmp_path / "vime"
    assert main(["pretrain", str(expr), "--method", "vime", "--epochs", "1",
                 "--out", str(model)]) == 0
    dropped = list(adata.var_names[:10])
    panel = tmp_path / "panel.csv"
    pd.read_csv(expr, index_col=0).drop(index=dropped).to_csv(panel)
    capsys.readouterr()

    assert main(["impute", str(model), str(panel), "--out", str(tmp_path / "full.csv")]) == 0
    printed = capsys.readouterr().out
    assert "(10 genes added) with the vime model, in log units" in printed
    full = pd.read_csv(tmp_path / "full.csv", index_col="sample")
    assert full.shape == (60, 100) and list(full.columns[-10:]) == dropped
    assert np.isfinite(full.to_numpy()).all()
    kept = pd.read_csv(panel, index_col=0).T
    measured = kept.loc[full.index].notna()
    np.testing.assert_allclose(full[kept.columns][measured], kept.loc[full.index][measured],
                               rtol=1e-6)

    assert main(["impute", str(model), str(panel), "--out", str(tmp_path / "full.h5ad")]) == 0
    filled = anndata.read_h5ad(tmp_path / "full.h5ad")
    imputed = filled.layers["imputed"]
    assert imputed[:, -10:].all() and f"filled {int(imputed.sum())} cells" in printed
    np.testing.assert_array_equal(imputed[:, :90], np.isnan(kept.loc[filled.obs_names]))


def test_impute_refuses_a_model_without_a_decoder_and_a_bad_suffix(tmp_path, capsys):
    expr, _, _ = _user_csv_pair(tmp_path)
    model = tmp_path / "scarf"
    assert main(["pretrain", str(expr), "--method", "scarf", "--epochs", "1",
                 "--out", str(model)]) == 0
    capsys.readouterr()
    assert main(["impute", str(model), str(expr), "--out", str(tmp_path / "x.csv")]) == 2
    assert "'scarf' has no value decoder" in capsys.readouterr().err
    assert main(["impute", str(model), str(expr), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "must end in .h5ad or .csv" in capsys.readouterr().err
    assert not any(tmp_path.glob("x.*"))


# --- --out never deletes what GexScope did not write ---------------------------------------

@pytest.mark.parametrize("command", ["pretrain", "evaluate"])
def test_out_refuses_a_folder_of_the_users(command, tmp_path, capsys):
    """Regression: --out on an existing folder silently deleted everything in it."""
    expr, clin, _ = _user_csv_pair(tmp_path)
    out = tmp_path / "my results"
    out.mkdir()
    (out / "notes.md").write_bytes(b"a week of notes\n")
    task = (["--method", "scarf", "--epochs", "1"] if command == "pretrain" else
            ["--clinical", str(clin), "--label", "Tumour type", *FAST])
    assert main([command, str(expr), *task, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and "Choose a new or empty folder" in err
    assert [p.name for p in out.iterdir()] == ["notes.md"]
    assert (out / "notes.md").read_bytes() == b"a week of notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my results", "my_clinical.csv",
                                                          "my_expression.csv"]


def test_out_replaces_a_checkpoint_only_once_the_new_one_is_complete(tmp_path, umask022):
    """Regression: the old folder was deleted whole; outputs were 0600, unreadable to the lab."""
    expr, _, _ = _user_csv_pair(tmp_path)
    out = tmp_path / "enc"
    pretrain = ["pretrain", str(expr), "--method", "scarf", "--epochs", "1", "--out", str(out)]
    assert main(pretrain) == 0
    modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in [out, *out.rglob("*")]}
    assert modes["."] == modes["train_state"] == 0o755 and modes["model.safetensors"] == 0o644
    assert set(modes.values()) == {0o755, 0o644}
    (out / "notes.md").write_text("mine")
    model = {name: (out / name).read_bytes() for name in checkpoint._FILES}
    with killed_at(checkpoint, "save_file", 1):         # killed while writing the new model
        main([*pretrain, "--seed", "1"])
    assert {name: (out / name).read_bytes() for name in checkpoint._FILES} == model
    assert main([*pretrain, "--seed", "1"]) == 0        # cleans the killed save's temp folder
    assert (out / "model.safetensors").read_bytes() != model["model.safetensors"]
    assert (out / "notes.md").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc", "my_clinical.csv",
                                                          "my_expression.csv"]


@pytest.fixture
def umask022():
    saved = os.umask(0o022)
    yield
    os.umask(saved)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished `gex pretrain` folder (model + train_state at the last step) and its input."""
    root = tmp_path_factory.mktemp("trained")
    expr, _, _ = _user_csv_pair(root)
    assert main(["pretrain", str(expr), "--method", "scarf", "--epochs", "1",
                 "--out", str(root / "enc")]) == 0
    return expr, root / "enc"


# os.replace calls of the final save: 1 the marker's "complete", 2 the old folder aside, 3 the
# new one in place, 4-5 notes.md and train_state/ moved across; then the old folder removed.
FINAL_SAVE_KILLS = [("replace", 1), ("replace", 2), ("replace", 3), ("replace", 4),
                    ("replace", 5), ("rmtree", 1)]


@pytest.mark.parametrize("name, call", FINAL_SAVE_KILLS)
def test_resume_after_a_kill_at_each_point_of_the_final_save(trained, tmp_path, name, call,
                                                             caplog):
    """Regression: a kill in the final save hid the finished model in `.out.*.tmp` and moved
    train_state/ there, so --resume started from step 0 (saying so only with -v)."""
    expr, done = trained
    out = tmp_path / "enc"
    shutil.copytree(done, out)
    (out / "notes.md").write_bytes(b"mine\n")
    resume = ["pretrain", str(expr), "--method", "scarf", "--epochs", "1", "--out", str(out),
              "--resume"]
    ours = lambda path, *rest: ".enc." in str(path) or str(path) == str(out)
    with killed_at(shutil if name == "rmtree" else os, name, call, when=ours):
        main(resume)
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".enc.")], "a temp folder is left"
    with caplog.at_level(logging.INFO):
        assert main(resume) == 0
    assert "cannot resume" not in caplog.text and "resuming from" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc"]
    assert (out / "notes.md").read_bytes() == b"mine\n"
    saved = load_train_state(out)
    assert saved.meta["loop"]["step"] == saved.meta["total_steps"]
    Encoder.load(out)


def test_out_to_a_file_replaces_only_that_file(tmp_path):
    (tmp_path / "notes.md").write_text("mine")
    out = tmp_path / "gse.h5ad"
    out.write_text("an older export")
    assert main(["convert", str(GSE / "expression.csv.gz"), str(out)]) == 0
    assert anndata.read_h5ad(out).n_obs == 198
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gse.h5ad", "notes.md"]
