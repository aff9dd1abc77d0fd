"""Saved prediction models (`gexcore.tasks.predictor`) and `gex fit` / `gex predict`: fit on
one cohort, save, load, score new patients; out-of-distribution flags; clear errors.

"New patients" are patients of the same simulated world that the model never saw: the
simulator plants its modules from its seed, so another seed is another world (a model scores
it at chance, and the range flag fires on every sample: `test_another_seed_is_flagged`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from gexcore.cli import main
from gexcore.data.simulate import simulate_cohort
from gexcore.errors import CheckpointError, GeneMismatchError
from gexcore.tasks.metrics import harrell_c
from gexcore.tasks.predictor import (
    MAX_OUT_OF_RANGE,
    Predictor,
    fit_predictor,
    left_out_classes,
)

WORLD = {"n_genes": 300, "n_cancer_types": 4, "n_shared_modules": 3, "module_size": 20}


def _by_patient(adata: AnnData, seed: int = 0) -> tuple[AnnData, AnnData]:
    """Two cohorts with disjoint patients (a patient's tumour and normal stay together)."""
    patients = adata.obs["patient_id"].astype(str)
    unique = np.unique(patients)
    first = np.random.default_rng(seed).choice(unique, len(unique) // 2, replace=False)
    mask = patients.isin(first).to_numpy()
    return adata[mask].copy(), adata[~mask].copy()


@pytest.fixture(scope="module")
def cohorts() -> tuple[AnnData, AnnData]:
    """(training cohort, new patients): ~250 samples each, 4 cancer types, survival."""
    return _by_patient(simulate_cohort(n_samples=500, seed=3, **WORLD))


@pytest.fixture(scope="module")
def classifier(cohorts, tmp_path_factory) -> tuple[Predictor, Path]:
    folder = tmp_path_factory.mktemp("models") / "types"
    model = fit_predictor(cohorts[0], "classification", label="cancer_type")
    model.save(folder)
    return model, folder


def truth(adata: AnnData) -> np.ndarray:
    return adata.obs["cancer_type"].astype(str).to_numpy()


def test_classifier_scores_new_patients_and_survives_reload(classifier, cohorts):
    model, folder = classifier
    new = cohorts[1]
    table = model.predict(new)
    chance = pd.Series(truth(new)).value_counts(normalize=True).max()
    accuracy = (table["predicted"].to_numpy() == truth(new)).mean()
    assert chance < 0.45 and accuracy > 0.9, (chance, accuracy)
    probs = table[[f"p_{c}" for c in model.classes]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (table["flag"] == "").mean() > 0.97          # same world: almost nothing flagged
    assert table["out_of_range"].max() < MAX_OUT_OF_RANGE
    loaded = Predictor.load(folder)
    pd.testing.assert_frame_equal(loaded.predict(new), table)
    assert sorted(p.name for p in folder.iterdir()) == [".gexscope", "head.safetensors",
                                                        "predictor.json"]


def test_class_probabilities_are_the_linear_probes(classifier, cohorts):
    """The saved head recomputes sklearn's predict_proba of the same fitted probe."""
    from gexcore.tasks.classification import linear_probe

    model, _ = classifier
    train, new = cohorts
    X = lambda a: np.nan_to_num(model.normalizer.transform(a).X).astype(float)
    probe = linear_probe().fit(X(train), truth(train))
    ours = model.predict(new)[[f"p_{c}" for c in probe.classes_]].to_numpy()
    np.testing.assert_allclose(ours, probe.predict_proba(X(new)), atol=1e-8)


def test_cox_model_keeps_the_training_cutoffs(cohorts, tmp_path):
    train, new = cohorts
    model = fit_predictor(train, "survival", groups="median")
    table = model.predict(new)
    known = np.isfinite(new.obs["time"].to_numpy())
    c = harrell_c(new.obs["time"].to_numpy()[known], new.obs["event"].to_numpy()[known] == 1,
                  table["risk"].to_numpy()[known])
    assert c > 0.7, c
    (cut,) = model.risk_groups["thresholds"]
    low, high = model.risk_groups["names"]
    assert set(table["risk_group"]) == {low, high}
    assert (table["risk_group"] == high).equals(table["risk"] > cut)
    # Scoring only high-risk patients keeps them all high: the cut is the training median,
    # not the scored cohort's.
    risky = new[(table["risk"] > cut).to_numpy()]
    assert set(model.predict(risky)["risk_group"]) == {high}
    model.save(tmp_path / "risk")
    pd.testing.assert_frame_equal(Predictor.load(tmp_path / "risk").predict(new), table)


def test_encoder_model_is_one_folder_and_masks_missing_genes(tiny_cohort, tmp_path):
    from gexcore.models.encoder import pretrain
    from gexcore.models.presets import PRESETS
    from gexcore.train.loop import TrainConfig

    encoder = pretrain(tiny_cohort, method="transformer",
                       config=TrainConfig(epochs=1, batch_size=16, val_fraction=0.2),
                       model_config=PRESETS["transformer"]["small"])
    model = fit_predictor(tiny_cohort, "classification", label="cancer_type", encoder=encoder,
                          features=encoder.embed(tiny_cohort))
    model.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m" / "encoder").iterdir()} >= {
        "model.safetensors", "config.json", "metadata.json"}
    loaded = Predictor.load(tmp_path / "m")
    table = loaded.predict(tiny_cohort)
    pd.testing.assert_frame_equal(table, model.predict(tiny_cohort))
    assert "masked" in table.attrs["missing_genes"]
    panel = tiny_cohort[:, tiny_cohort.var_names[:28]].copy()          # a smaller panel: 70%
    partial = loaded.predict(panel)
    assert partial["genes_measured"].between(0.6, 0.71).all()
    assert partial["predicted"].notna().all()
    assert not np.allclose(partial["p_" + model.classes[0]], table["p_" + model.classes[0]])


def test_shifted_values_are_flagged(classifier, cohorts):
    model, _ = classifier
    shifted = cohorts[1].copy()
    shifted.X = shifted.X + 3.0                     # log2 values: 8x higher expression
    table = model.predict(shifted)
    assert (table["out_of_range"] > 0.5).all()
    assert table["flag"].str.contains("outside the training range").all()


def test_too_few_shared_genes_are_flagged_and_none_refused(classifier, cohorts):
    model, _ = classifier
    new = cohorts[1]
    few = new[:, model.genes[:90]].copy()            # 30% of the model's genes
    table = model.predict(few)
    assert table["genes_measured"].between(0.2, 0.3).all()
    assert table["flag"].str.contains("of the model's genes measured").all()
    blank = new[:5].copy()
    blank.X[0] = np.nan                               # a sample with nothing measured
    rows = model.predict(blank)
    assert rows["predicted"].isna().iloc[0] and rows["predicted"].notna().iloc[1:].all()
    assert rows["flag"].iloc[0].startswith("only 0% of the model's genes measured")
    other = new.copy()
    other.var_names = [f"X{i}" for i in range(other.n_vars)]
    with pytest.raises(GeneMismatchError, match="shares none of the model's 300 genes"):
        model.predict(other)


def test_another_seed_is_flagged(classifier):
    """Another simulator seed plants other modules: out of range for every sample."""
    model, _ = classifier
    table = model.predict(simulate_cohort(n_samples=120, seed=4, **WORLD))
    assert (table["flag"] != "").all()


def test_a_single_sample_class_is_reported(cohorts):
    train = cohorts[0].copy()
    column = train.obs["cancer_type"].astype(str).to_numpy()
    column[0] = "RARE"
    train.obs["cancer_type"] = column
    assert left_out_classes(train.obs, "cancer_type") == {"RARE": 1}
    model = fit_predictor(train, "classification", label="cancer_type")
    assert "RARE" not in model.classes and model.info["left_out"] == {"RARE": 1}
    assert model.info["n_train"] == train.n_obs - 1


def test_load_refuses_what_is_not_a_model(tmp_path, tiny_cohort):
    from gexcore.models.encoder import pretrain
    from gexcore.train.loop import TrainConfig

    pretrain(tiny_cohort, method="scarf", config=TrainConfig(epochs=1)).save(tmp_path / "enc")
    with pytest.raises(CheckpointError, match="encoder checkpoint.*`gex fit"):
        Predictor.load(tmp_path / "enc")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "predictor.json").write_text('{"kind": "something"}')
    with pytest.raises(CheckpointError, match="not 'gexscope-predictor'"):
        Predictor.load(tmp_path / "junk")


# ------------------------------------------------------------------------------- the CLI

def write_csv_pair(adata: AnnData, folder: Path, name: str) -> tuple[Path, Path]:
    """Samples x genes expression CSV and a clinical CSV, as a user would have them."""
    folder.mkdir(parents=True, exist_ok=True)
    expression, clinical = folder / f"{name}_expression.csv", folder / f"{name}_clinical.csv"
    adata.to_df().to_csv(expression, index_label="sample_id")
    adata.obs[["cancer_type", "time", "event"]].to_csv(clinical, index_label="sample_id")
    return expression, clinical


def test_gex_fit_and_predict(cohorts, tmp_path, capsys):
    train, new = cohorts
    expr, clin = write_csv_pair(train, tmp_path, "train")
    new_expr, _ = write_csv_pair(new, tmp_path, "new")
    model = tmp_path / "model"
    assert main(["fit", str(expr), "--clinical", str(clin), "--label", "cancer_type",
                 "--out", str(model)]) == 0
    assert "predicts cancer_type (4 classes)" in capsys.readouterr().out
    out = tmp_path / "scores.csv"
    assert main(["predict", str(model), str(new_expr), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{new.n_obs:,} samples" in printed and "training mean" in printed
    table = pd.read_csv(out, index_col="sample")
    assert list(table.index) == list(new.obs_names)
    assert (table["predicted"].to_numpy() == truth(new)).mean() > 0.9


def test_gex_fit_survival_and_predict_risk_groups(cohorts, tmp_path, capsys):
    train, new = cohorts
    expr, clin = write_csv_pair(train, tmp_path, "train")
    new_expr, _ = write_csv_pair(new, tmp_path, "new")
    assert main(["fit", str(expr), "--clinical", str(clin), "--survival", "--groups",
                 "tertiles", "--out", str(tmp_path / "risk")]) == 0
    assert "survival risk (Cox)" in capsys.readouterr().out
    out = tmp_path / "risk.csv"
    assert main(["predict", str(tmp_path / "risk"), str(new_expr), "--out", str(out)]) == 0
    table = pd.read_csv(out, index_col="sample")
    assert table["risk_group"].nunique() == 3 and table["risk"].notna().all()


def test_gex_predict_errors_are_one_line(classifier, cohorts, tmp_path, capsys):
    _, folder = classifier
    expr, _ = write_csv_pair(cohorts[1][:20], tmp_path, "few")
    assert main(["predict", str(tmp_path), str(expr), "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gex predict: error:") and "not a prediction model" in err
    assert "Traceback" not in err
    assert main(["predict", str(folder), str(expr), "--out", str(tmp_path / "x.txt")]) == 2
    assert "--out must end in .csv" in capsys.readouterr().err
    assert main(["fit", str(expr), "--out", str(tmp_path / "m")]) == 2
    assert "choose one target" in capsys.readouterr().err
