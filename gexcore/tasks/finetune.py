"""End-to-end fine-tuning: an encoder body (pretrained or random-init) plus a linear head."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["HeadNet", "fit_estimator_net", "fit_head_net", "predict_outputs", "to_tensors"]


class HeadNet(nn.Module):
    """(B, G) normalised values + missing mask -> (B, out_dim) head outputs.

    The transformer sees a random subset of observed genes per sample while training (as in
    pretraining) and all observed genes in eval mode; the MLP sees every gene, missing cells 0.
    """

    def __init__(self, body: nn.Module, out_dim: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.out_dim, out_dim)

    def forward(self, x: torch.Tensor, missing: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        return self.head(self.embed(x, missing, generator))

    def embed(self, x: torch.Tensor, missing: torch.Tensor,
              generator: torch.Generator | None = None) -> torch.Tensor:
        return self.body.encode(x, missing, generator)


def to_tensors(X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised (N, G) values with NaN for missing -> (values with 0 there, missing mask)."""
    X = np.asarray(X, dtype=np.float32)
    missing = np.isnan(X)
    return torch.from_numpy(np.nan_to_num(X, nan=0.0)), torch.from_numpy(missing)


def fit_head_net(body: nn.Module, out_dim: int, X: np.ndarray,
                 loss_fn: Callable[[torch.Tensor, np.ndarray], torch.Tensor], *,
                 epochs: int, lr: float, batch_size: int, weight_decay: float,
                 min_steps: int, seed: int) -> HeadNet:
    """Train a copy of `body` with a new head on all rows of `X`; `loss_fn(outputs, rows)`.

    Fixed step budget, no validation split: at 1% labels there is nothing to spare. Batches
    have at least two rows (BatchNorm needs them); `max(min_steps, epochs * batches)` steps.
    """
    torch.manual_seed(seed)
    net = HeadNet(copy.deepcopy(body), out_dim).train()
    x, missing = to_tensors(X)
    n = len(x)
    if n < 2:
        raise ValueError(f"fine-tuning needs at least 2 labelled samples, got {n}.")
    batch_size = min(batch_size, n)
    steps = max(min_steps, epochs * math.ceil(n / batch_size))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.01)
    g = torch.Generator().manual_seed(seed)
    for step, rows in zip(range(steps), _batches(n, batch_size, g)):
        out = net(x[rows], missing[rows], g)
        loss = loss_fn(out, rows.numpy())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
    return net.eval()


def fit_estimator_net(estimator, out_dim: int, X: np.ndarray,
                      loss_fn: Callable[[torch.Tensor, np.ndarray], torch.Tensor]) -> HeadNet:
    """`fit_head_net` with a fine-tuning estimator's own parameters (encoder, epochs, lr, ...);
    sets `n_features_in_`. Shared by the classification and Cox estimators."""
    if estimator.encoder is None or estimator.encoder.objective is None:
        raise ValueError(f"{type(estimator).__name__} needs encoder= a pretrained or initialised "
                         "Encoder (Encoder.initialize(adata) for a from-scratch model).")
    X = np.asarray(X, dtype=np.float32)
    net = fit_head_net(estimator.encoder.body, out_dim, X, loss_fn,
                       epochs=estimator.epochs, lr=estimator.lr,
                       batch_size=estimator.batch_size, weight_decay=estimator.weight_decay,
                       min_steps=estimator.min_steps, seed=estimator.seed)
    estimator.n_features_in_ = X.shape[1]
    return net


@torch.no_grad()
def predict_outputs(net: HeadNet, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Head outputs (N, out_dim) float32 in eval mode."""
    net.eval()
    x, missing = to_tensors(X)
    parts = [net(x[i:i + batch_size], missing[i:i + batch_size])
             for i in range(0, len(x), batch_size)]
    return torch.cat(parts).float().numpy() if parts else np.zeros((0, net.head.out_features))


def _batches(n: int, batch_size: int, g: torch.Generator):
    """Endless shuffled epochs of row indices; a last batch of one row joins the one before."""
    while True:
        order = torch.randperm(n, generator=g)
        chunks = list(order.split(batch_size))
        if len(chunks) > 1 and len(chunks[-1]) < 2:
            chunks[-2] = torch.cat(chunks[-2:])
            chunks.pop()
        yield from chunks
