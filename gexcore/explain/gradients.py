"""Integrated gradients (Sundararajan et al. 2017) over normalised gene values.

Attributions satisfy completeness: per sample they sum to f(x) - f(baseline) for the target
output, up to the quadrature error (Gauss-Legendre by default, exact for a linear model).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from gexcore.data.genes import MIN_GENE_OVERLAP
from gexcore.explain.attention import select_rows

if TYPE_CHECKING:
    from anndata import AnnData

    from gexcore.models.encoder import Encoder

__all__ = ["gene_attributions", "integrated_gradients", "linear_head", "path_weights"]

Rule = Literal["gauss_legendre", "trapezoid"]


def path_weights(steps: int, rule: Rule = "gauss_legendre") -> tuple[torch.Tensor, torch.Tensor]:
    """Quadrature nodes alpha in [0, 1] and weights (summing to 1) for the path integral."""
    if steps < 2:
        raise ValueError(f"steps must be at least 2, not {steps}.")
    if rule == "gauss_legendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        alphas, weights = (nodes + 1.0) / 2.0, weights / 2.0
    elif rule == "trapezoid":
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2.0
    else:
        raise ValueError(f"rule must be 'gauss_legendre' or 'trapezoid', not {rule!r}.")
    return torch.from_numpy(alphas).float(), torch.from_numpy(weights).float()


def integrated_gradients(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *,
                         target: int | torch.Tensor | None, baseline: torch.Tensor | None = None,
                         steps: int = 32, batch_size: int = 1024,
                         rule: Rule = "gauss_legendre") -> torch.Tensor:
    """(B, G) attributions of output `target` of `forward` along baseline -> x (zeros default).

    `forward` maps (N, G) -> (N, C) (or (N,) with `target=None`) and must treat rows
    independently (eval mode). `target` is one class for all rows or a (B,) tensor of classes.
    About `batch_size` rows go through `forward` at once: several alphas per pass.
    """
    x = x.detach().float()
    base = torch.zeros_like(x) if baseline is None else baseline.detach().float().expand_as(x)
    B = x.shape[0]
    target_idx = _targets(target, B, x.device)
    alphas, weights = path_weights(steps, rule)
    per_pass = max(1, batch_size // max(B, 1))
    total = torch.zeros_like(x)
    delta = x - base
    for start in range(0, steps, per_pass):
        a = alphas[start:start + per_pass].to(x.device)                     # (A,)
        w = weights[start:start + per_pass].to(x.device)
        path = (base + a[:, None, None] * delta).reshape(-1, x.shape[1])    # (A * B, G)
        path.requires_grad_(True)
        with torch.enable_grad():
            out = _select(forward(path), target_idx, len(a))                 # (A * B,)
            (grad,) = torch.autograd.grad(out.sum(), path)
        total += (grad.reshape(len(a), B, -1) * w[:, None, None]).sum(dim=0)  # (B, G)
    return delta * total


def _targets(target, B: int, device) -> torch.Tensor | None:
    if target is None:
        return None
    t = torch.as_tensor(target, device=device).long().reshape(-1)
    if t.numel() == 1:
        return t.expand(B)
    if t.numel() != B:
        raise ValueError(f"target must be one class or one per sample ({B}), not {t.numel()}.")
    return t


def _select(out: torch.Tensor, target_idx: torch.Tensor | None, repeats: int) -> torch.Tensor:
    """(A * B, C) outputs -> (A * B,) the target output of each row."""
    if target_idx is None:
        if out.ndim == 2 and out.shape[1] == 1:
            return out[:, 0]
        if out.ndim != 1:
            raise ValueError(f"forward returns {tuple(out.shape)}; pass target= to pick an "
                             "output column.")
        return out
    if out.ndim != 2:
        raise ValueError(f"forward must return (N, C) for a class target, not {tuple(out.shape)}.")
    return out.gather(1, target_idx.repeat(repeats)[:, None]).squeeze(1)


def linear_head(coef, intercept=None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A torch forward z -> z @ coef.T + intercept, e.g. from a fitted scikit-learn linear model.

    For a standardising pipeline pass the folded coefficients (coef / scale, shifted intercept).
    """
    w = torch.as_tensor(np.atleast_2d(np.asarray(coef, dtype=np.float32)))
    b = (torch.zeros(w.shape[0]) if intercept is None
         else torch.as_tensor(np.asarray(intercept, dtype=np.float32)).reshape(-1))
    return lambda z: z @ w.T.to(z.device, z.dtype) + b.to(z.device, z.dtype)


