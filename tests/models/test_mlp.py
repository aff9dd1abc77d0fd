"""MLP encoder: shapes, layer layout, config validation."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from torch import nn

from gexcore.models.mlp import MLPConfig, MLPEncoder


def test_shapes_and_out_dim():
    enc = MLPEncoder(30, MLPConfig(n_layers=3, hidden=16))
    out = enc(torch.randn(8, 30))
    assert out.shape == (8, 16) and enc.out_dim == 16


def test_layout_is_linear_batchnorm_relu_dropout():
    enc = MLPEncoder(10, MLPConfig())
    kinds = [type(m) for m in enc.net]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout] * 4
    assert enc.net[0].in_features == 10 and enc.net[-4].out_features == 256


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="dropout"):
        MLPConfig(dropout=1.0)
    with pytest.raises(ValueError, match="n_layers"):
        MLPConfig(n_layers=0)
    with pytest.raises(ValueError, match="widht"):
        MLPConfig.from_dict({"widht": 3})
    cfg = MLPConfig(n_layers=2, hidden=8, dropout=0.0)
    assert MLPConfig.from_dict(asdict(cfg)) == cfg
