"""The MAE pretraining path of the gene transformer against its general (masked) path, and
checkpoints saved before the decoder existed."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from gexcore.data.demo import assets_dir, load_demo
from gexcore.models import attention
from gexcore.models.encoder import Encoder
from gexcore.models.gene_transformer import GeneTransformer, GeneTransformerConfig, sample_genes
from gexcore.models.objectives.masked import MaskedObjective, hidden_count
from gexcore.train.loop import TrainConfig, train

SMALL = GeneTransformerConfig(d_model=16, n_heads=2, n_layers=2, ff_mult=2, dropout=0.0,
                              genes_per_sample=12, n_bins=8, decoder_layers=1)
DEMO_TRANSFORMER = assets_dir() / "models" / "demo_transformer"


def _data(B=6, G=20, p_missing=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    missing = torch.rand(B, G, generator=g) < p_missing
    return torch.randn(B, G, generator=g).masked_fill(missing, 0.0), missing


def _model(config=SMALL, G=20):
    torch.manual_seed(0)
    model = GeneTransformer(G, config).eval()
    with torch.no_grad():                   # untrained, every restored value is 0: make them vary
        model.gene_decoder.weight.normal_()
        model.gene_bias.weight.normal_()
    return model


def _split(x, missing, k=10, n_hidden=3):
    gene_idx, pad = sample_genes(missing, k, torch.Generator().manual_seed(1))
    assert not pad.any()
    hide = torch.zeros_like(pad)
    hide[:, -n_hidden:] = True
    return gene_idx, x.gather(1, gene_idx), hide, pad


@pytest.mark.parametrize("decoder_layers", [0, 1])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_mae_path_restores_what_the_general_path_restores(pooling, decoder_layers):
    model = _model(replace(SMALL, pooling=pooling, decoder_layers=decoder_layers))
    x, missing = _data()
    gene_idx, values, hide, pad = _split(x, missing)
    with torch.no_grad():
        general_hidden, general = model(gene_idx, values, hide, pad)
        mae_hidden, restored = model.encode_and_restore(gene_idx[:, :7], values[:, :7],
                                                        gene_idx[:, 7:])
    extra = 1 if pooling == "cls" else 0
    assert restored.shape == (6, 3) and mae_hidden.shape == (6, 7 + extra, 16)
    assert restored.abs().sum() > 0
    assert torch.allclose(restored, general[:, 7:], atol=1e-5)
    # Visible genes (and CLS) never attend to hidden ones: their states agree too.
    assert torch.allclose(mae_hidden, general_hidden[:, :7 + extra], atol=1e-5)


def test_embeddings_do_not_use_the_decoder():
    with_decoder = _model()
    without = GeneTransformer(20, replace(SMALL, decoder_layers=0)).eval()
    state = {k: v for k, v in with_decoder.state_dict().items()
             if not k.startswith(("decoder.", "ln_dec."))}
    without.load_state_dict(state, strict=True)
    x, missing = _data(B=9)
    with torch.no_grad():
        assert torch.equal(with_decoder.embed_all(x, missing), without.embed_all(x, missing))
    assert any(k.startswith("decoder.") for k in with_decoder.state_dict())
    assert not any(k.startswith(("decoder.", "ln_dec.")) for k in without.state_dict())


def _record_masks(monkeypatch) -> list:
    masks = []
    sdpa = attention.F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, **kwargs):
        masks.append(attn_mask)
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", recording)
    return masks


@pytest.mark.parametrize("decoder_layers", [0, 2])
def test_pretraining_passes_no_attention_mask(monkeypatch, decoder_layers):
    """The hot path: every SDPA call of a training step gets attn_mask=None."""
    x, missing = _data(B=8, G=30, p_missing=0.1)
    config = replace(SMALL, decoder_layers=decoder_layers)
    objective = MaskedObjective(GeneTransformer(30, config))
    objective.fit_data(x, missing)
    masks = _record_masks(monkeypatch)
    objective.train()(x, missing, torch.Generator().manual_seed(0)).loss.backward()
    assert len(masks) == SMALL.n_layers + decoder_layers and all(m is None for m in masks)


def test_the_general_path_still_masks_keys(monkeypatch):
    """Restore, impute and embed feed rows of unequal lengths: padding is masked there."""
    objective = MaskedObjective(GeneTransformer(30, SMALL)).eval()
    x, missing = _data(B=8, G=30, p_missing=0.3)
    masks = _record_masks(monkeypatch)
    objective.restore(x, missing, ~missing & (torch.rand(x.shape) < 0.2))
    assert len(masks) == SMALL.n_layers + 1 and all(m is not None for m in masks)


def test_subsets_shrink_to_the_fewest_observed_genes_and_never_read_missing_cells():
    x, missing = _data(B=8, G=30, p_missing=0.0)
    missing[3, :25] = True                               # one sample with 5 observed genes
    x = x.masked_fill(missing, 0.0)
    objective = MaskedObjective(_model(SMALL, G=30)).train()
    objective.fit_data(x, missing)
    assert objective.fewest_observed == 5 and objective._genes_per_step(missing) == 5
    out = objective(x, missing, torch.Generator().manual_seed(2))
    assert out.metrics["masked_fraction"] == hidden_count(5, SMALL.mask_ratio) / 5
    again = objective(x.masked_fill(missing, 99.0), missing, torch.Generator().manual_seed(2))
    assert torch.equal(out.loss, again.loss)
    full = ~missing.clone()
    full[3] = True                                       # every row complete: all 12 genes
    assert objective._genes_per_step(~full) == 12


def test_config_without_decoder_layers_is_a_model_from_before_the_decoder():
    saved = asdict(SMALL)
    del saved["decoder_layers"]
    assert GeneTransformerConfig.from_dict(saved).decoder_layers == 0
    assert GeneTransformerConfig.from_dict(asdict(SMALL)) == SMALL
    with pytest.raises(ValueError, match="decoder_layers"):
        GeneTransformerConfig(decoder_layers=-1)


def test_the_shipped_demo_transformer_loads_and_embeds_as_it_did():
    """assets/models/demo_transformer was saved before the decoder: it loads with its old path
    and still gives the embedding stored beside it."""
    assert "decoder_layers" not in json.loads((DEMO_TRANSFORMER / "config.json").read_text())[
        "model_config"]
    enc = Encoder.load(DEMO_TRANSFORMER)
    assert enc.model_config.decoder_layers == 0
    adata = load_demo("simulated_pancancer")[:48].copy()
    stored = np.load(DEMO_TRANSFORMER / "embedding.npy")[:48]
    np.testing.assert_allclose(enc.embed(adata), stored, atol=1e-4)
    x = torch.randn(4, enc.body.n_genes)
    missing = torch.zeros(x.shape, dtype=torch.bool)
    targets = torch.zeros_like(missing)
    targets[:, :5] = True
    pred = enc.objective.restore(x, missing, targets)
    assert torch.isfinite(pred[targets]).all() and pred[~targets].isnan().all()


def test_training_reads_the_loss_at_log_time_not_every_step(monkeypatch):
    """No `.item()` per step: the loop copies losses once per log interval (and validation
    reads its sum once per epoch)."""
    x, missing = _data(B=40, G=30, p_missing=0.0)
    objective = MaskedObjective(GeneTransformer(30, SMALL))
    objective.fit_data(x, missing)
    calls = []
    item = torch.Tensor.item

    def counted(t):                      # ours only: torch's CPU AdamW reads its step counts
        caller = sys._getframe(1).f_code.co_filename
        if "gexcore" in caller:
            calls.append(caller)
        return item(t)

    monkeypatch.setattr(torch.Tensor, "item", counted)
    history = train(objective, x, missing, TrainConfig(epochs=2, batch_size=4, device="cpu",
                                                       val_fraction=0.1, log_every=100,
                                                       patience=None))
    assert history.steps == 18 and len(history.step_loss) == 18
    assert len(calls) == 2, calls                         # one validation sum per epoch