def gene_attributions(encoder: Encoder, head_forward: Callable[[torch.Tensor], torch.Tensor],
                      adata: AnnData, *, target: int | np.ndarray | None, samples=None,
                      body: torch.nn.Module | None = None, steps: int = 32,
                      batch_size: int = 256, min_overlap: float = MIN_GENE_OVERLAP) -> np.ndarray:
    """(n_samples, n_genes) IG of `head_forward(body(x))` w.r.t. the normalised gene values.

    `target`: one output column, or one per selected sample; None for a scalar head (risk).
    `body` defaults to the encoder's network (pass a fine-tuned copy, e.g. `HeadNet.body`).
    `batch_size` bounds both the samples per chunk and the rows per forward pass.
    Baseline: every gene at 0, its training mean after z-scoring. Unobserved genes are NaN.
    MLP encoders are differentiated directly. The transformer needs continuous value encoding:
    with binned values the output is piecewise constant in each value (bucketize), so IG would
    miss the jumps and break completeness; it raises CapabilityError, a ValueError (use
    attention importance). The body's `differentiable_inputs` says which.
    """
    from gexcore.models.encoder import cohort_tensors
    from gexcore.models.objectives.base import evaluating

    encoder._check_ready()
    body = encoder.body if body is None else body
    _check_differentiable(encoder, body)
    rows = select_rows(adata.n_obs, samples)
    x, missing = cohort_tensors(adata[rows], encoder.normalizer, min_overlap=min_overlap)
    targets = _sample_targets(target, len(rows))
    device = next(body.parameters()).device
    out = torch.full(x.shape, float("nan"))
    with evaluating(body):
        for start in range(0, len(x), batch_size):
            part = slice(start, start + batch_size)
            xs, ms = x[part].to(device), missing[part].to(device)
            forward = _forward(body, head_forward, ms)
            t = None if targets is None else torch.as_tensor(targets[part].copy())
            attr = integrated_gradients(forward, xs, target=t, steps=steps,
                                        batch_size=batch_size)
            out[part] = attr.masked_fill(ms, float("nan")).cpu()
    return out.numpy()


def _sample_targets(target, n: int) -> np.ndarray | None:
    if target is None:
        return None
    targets = np.asarray(target).reshape(-1)
    if len(targets) not in (1, n):
        raise ValueError(f"target must be one class or one per selected sample ({n}), "
                         f"not {len(targets)}.")
    return np.broadcast_to(targets, (n,))


def _check_differentiable(encoder: Encoder, body: torch.nn.Module) -> None:
    """A body says whether its output is differentiable in the values (the binned one is not)."""
    from gexcore.errors import CapabilityError

    if not body.differentiable_inputs:
        raise CapabilityError(
            "integrated gradients need a transformer with value_encoding='continuous'; this "
            f"{encoder.method} encoder bins its values, so its output is a step function of "
            "each value. Use attention importance, or pretrain with continuous values.")


def _forward(body: torch.nn.Module, head_forward, missing: torch.Tensor):
    """(A * B, G) -> head outputs, in one pass; each sample reads its observed genes only."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        repeats = x.shape[0] // missing.shape[0]         # rows are alpha-major: (A, B) flattened
        return head_forward(body.embed_all(x, missing.repeat(repeats, 1), chunk=len(x)))

    return forward
