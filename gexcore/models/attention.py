"""Pre-norm attention blocks of the gene transformer: encoder self-attention, decoder cross-attention.

A key mask is optional everywhere: the pretraining hot path passes none, so SDPA takes its
unmasked (fast) kernel; the general path passes a (B, L) key mask for padded or hidden genes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Block", "DecoderBlock", "attend"]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor | None,
           dropout: float, explicit: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, H, Lq, Dh) queries, (B, H, Lk, Dh) keys and values -> (B, H, Lq, Dh), probabilities.

    `keep` (B, Lk), True = a key, None = every key. `explicit` computes the probabilities
    (B, H, Lq, Lk) by hand for explain/ (no dropout); otherwise SDPA and probabilities None.
    """
    mask = None if keep is None else keep[:, None, None, :]            # (B, 1, 1, Lk)
    if not explicit:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout), None
    scores = (q @ k.transpose(-2, -1)).float() / math.sqrt(q.shape[-1])   # (B, H, Lq, Lk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = scores.softmax(dim=-1)
    return probs.to(v.dtype) @ v, probs


def _heads(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    B, L, D = t.shape
    return t.view(B, L, n_heads, D // n_heads).transpose(1, 2)            # (B, H, L, Dh)


def _merge(y: torch.Tensor) -> torch.Tensor:
    B, H, L, Dh = y.shape
    return y.transpose(1, 2).reshape(B, L, H * Dh)                        # (B, L, D)


def _mlp(d: int, ff_mult: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, ff_mult * d), nn.GELU(), nn.Linear(ff_mult * d, d),
                         nn.Dropout(dropout))


class _SelfAttention(nn.Module):
    """Multi-head self-attention over a gene set, keys optionally masked."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None, explicit: bool = False,
                n_keys: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`n_keys`: only the first n_keys tokens are keys (the rest are queries only), which
        a key mask would say at the cost of SDPA's masked kernel and of keys never used."""
        D = x.shape[-1]
        if n_keys is None:
            q, k, v = (_heads(t, self.n_heads) for t in self.qkv(x).split(D, dim=2))
        else:
            w, b = self.qkv.weight, self.qkv.bias
            q = _heads(F.linear(x, w[:D], b[:D]), self.n_heads)
            kv = F.linear(x[:, :n_keys], w[D:], b[D:])
            k, v = (_heads(t, self.n_heads) for t in kv.split(D, dim=2))
        y, probs = attend(q, k, v, keep, self.dropout if self.training else 0.0, explicit)
        return self.resid_drop(self.proj(_merge(y))), probs


class _CrossAttention(nn.Module):
    """Multi-head attention from query tokens to a memory (the encoder's output)."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.proj = nn.Linear(d, d)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                keep: torch.Tensor | None) -> torch.Tensor:
        q = _heads(self.q(x), self.n_heads)
        k, v = (_heads(t, self.n_heads) for t in self.kv(memory).split(x.shape[-1], dim=2))
        y, _ = attend(q, k, v, keep, self.dropout if self.training else 0.0, explicit=False)
        return self.resid_drop(self.proj(_merge(y)))


class Block(nn.Module):
    """Pre-norm encoder block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d: int, n_heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = _SelfAttention(d, n_heads, dropout)
        self.mlp = _mlp(d, ff_mult, dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None, explicit: bool = False,
                n_keys: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, probs = self.attn(self.ln1(x), keep, explicit, n_keys)
        x = x + a
        return x + self.mlp(self.ln2(x)), probs


class DecoderBlock(nn.Module):
    """Pre-norm decoder block: queries + cross_attn(ln(queries), memory), then + mlp(ln(.)).

    Queries never attend to each other, so a hidden gene's value depends on the encoded genes
    only, not on which other genes are hidden with it.
    """

    def __init__(self, d: int, n_heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = _CrossAttention(d, n_heads, dropout)
        self.mlp = _mlp(d, ff_mult, dropout)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor,
                keep: torch.Tensor | None) -> torch.Tensor:
        x = queries + self.attn(self.ln1(queries), memory, keep)
        return x + self.mlp(self.ln2(x))
