"""The method registry: every registered method (the built-ins and a one-file toy) goes through
pretrain -> embed -> probe -> explain -> impute, as far as its declared capabilities go."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from gexcore.errors import CapabilityError, CheckpointError, InputError
from gexcore.explain import attention_importance, gene_attributions, linear_head
from gexcore.models.encoder import Encoder
from gexcore.models.methods import (
    METHODS,
    Method,
    MethodInfo,
    method_info,
    methods_with,
    registered_methods,
)
from gexcore.models.objectives import Objective, objective_class, register_objective
from gexcore.models.presets import new_encoder
from gexcore.tasks.classification import linear_probe
from gexcore.tasks.restore import impute_cohort
from gexcore.train.config import TrainConfig
from tests.models import toy_objective

ONE_EPOCH = TrainConfig(epochs=1, batch_size=16, val_fraction=0.2)
WALKED = (*METHODS, toy_objective.DAEObjective.method)


def test_every_registered_method_is_walked():
    assert registered_methods() == WALKED
    assert Method.__args__ == METHODS == ("transformer", "scarf", "vime", "byol")


@pytest.mark.parametrize("method", WALKED)
def test_a_method_walks_through_what_it_declares(method, tiny_cohort, tmp_path):
    cls = objective_class(method)
    assert MethodInfo.of(cls) == method_info(method)           # torch-free view agrees
    enc = new_encoder(method, preset="small")
    assert (enc.can_restore, enc.has_attention, enc.input_gradients) == (
        cls.can_restore, cls.has_attention, cls.input_gradients)
    enc.pretrain(tiny_cohort, ONE_EPOCH)
    assert isinstance(enc.body, cls.body_cls)

    Z = enc.embed(tiny_cohort)                                    # embed, save, load
    assert Z.shape == (tiny_cohort.n_obs, enc.dim) and np.isfinite(Z).all()
    enc.save(tmp_path / "run")
    np.testing.assert_array_equal(Encoder.load(tmp_path / "run").embed(tiny_cohort), Z)

    y = tiny_cohort.obs["cancer_type"].astype(str).to_numpy()    # a quick linear probe
    assert 0.0 <= linear_probe().fit(Z[:40], y[:40]).score(Z[40:], y[40:]) <= 1.0

    few = np.arange(6)
    if cls.has_attention:
        scores = attention_importance(enc, tiny_cohort, mode="rollout", samples=few)
        assert scores.shape == (6, tiny_cohort.n_vars) and (np.nansum(scores, axis=1) <= 1).all()
    else:
        with pytest.raises(CapabilityError, match=f"needs a transformer encoder.*'{method}'"):
            attention_importance(enc, tiny_cohort, samples=few)
    head = linear_head(np.ones((2, enc.dim), np.float32))
    if cls.input_gradients:
        attr = gene_attributions(enc, head, tiny_cohort, target=1, samples=few, steps=4)
        observed = ~np.isnan(enc.normalizer.transform(tiny_cohort[few]).X)
        assert attr.shape == (6, tiny_cohort.n_vars) and np.isfinite(attr[observed]).all()
    else:
        with pytest.raises(CapabilityError, match="value_encoding='continuous'"):
            gene_attributions(enc, head, tiny_cohort, target=1, samples=few, steps=4)

    panel = tiny_cohort[:, 5:].copy()                             # a smaller panel to fill
    n_genes = len(enc.genes)
    x, missing = torch.zeros(2, n_genes), torch.zeros(2, n_genes, dtype=torch.bool)
    if cls.can_restore:
        filled = impute_cohort(enc, panel)
        assert filled.n_vars == tiny_cohort.n_vars and np.isfinite(filled.X).all()
    else:
        with pytest.raises(CapabilityError, match=f"'{method}' has no value decoder"):
            impute_cohort(enc, panel)
        with pytest.raises(CapabilityError):
            enc.restore(x, missing, missing)
        with pytest.raises(CapabilityError):
            enc.objective.restore(x, missing, missing)


def test_the_toy_restores_only_targets_and_never_reads_them():
    obj = objective_class("toy_dae").build(12)
    g = torch.Generator().manual_seed(0)
    x, targets = torch.randn(5, 12, generator=g), torch.rand(5, 12, generator=g) < 0.3
    missing = torch.zeros_like(targets)
    pred = obj.restore(x, missing, targets)
    assert pred[~targets].isnan().all() and torch.isfinite(pred[targets]).all()
    assert torch.equal(pred[targets], obj.restore(x.masked_fill(targets, 9.0), missing,
                                                  targets)[targets])


def test_unknown_methods_name_the_known_ones(tmp_path, tiny_cohort):
    with pytest.raises(InputError, match="transformer, scarf, vime, byol.*'simclr'"):
        objective_class("simclr")
    with pytest.raises(InputError, match="'simclr'"):
        Encoder("simclr")
    enc = new_encoder("scarf", preset="small")
    enc.pretrain(tiny_cohort, ONE_EPOCH)
    path = enc.save(tmp_path / "run")
    config = (path / "config.json").read_text().replace('"scarf"', '"simclr"')
    (path / "config.json").write_text(config)
    with pytest.raises(CheckpointError, match="unknown method 'simclr'"):
        Encoder.load(path)


def test_registration_refuses_clashes_and_incomplete_classes():
    class Clash(toy_objective.DAEObjective):
        method = "vime"                            # taken, and VIME declares other capabilities

    with pytest.raises(ValueError, match="'vime' is already registered"):
        register_objective(Clash)

    class Incomplete(Objective):
        method = "half"

    with pytest.raises(TypeError, match="model_config_cls, config_cls, body_cls"):
        register_objective(Incomplete)
    assert "half" not in registered_methods()
    assert register_objective(toy_objective.DAEObjective) is toy_objective.DAEObjective


def test_capabilities_are_readable_without_torch():
    """The app's pages ask here at import time; loading torch there cost seconds per render."""
    code = ("import sys, gexcore.models.methods as m, gexcore.tasks, gexcore.workspace.pretrain\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "print(m.methods_with('can_restore'), m.methods_with('has_attention'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["('transformer',", "'vime')", "('transformer',)"]
    assert methods_with("input_gradients")[:3] == ("scarf", "vime", "byol")
