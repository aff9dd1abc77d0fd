"""SSL objectives: losses vs direct formulas, masking rates, missing cells, EMA, overfitting."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch
from torch import nn

from gexcore.errors import CapabilityError
from gexcore.models.gene_transformer import GeneTransformerConfig
from gexcore.models.mlp import MLPConfig
from gexcore.models.objectives import (
    METHODS,
    BYOLConfig,
    MaskedConfig,
    SCARFConfig,
    VIMEConfig,
    build_objective,
    default_configs,
)
from gexcore.models.objectives.base import MarginalFill
from gexcore.models.objectives.byol import byol_tau, ema_update
from gexcore.models.objectives.masked import masked_mse
from gexcore.models.objectives.scarf import nt_xent
from gexcore.models.objectives.vime import vime_loss

G = 24
CONFIGS = {
    "transformer": (GeneTransformerConfig(d_model=32, n_heads=4, n_layers=2, ff_mult=2,
                                          dropout=0.0, genes_per_sample=G, n_bins=16), None),
    "scarf": (MLPConfig(n_layers=2, hidden=64, dropout=0.0),
              SCARFConfig(temperature=0.1, proj_dim=32)),
    "vime": (MLPConfig(n_layers=2, hidden=64, dropout=0.0), None),
    "byol": (MLPConfig(n_layers=2, hidden=64, dropout=0.0), BYOLConfig(proj_dim=32, hidden=64)),
}


def _structured(B=32, rank=3, p_missing=0.1, seed=0):
    """Low-rank z-scored values, so masked cells are predictable from the rest."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, rank, generator=g) @ torch.randn(rank, G, generator=g)
    x = x + 0.1 * torch.randn(B, G, generator=g)
    x = (x - x.mean(0)) / x.std(0)
    missing = torch.rand(B, G, generator=g) < p_missing
    return x.masked_fill(missing, 0.0), missing


def _build(method):
    torch.manual_seed(0)
    return build_objective(method, G, *CONFIGS[method])


@pytest.mark.parametrize("method", METHODS)
def test_forward_metrics_and_embed(method):
    obj = _build(method)
    x, missing = _structured()
    out = obj(x, missing, torch.Generator().manual_seed(0))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert all(isinstance(v, float) for v in out.metrics.values())
    emb = obj.embed(x, missing)
    assert emb.shape == (32, obj.encoder.out_dim) and not emb.requires_grad
    assert obj.training and torch.equal(emb, obj.embed(x, missing))


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_gives_the_same_loss(method):
    obj = _build(method)
    x, missing = _structured()
    losses = []
    for _ in range(2):
        torch.manual_seed(1)                     # dropout draws from the global generator
        losses.append(obj(x, missing, torch.Generator().manual_seed(7)).loss)
    assert torch.equal(losses[0], losses[1])
    other = obj(x, missing, torch.Generator().manual_seed(8)).loss
    assert not torch.equal(losses[0], other)


@pytest.mark.parametrize("method", METHODS)
def test_overfits_one_small_batch(method):
    obj = _build(method)
    x, missing = _structured()
    if method == "transformer":
        obj.encoder.fit_bins(x, missing)
    opt = torch.optim.Adam([p for p in obj.parameters() if p.requires_grad], lr=3e-3)
    g, losses = torch.Generator().manual_seed(0), []
    for step in range(120):
        out = obj(x, missing, g)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        obj.after_step(step + 1, 120)
        losses.append(out.loss.item())
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:5]) / 5


def test_build_objective_checks_method_and_config_types():
    with pytest.raises(ValueError, match="method"):
        build_objective("simclr", G)
    with pytest.raises(TypeError, match="model_config"):
        build_objective("scarf", G, GeneTransformerConfig())
    with pytest.raises(TypeError, match="objective_config"):
        build_objective("vime", G, None, SCARFConfig())
    model_cfg, obj_cfg = default_configs("byol")
    assert model_cfg == MLPConfig() and obj_cfg == BYOLConfig()


@pytest.mark.parametrize("cls", [MaskedConfig, SCARFConfig, VIMEConfig, BYOLConfig])
def test_objective_configs_round_trip_and_name_unknown_keys(cls):
    assert cls.from_dict(asdict(cls())) == cls()
    with pytest.raises(ValueError, match="bogus"):
        cls.from_dict({"bogus": 1})


