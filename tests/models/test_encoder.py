"""Encoder life cycle on the tiny simulated cohort: pretrain, embed, save, load, refuse bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gexcore.data.simulate import simulate_cohort
from gexcore.errors import CheckpointError, GeneMismatchError, InputError
from gexcore.models.encoder import Encoder, pretrain
from gexcore.models.presets import PRESETS
from gexcore.train.loop import TrainConfig

ONE_EPOCH = TrainConfig(epochs=1, batch_size=16, val_fraction=0.2)
METHODS = ["transformer", "scarf", "vime", "byol"]


@pytest.mark.parametrize("method", METHODS)
def test_save_load_gives_identical_embeddings(method, tiny_cohort, tmp_path):
    enc = pretrain(tiny_cohort, method=method, config=ONE_EPOCH,
                   model_config=PRESETS[method]["small"])
    emb = enc.embed(tiny_cohort, key="X_test")
    assert emb.shape == (tiny_cohort.n_obs, enc.dim) and emb.dtype == np.float32
    assert np.isfinite(emb).all()
    np.testing.assert_array_equal(tiny_cohort.obsm["X_test"], emb)
    enc.save(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        ".gexscope", "config.json", "metadata.json", "model.safetensors"]
    again = Encoder.load(tmp_path / "run")
    np.testing.assert_array_equal(again.embed(tiny_cohort), emb)
    assert again.genes == enc.genes


def test_metadata_records_versions_seed_and_history(tiny_cohort, tmp_path):
    enc = pretrain(tiny_cohort, method="scarf", config=ONE_EPOCH)
    enc.save(tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert meta["train_config"]["seed"] == 0 and meta["versions"]["torch"]
    assert len(meta["history"]["train_loss"]) == 1 and len(meta["data_hash"]) == 16
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["method"] == "scarf" and config["n_genes"] == tiny_cohort.n_vars


def test_wrong_genes_refused(tiny_cohort):
    enc = pretrain(tiny_cohort, method="vime", config=ONE_EPOCH)
    other = tiny_cohort.copy()
    other.var_names = [f"OTHER{i}" for i in range(other.n_vars)]
    with pytest.raises(GeneMismatchError, match="expected genes are present"):
        enc.embed(other)


def test_missing_genes_are_masked_not_zero_filled(tiny_cohort):
    """A cohort lacking some vocabulary genes still embeds; those genes count as missing."""
    enc = pretrain(tiny_cohort, method="transformer", config=ONE_EPOCH,
                   model_config=PRESETS["transformer"]["small"])
    partial = tiny_cohort[:, 5:].copy()
    emb = enc.embed(partial)
    assert np.isfinite(emb).all()
    assert not np.allclose(emb, enc.embed(tiny_cohort))


def test_checkpoint_errors(tiny_cohort, tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        Encoder.load(tmp_path / "nothing")
    enc = pretrain(tiny_cohort, method="scarf", config=ONE_EPOCH)
    enc.save(tmp_path / "run")
    (tmp_path / "run" / "metadata.json").unlink()
    with pytest.raises(CheckpointError, match="missing metadata.json"):
        Encoder.load(tmp_path / "run")
    enc.save(tmp_path / "run2")
    cfg = json.loads((tmp_path / "run2" / "config.json").read_text())
    cfg["kind"] = "something-else"
    (tmp_path / "run2" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="not a GexScope encoder"):
        Encoder.load(tmp_path / "run2")
    enc.save(tmp_path / "run3")
    cfg = json.loads((tmp_path / "run3" / "config.json").read_text())
    cfg["model_config"]["hidden"] = 64                     # weights no longer fit
    (tmp_path / "run3" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="weights do not fit"):
        Encoder.load(tmp_path / "run3")


def test_save_keeps_resumable_train_state(tiny_cohort, tmp_path):
    run = tmp_path / "run"
    enc = pretrain(tiny_cohort, method="byol", config=ONE_EPOCH, checkpoint_dir=run)
    assert (run / "train_state").is_dir()
    enc.save(run)
    assert (run / "train_state").is_dir() and (run / "model.safetensors").exists()


def test_save_refuses_a_users_folder_and_keeps_user_files_of_a_checkpoint(tiny_cohort,
                                                                          tmp_path):
    """Regression: saving over a folder deleted everything in it."""
    enc = pretrain(tiny_cohort, method="scarf", config=ONE_EPOCH)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "data.csv").write_text("1,2,3")
    with pytest.raises(InputError, match="not an encoder checkpoint written by GexScope"):
        enc.save(mine)
    assert [p.name for p in mine.iterdir()] == ["data.csv"]
    run = tmp_path / "run"
    enc.save(run)
    (run / "notes.md").write_text("lr 1e-3 was better")
    enc.save(run)
    assert (run / "notes.md").read_text() == "lr 1e-3 was better"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "run"]
    Encoder.load(run)


@pytest.mark.parametrize("method", METHODS)
def test_pretraining_beats_random_init_on_a_linear_probe(method):
    """On the simulator, SSL embeddings separate cancer types better than untrained weights."""
    # Small type modules keep types hard to separate, so untrained weights do not already win.
    adata = simulate_cohort(n_samples=400, n_genes=300, n_cancer_types=8, n_shared_modules=4,
                            module_size=10, seed=3)
    y = adata.obs["label"].astype(str).to_numpy()

    def probe(emb):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        return cross_val_score(model, emb, y, cv=4).mean()

    small = PRESETS[method]["small"]
    random_init = Encoder(method, small)
    random_init.initialize(adata)
    trained = pretrain(adata, method=method, config=TrainConfig(epochs=10, batch_size=64),
                       model_config=small)
    assert trained.history.val_loss[-1] < trained.history.val_loss[0]
    assert probe(trained.embed(adata)) > probe(random_init.embed(adata)) + 0.03
