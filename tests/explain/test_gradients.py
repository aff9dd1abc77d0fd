"""Integrated gradients: completeness, exactness on linear models, and the planted modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gexcore.data.simulate import SimulationConfig, simulate_cohort
from gexcore.explain import gene_attributions, importance_table, integrated_gradients
from gexcore.explain.gradients import linear_head, path_weights
from gexcore.models.encoder import Encoder, cohort_tensors
from gexcore.models.gene_transformer import GeneTransformerConfig
from gexcore.models.mlp import MLPConfig


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.GELU(),
                         nn.Linear(16, 3)).eval()


@pytest.mark.parametrize("rule", ["gauss_legendre", "trapezoid"])
def test_path_weights_integrate_on_unit_interval(rule):
    alphas, weights = path_weights(9, rule)
    assert alphas.min() >= 0 and alphas.max() <= 1
    assert weights.sum().item() == pytest.approx(1.0)
    assert (weights * alphas).sum().item() == pytest.approx(0.5)          # integral of a
    with pytest.raises(ValueError, match="at least 2"):
        path_weights(1)


def test_exact_on_a_linear_model_with_per_sample_targets_and_a_baseline():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    x, baseline = torch.randn(4, 5), torch.randn(5)
    target = torch.tensor([0, 2, 1, 2])
    attr = integrated_gradients(model, x, target=target, baseline=baseline, steps=4)
    expected = model.weight.detach()[target] * (x - baseline)
    torch.testing.assert_close(attr, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", ["gauss_legendre", "trapezoid"])
def test_completeness_on_a_small_mlp(rule):
    """Sum of attributions = f(x)[t] - f(baseline)[t] within a few percent at 64 steps."""
    model = _mlp()
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1)) * 2
    attr = integrated_gradients(model, x, target=1, steps=64, rule=rule)
    with torch.no_grad():
        gap = model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]
    torch.testing.assert_close(attr.sum(dim=1), gap, rtol=0.03, atol=1e-3)


def test_alpha_batching_does_not_change_the_result():
    model, x = _mlp(), torch.randn(5, 6)
    one = integrated_gradients(model, x, target=0, steps=16, batch_size=1)
    many = integrated_gradients(model, x, target=0, steps=16, batch_size=10_000)
    torch.testing.assert_close(one, many)


def test_scalar_outputs_need_no_target_and_bad_targets_are_refused():
    model = nn.Linear(3, 1)
    x = torch.randn(2, 3)
    attr = integrated_gradients(model, x, target=None, steps=4)
    torch.testing.assert_close(attr, model.weight.detach() * x)
    attr_1d = integrated_gradients(lambda z: model(z)[:, 0], x, target=None, steps=4)
    torch.testing.assert_close(attr_1d, attr)
    with pytest.raises(ValueError, match="one per sample"):
        integrated_gradients(nn.Linear(3, 2), x, target=torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="target="):
        integrated_gradients(nn.Linear(3, 2), x, target=None)


def test_linear_head_matches_sklearn_style_coefficients():
    head = linear_head(np.array([[1.0, 2.0], [0.0, -1.0]]), np.array([0.5, 0.0]))
    out = head(torch.tensor([[1.0, 1.0]]))
    torch.testing.assert_close(out, torch.tensor([[3.5, -1.0]]))


def test_transformer_ig_is_complete_with_continuous_values_and_refused_when_binned(tiny_cohort):
    config = GeneTransformerConfig(d_model=16, n_heads=2, n_layers=2, dropout=0.0,
                                   value_encoding="continuous")
    enc = Encoder("transformer", config)
    enc.initialize(tiny_cohort)
    head = nn.Linear(16, 2).eval()
    attr = gene_attributions(enc, head, tiny_cohort, target=1, steps=64)
    x, missing = cohort_tensors(tiny_cohort, enc.normalizer)
    assert np.array_equal(np.isnan(attr), missing.numpy())
    with torch.no_grad():
        body = enc.body
        gap = head(body.embed_all(x, missing))[:, 1] - head(body.embed_all(0 * x, missing))[:, 1]
    np.testing.assert_allclose(np.nansum(attr, axis=1), gap.numpy(), rtol=0.05, atol=1e-4)

    binned = Encoder("transformer", GeneTransformerConfig(d_model=16, n_heads=2, n_layers=1))
    binned.initialize(tiny_cohort)
    with pytest.raises(ValueError, match="value_encoding='continuous'"):
        gene_attributions(binned, head, tiny_cohort, target=0)


@pytest.fixture(scope="module")
def planted():
    """Tumours of a 4-type simulated cohort and an MLP + linear head trained on cancer type."""
    adata = simulate_cohort(SimulationConfig(
        n_samples=400, n_genes=150, n_cancer_types=4, n_shared_modules=2, module_size=10,
        n_batches=2, n_prognostic_modules=1, seed=0))
    adata = adata[adata.obs["sample_type"] == "tumour"].copy()
    enc = Encoder("scarf", MLPConfig(n_layers=2, hidden=64, dropout=0.0))
    x, _ = enc.initialize(adata, seed=0)
    codes = adata.obs["cancer_type"].cat.codes.to_numpy().astype(np.int64)
    y = torch.from_numpy(codes)
    torch.manual_seed(0)
    body, head = enc.body.train(), nn.Linear(64, 4)
    opt = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        for rows in torch.randperm(len(x), generator=g).split(64):
            loss = nn.functional.cross_entropy(head(body(x[rows])), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
    body.eval()
    return adata, enc, head, codes


def test_ig_ranks_each_types_planted_module_at_the_top(planted):
    """Top-10 genes of class c (mean IG over its samples) are mostly type c's 10 module genes.

    Measured (seed 0): 0.9, 0.8, 1.0, 1.0 of the top 10 for the four types.
    """
    adata, enc, head, codes = planted
    attr = gene_attributions(enc, head, adata, target=codes, steps=32)
    truth = adata.uns["simulation"]["module_genes"]
    hits = []
    for c, code in enumerate(adata.obs["cancer_type"].cat.categories):
        module = truth[f"type_{code}"]
        top = importance_table(attr[codes == c], enc.genes)["gene"][:len(module)]
        hits.append(np.isin(top, module).mean())
    assert min(hits) >= 0.7, hits
    assert np.mean(hits) >= 0.85, hits


def test_gene_attributions_subset_and_nan_on_unmeasured_genes(planted):
    adata, enc, head, codes = planted
    rows = np.flatnonzero(codes == 2)[:7]
    attr = gene_attributions(enc, head, adata, target=2, samples=rows, steps=32)
    x, missing = cohort_tensors(adata[rows], enc.normalizer)
    assert attr.shape == (7, len(enc.genes))
    assert np.array_equal(np.isnan(attr), missing.numpy())
    with torch.no_grad():
        gap = head(enc.body(x))[:, 2] - head(enc.body(0 * x))[:, 2]
    np.testing.assert_allclose(np.nansum(attr, axis=1), gap.numpy(), rtol=0.05, atol=1e-3)
    with pytest.raises(ValueError, match="one per selected sample"):
        gene_attributions(enc, head, adata, target=codes, samples=rows)