def test_config_validation_names_the_field():
    for make, field in [(lambda: SCARFConfig(temperature=0), "temperature"),
                        (lambda: VIMEConfig(p_mask=1.5), "p_mask"),
                        (lambda: BYOLConfig(decay=2.0), "decay"),
                        (lambda: MaskedConfig(chunk=0), "chunk")]:
        with pytest.raises(ValueError, match=field):
            make()


# --- corruption and masking -------------------------------------------------------------------

def test_corruption_rate_respects_missing_and_draws_from_the_bank():
    obj = build_objective("scarf", 200, MLPConfig(n_layers=1, hidden=8))
    missing = torch.rand(300, 200, generator=torch.Generator().manual_seed(0)) < 0.2
    x = torch.randn(300, 200).masked_fill(missing, 0.0)
    bank = torch.arange(1000.0).repeat_interleave(200).view(1000, 200) + 1000.0   # row id + 1000
    obj.set_bank(bank)
    x_tilde, corrupted = obj.corrupt(x, missing, 0.3, torch.Generator().manual_seed(1))
    assert not (corrupted & missing).any() and (x_tilde[missing] == 0).all()
    assert abs(corrupted[~missing].float().mean().item() - 0.3) < 0.01
    assert torch.equal(x_tilde[~corrupted], x[~corrupted])
    assert (x_tilde[corrupted] >= 1000).all()                  # every replacement is a bank row


def test_corruption_never_draws_a_missing_bank_cell():
    obj = build_objective("vime", 10, MLPConfig(n_layers=1, hidden=8))
    bank_missing = torch.zeros(50, 10, dtype=torch.bool)
    bank_missing[:, :5] = True                      # genes 0-4 were never measured in the bank
    obj.set_bank(torch.ones(50, 10), bank_missing)
    x, missing = torch.zeros(64, 10), torch.zeros(64, 10, dtype=torch.bool)
    _, corrupted = obj.corrupt(x, missing, 0.5, torch.Generator().manual_seed(0))
    assert not corrupted[:, :5].any() and corrupted[:, 5:].any()


def test_masked_objective_masks_the_requested_share_of_observed_genes():
    obj = build_objective("transformer", 200, GeneTransformerConfig(
        d_model=8, n_heads=2, n_layers=1, genes_per_sample=100, mask_ratio=0.3))
    missing = torch.rand(64, 200, generator=torch.Generator().manual_seed(0)) < 0.3
    out = obj(torch.randn(64, 200).masked_fill(missing, 0.0), missing,
              torch.Generator().manual_seed(1))
    assert abs(out.metrics["masked_fraction"] - 0.3) < 0.02


def test_masked_objective_never_reads_missing_cells():
    obj = _build("transformer").eval()
    x, missing = _structured()
    g = lambda: torch.Generator().manual_seed(3)
    loss = obj(x, missing, g()).loss
    assert torch.equal(loss, obj(x.masked_fill(missing, 50.0), missing, g()).loss)


def test_masked_mse_ignores_unmasked_cells():
    pred, target = torch.randn(4, 6), torch.randn(4, 6)
    masked = torch.rand(4, 6, generator=torch.Generator().manual_seed(0)) < 0.5
    loss = masked_mse(pred, target, masked)
    assert torch.allclose(loss, ((pred - target)[masked] ** 2).mean())
    assert torch.equal(loss, masked_mse(pred.masked_fill(~masked, 9.0),
                                        target.masked_fill(~masked, -9.0), masked))


def test_restore_predicts_targets_only_and_ignores_their_values():
    obj = _build("transformer")
    x, missing = _structured()
    targets = missing | (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.2)
    pred = obj.restore(x, missing, targets)
    assert pred.shape == x.shape and torch.isfinite(pred[targets]).all()
    assert pred[~targets].isnan().all()
    again = obj.restore(x.masked_fill(targets, 7.0), missing, targets)
    assert torch.allclose(pred[targets], again[targets], atol=1e-6)


def test_vime_restore_reads_no_target_and_fills_blank_cells_with_0_or_bank_draws():
    obj = _build("vime").eval()
    x, missing = _structured()
    targets = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.2
    blank = missing | targets
    pred = obj.restore(x, missing, targets)
    with torch.no_grad():
        decode = lambda filled: obj.value_head(obj.encoder(filled))[targets]
        assert pred[~targets].isnan().all()
        assert torch.allclose(pred[targets], decode(x.masked_fill(blank, 0.0)))
        assert torch.equal(pred[targets],
                           obj.restore(x.masked_fill(targets, 9.0), missing, targets)[targets])
        one_row = MarginalFill(torch.full((1, G), 0.5), n_draws=3)   # every draw is that row
        assert torch.allclose(obj.restore(x, missing, targets, fill=one_row)[targets],
                              decode(torch.where(blank, 0.5, x)), atol=1e-6)
        unmeasured = MarginalFill(torch.full((4, G), float("nan")))     # a NaN draw fills 0
        assert torch.allclose(obj.restore(x, missing, targets, fill=unmeasured)[targets],
                              pred[targets], atol=1e-6)


def test_methods_without_a_decoder_refuse_to_restore():
    x, missing = _structured()
    for method in ("scarf", "byol"):
        with pytest.raises(CapabilityError, match="does not restore"):
            _build(method).restore(x, missing, missing)


# --- losses against direct formulas -----------------------------------------------------------

def test_nt_xent_matches_a_loop_over_pairs():
    g = torch.Generator().manual_seed(0)
    z1, z2, t = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), 0.5
    z = [v / v.norm() for v in torch.cat([z1, z2])]
    n, total = len(z), 0.0
    for i in range(n):
        j = (i + n // 2) % n
        denom = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(n) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / denom)
    assert abs(nt_xent(z1, z2, t).item() - total / n) < 1e-5


def test_vime_loss_matches_bce_plus_alpha_mse_by_hand():
    obj = build_objective("vime", 4, MLPConfig(n_layers=1, hidden=8, dropout=0.0),
                          VIMEConfig(p_mask=0.5, alpha=2.0))
    x = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.5, 0.3, -0.7, 0.2], [-0.2, 0.0, 1.1, -1.3]])
    missing = torch.tensor([[False, False, False, True], [False] * 4, [False, True, False, False]])
    loss = obj(x, missing, torch.Generator().manual_seed(0)).loss
    x_tilde, mask = obj.corrupt(x, missing, 0.5, torch.Generator().manual_seed(0))
    h = obj.encoder(x_tilde)
    prob, values = torch.sigmoid(obj.mask_head(h)), obj.value_head(h)
    m = mask.float()
    bce = -(m * prob.log() + (1 - m) * (1 - prob).log())
    obs = ~missing
    by_hand = bce[obs].mean() + 2.0 * ((values - x) ** 2)[obs].mean()
    assert mask.any() and torch.allclose(loss, by_hand, atol=1e-5)
    poked = values.detach().masked_fill(missing, 100.0)        # missing cells are not scored
    assert torch.allclose(vime_loss(h.new_zeros(3, 4), values, mask, x, obs, 2.0)[0],
                          vime_loss(h.new_zeros(3, 4), poked, mask, x, obs, 2.0)[0])


# --- BYOL -------------------------------------------------------------------------------------

def test_ema_update_arithmetic_and_buffer_copy():
    target, online = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    nn.init.constant_(target.weight, 1.0)
    nn.init.constant_(online.weight, 3.0)
    online.running_mean.fill_(5.0)
    ema_update(target, online, 0.9)
    assert torch.allclose(target.weight, torch.full((3,), 1.2))
    assert torch.equal(target.running_mean, torch.full((3,), 5.0))


def test_byol_tau_schedule():
    assert byol_tau(0, 100, 0.99) == pytest.approx(0.99)
    assert byol_tau(100, 100, 0.99) == pytest.approx(1.0)
    assert byol_tau(50, 100, 0.99) == pytest.approx(0.995)
    assert byol_tau(50, 100, 0.99, cosine=False) == 0.99


def test_byol_target_gets_no_gradient_and_follows_by_ema():
    obj = _build("byol")
    x, missing = _structured()
    target = list(obj.target_encoder.parameters()) + list(obj.target_projector.parameters())
    obj(x, missing, torch.Generator().manual_seed(0)).loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in target)
    assert obj.encoder.net[0].weight.grad is not None
    with torch.no_grad():
        obj.encoder.net[0].weight.add_(1.0)
    before = obj.target_encoder.net[0].weight.clone()
    obj.after_step(0, 10)                                   # tau = decay = 0.99 at step 0
    expected = 0.99 * before + 0.01 * obj.encoder.net[0].weight
    assert torch.allclose(obj.target_encoder.net[0].weight, expected, atol=1e-6)
