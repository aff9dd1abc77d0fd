"""GexBERT-style gene transformer: one token per gene = gene identity + expression value.

Tokens carry no position, so a sample is a *set* of genes; any subset can be fed. Hidden genes
(masked for pretraining, or genes to impute) are queries only, never keys, so what they see is the
observed genes. Pretraining runs without any attention mask (`encode_and_restore`): equal gene
counts per row, hidden tokens after the observed ones, keys and values from the observed ones
only. With `decoder_layers` >= 1 (MAE style) the encoder reads the observed genes only and a
light cross-attention decoder restores the hidden ones from gene embedding + mask token.

Built to learn in tens of steps, not thousands (see `_init_weights` and `_tokens`): each gene has
its own direction for its continuous value beside the shared bins, so even uniform attention
already pools an informative linear sketch of the sample; restored values are read out per gene;
linear layers keep unit gain while token parameters start tiny.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from gexcore.config import FromDict
from gexcore.models.attention import Block, DecoderBlock

__all__ = ["GeneTransformer", "GeneTransformerConfig", "sample_genes", "select_genes"]

ValueEncoding = Literal["binned", "continuous"]
Pooling = Literal["cls", "mean"]


@dataclass(frozen=True)
class GeneTransformerConfig(FromDict):
    """Architecture of the gene transformer plus its pretraining subset size and mask ratio."""

    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    ff_mult: int = 4
    dropout: float = 0.1
    genes_per_sample: int = 512       # genes drawn per sample per step; bounds attention cost
    value_encoding: ValueEncoding = "binned"
    n_bins: int = 64
    pooling: Pooling = "cls"
    mask_ratio: float = 0.3           # fraction of the drawn genes hidden and restored
    # Cross-attention blocks that restore hidden genes from the encoded ones (MAE style: the
    # encoder reads observed genes only; faster, but it learns slower at equal steps, see
    # benchmarks/bench_transformer.py). 0: hidden genes follow the observed ones through the
    # encoder as queries that are never keys, as every model saved before the decoder does.
    decoder_layers: int = 0

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "n_layers", "ff_mult", "genes_per_sample"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}.")
        if self.decoder_layers < 0:
            raise ValueError(f"decoder_layers must be 0 or more, not {self.decoder_layers}.")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads "
                             f"({self.n_heads}).")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}.")
        if self.value_encoding not in ValueEncoding.__args__:
            raise ValueError(f"value_encoding must be one of {ValueEncoding.__args__}, "
                             f"not {self.value_encoding!r}.")
        if self.n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, not {self.n_bins}.")
        if self.pooling not in Pooling.__args__:
            raise ValueError(f"pooling must be one of {Pooling.__args__}, not {self.pooling!r}.")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), not {self.mask_ratio}.")


def sample_genes(missing: torch.Tensor, k: int,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """k genes per sample drawn uniformly among its observed ones -> (gene_idx, pad), (B, k) each.

    Samples with fewer than k observed genes are filled with padding (missing genes, `pad` True).
    """
    k = min(k, missing.shape[1])
    scores = torch.rand(missing.shape, generator=generator, device=missing.device)
    scores = scores + missing.float()                # missing genes rank after every observed one
    gene_idx = scores.topk(k, dim=1, largest=False).indices          # (B, k)
    return gene_idx, missing.gather(1, gene_idx)


def select_genes(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every gene where `keep` (B, G) is True, deterministically -> (gene_idx, pad), (B, L) each.

    L is the largest count in the batch (at least 1); shorter rows are padded.
    """
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)   # kept genes first
    counts = keep.sum(dim=1)
    width = max(int(counts.max()), 1) if keep.shape[0] else 1
    gene_idx = order[:, :width]                                          # (B, L)
    pad = torch.arange(width, device=keep.device)[None, :] >= counts[:, None]
    return gene_idx, pad


class GeneTransformer(nn.Module):
    """(gene, value) tokens -> hidden states, restored values per token, and a pooled embedding."""

    label: ClassVar[str] = "transformer"

    def __init__(self, n_genes: int, config: GeneTransformerConfig | None = None):
        super().__init__()
        if n_genes < 1:
            raise ValueError(f"n_genes must be positive, not {n_genes}.")
        self.config = c = config or GeneTransformerConfig()
        self.n_genes, self.out_dim, d = n_genes, c.d_model, c.d_model
        self.gene_embed = nn.Embedding(n_genes, d)
        # value * gene_value[g]: a per-gene direction for the continuous value (FT-Transformer's
        # numeric tokenizer). A shared value embedding is gene-agnostic, so attention would have
        # to learn which genes to pool before any expression signal could reach a query.
        self.gene_value = nn.Embedding(n_genes, d)
        if c.value_encoding == "binned":
            self.value_embed = nn.Embedding(c.n_bins, d)
            # Standard-normal quantiles suit z-scored input until fit_bins sees the training data.
            edges = torch.special.ndtri(torch.linspace(0, 1, c.n_bins + 1)[1:-1])
            self.register_buffer("bin_edges", edges)                  # persistent: checkpointed
        else:
            self.value_embed = nn.Sequential(nn.Linear(1, d), nn.GELU(), nn.Linear(d, d))
        self.mask_token = nn.Parameter(torch.zeros(d))
        self.cls_token = nn.Parameter(torch.zeros(d)) if c.pooling == "cls" else None
        self.drop = nn.Dropout(c.dropout)
        sizes = (d, c.n_heads, c.ff_mult, c.dropout)
        self.blocks = nn.ModuleList(Block(*sizes) for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(d)
        # Hidden-gene queries (gene embedding + mask token) read the encoded genes. Empty (no
        # weights) at decoder_layers=0, so checkpoints from before the decoder load unchanged.
        self.decoder = nn.ModuleList(DecoderBlock(*sizes) for _ in range(c.decoder_layers))
        self.ln_dec = nn.LayerNorm(d) if c.decoder_layers else None
        # Restored value of gene g = <ln_f(h), gene_decoder[g]> + gene_bias[g]: a shared linear
        # head would need several layers to turn one summary into different values per gene.
        self.gene_decoder = nn.Embedding(n_genes, d)
        self.gene_bias = nn.Embedding(n_genes, 1)
        self.apply(_init_weights)
        for name, module in self.named_modules():
            if name.endswith(("attn.proj", "mlp.2")):       # residual branches, scaled as GPT-2
                nn.init.normal_(module.weight, std=(2 * c.n_layers * module.in_features) ** -0.5)
        if c.value_encoding == "continuous":
            # A token part too. At unit gain its fixed random curve, shared by every gene,
            # drowned the gene-specific parts in every key and the loss stayed at the mean.
            nn.init.normal_(self.value_embed[0].weight, std=_TOKEN_STD)
            nn.init.normal_(self.value_embed[-1].weight, std=_TOKEN_STD * d ** -0.5)
        for p in (self.mask_token, self.cls_token):
            if p is not None:
                nn.init.normal_(p, std=_TOKEN_STD)
        nn.init.zeros_(self.gene_decoder.weight)             # start at the gene mean (0)
        nn.init.zeros_(self.gene_bias.weight)

    def forward(self, gene_idx: torch.Tensor, values: torch.Tensor, hide: torch.Tensor,
                pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) genes, values, hide, pad -> hidden (B, L', D), L' = L (+1 CLS); restored (B, L).

        The general path, with a key mask: any mix of hidden and padded tokens per row (restore,
        impute, embed, fine-tuning). `hide` tokens get the mask token; neither they nor `pad`
        are keys. With a decoder, hidden tokens are restored by it and visible ones read out
        from their encoder state, as in `encode_and_restore`, the mask-free pretraining path.
        """
        tokens, keep = self._tokens(gene_idx, values, hide, pad)
        hidden, _ = self._run_encoder(tokens, keep, explicit=False)
        restored = self._restore(hidden[:, self._n_special:], gene_idx)
        if self.ln_dec is not None:
            decoded = self._restore(self._decode(gene_idx, hidden, keep), gene_idx)
            restored = torch.where(hide, decoded, restored)
        return hidden, restored

    def encode_and_restore(self, visible_idx: torch.Tensor, visible_values: torch.Tensor,
                           hidden_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, V) observed genes and values, (B, K) hidden genes -> hidden (B, V', D), restored
        (B, K); V' = V (+1 CLS).

        The pretraining path: every row has the same counts, so no token is padding, no key
        is masked and SDPA runs its unmasked kernel. With a decoder, the encoder reads the
        visible genes only and the decoder restores the hidden ones. Without, hidden tokens
        follow the visible ones through the encoder as queries only (keys and values are
        computed for the visible tokens alone): what `forward` computes with a key mask.
        """
        tokens = self._with_cls(self.gene_embed(visible_idx)
                                + self._value_embedding(visible_idx,
                                                        visible_values.float().contiguous()))
        n_keys = tokens.shape[1]
        if self.ln_dec is not None:
            hidden, _ = self._run_encoder(tokens, None, explicit=False)
            return hidden, self._restore(self._decode(hidden_idx, hidden, None), hidden_idx)
        queries = self.gene_embed(hidden_idx) + self.mask_token.to(tokens.dtype)
        states, _ = self._run_encoder(torch.cat([tokens, queries], dim=1), None,
                                      explicit=False, n_keys=n_keys)
        return states[:, :n_keys], self._restore(states[:, n_keys:], hidden_idx)

    def pool(self, hidden: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """(B, L', D) -> (B, D): the CLS state, or the mean over non-pad tokens."""
        if self.cls_token is not None:
            return hidden[:, 0]
        weight = (~pad).unsqueeze(-1).to(hidden.dtype)                     # (B, L, 1)
        return (hidden * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)

    def attention_maps(self, gene_idx: torch.Tensor, values: torch.Tensor, hide: torch.Tensor,
                       pad: torch.Tensor) -> torch.Tensor:
        """Attention probabilities of every layer, (n_layers, B, H, L', L'); rows sum to 1.

        Computed explicitly (no SDPA, no dropout); index 0 of L' is CLS when pooling="cls".
        """
        _, maps = self._encode(gene_idx, values, hide, pad, explicit=True)
        return torch.stack(maps)

    def embed_all(self, x: torch.Tensor, missing: torch.Tensor, chunk: int = 32) -> torch.Tensor:
        """(B, G) -> (B, D) from ALL observed genes of each sample; missing genes are padded out.

        Deterministic (no gene subsets), `chunk` samples per pass; the caller picks eval/no_grad.
        """
        pooled = []
        for start in range(0, x.shape[0], chunk):
            xs, ms = x[start:start + chunk], missing[start:start + chunk]
            pooled.append(self._embed_genes(xs, *select_genes(~ms)))
        return torch.cat(pooled) if pooled else x.new_zeros(0, self.out_dim)

    def encode(self, x: torch.Tensor, missing: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, G) -> (B, D) with gradients: in training mode from `genes_per_sample` observed
        genes drawn per sample (as in pretraining), in eval mode from all of them (`embed_all`)."""
        if not self.training:
            return self.embed_all(x, missing)
        return self._embed_genes(x, *sample_genes(missing, self.config.genes_per_sample,
                                                  generator))

    @property
    def differentiable_inputs(self) -> bool:
        """Binned values make the output a step function of each value: no input gradients."""
        return self.config.value_encoding == "continuous"

    @torch.no_grad()
    def fit_bins(self, x: torch.Tensor, missing: torch.Tensor,
                 generator: torch.Generator | None = None,
                 max_values: int = 200_000) -> GeneTransformer:
        """Set `bin_edges` to quantiles of observed training values (a subsample of `max_values`).

        A no-op for continuous value encoding, so callers may always call it.
        """
        if self.config.value_encoding != "binned":
            return self
        values = x[~missing].float()
        if values.numel() == 0:
            raise ValueError("fit_bins needs observed values, but every cell is missing.")
        if values.numel() > max_values:     # torch.quantile refuses very large inputs
            pick = torch.randint(values.numel(), (max_values,), generator=generator,
                                 device=values.device)
            values = values[pick]
        q = torch.linspace(0, 1, self.config.n_bins + 1, device=values.device)[1:-1]
        self.bin_edges.copy_(torch.quantile(values, q).to(self.bin_edges.device))
        return self

    def _embed_genes(self, x: torch.Tensor, gene_idx: torch.Tensor,
                     pad: torch.Tensor) -> torch.Tensor:
        """(B, G) values, (B, L) genes to read and padding -> (B, D) pooled, nothing hidden."""
        hidden, _ = self(gene_idx, x.gather(1, gene_idx), torch.zeros_like(pad), pad)
        return self.pool(hidden, pad)

    def _restore(self, hidden: torch.Tensor, gene_idx: torch.Tensor) -> torch.Tensor:
        """(B, L, D) gene states -> (B, L) values, each read out with its gene's own decoder."""
        decoder = self.gene_decoder(gene_idx).to(hidden.dtype)             # (B, L, D)
        bias = self.gene_bias(gene_idx).squeeze(-1).to(hidden.dtype)       # (B, L)
        return (hidden * decoder).sum(dim=-1) + bias

    @property
    def _n_special(self) -> int:
        return 0 if self.cls_token is None else 1

    def _encode(self, gene_idx: torch.Tensor, values: torch.Tensor, hide: torch.Tensor,
                pad: torch.Tensor, explicit: bool) -> tuple[torch.Tensor, list]:
        return self._run_encoder(*self._tokens(gene_idx, values, hide, pad), explicit)

    def _run_encoder(self, tokens: torch.Tensor, keep: torch.Tensor | None, explicit: bool,
                     n_keys: int | None = None) -> tuple[torch.Tensor, list]:
        """Tokens (B, L', D), key mask (B, L') or None, or keys = the first `n_keys` tokens
        -> ln_f states, per-layer attention maps (explicit only)."""
        x, maps = self.drop(tokens), []
        for block in self.blocks:
            x, probs = block(x, keep, explicit, n_keys)
            maps.append(probs)
        return self.ln_f(x), maps

    def _decode(self, gene_idx: torch.Tensor, memory: torch.Tensor,
                keep: torch.Tensor | None) -> torch.Tensor:
        """(B, K) genes to restore, encoder states (B, L', D) -> decoded states (B, K, D).

        A query is the token a hidden gene has in the encoder: gene embedding + mask token.
        """
        x = self.gene_embed(gene_idx) + self.mask_token.to(memory.dtype)
        for block in self.decoder:
            x = block(x, memory, keep)
        return self.ln_dec(x)

    def _value_embedding(self, gene_idx: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """(B, L) float values -> (B, L, D): a bin (or value MLP) plus the gene's own direction."""
        if self.config.value_encoding == "binned":
            value_emb = self.value_embed(torch.bucketize(values, self.bin_edges))
        else:
            value_emb = self.value_embed(values.unsqueeze(-1))
        return value_emb + values.unsqueeze(-1) * self.gene_value(gene_idx)

    def _with_cls(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.cls_token is None:
            return tokens
        B, _, D = tokens.shape
        return torch.cat([self.cls_token.expand(B, 1, D).to(tokens.dtype), tokens], dim=1)

    def _tokens(self, gene_idx: torch.Tensor, values: torch.Tensor, hide: torch.Tensor,
                pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings (B, L', D) and the attention key mask (B, L'), True = attend.

        Pad and hidden tokens are not keys: a hidden gene's query sees observed genes (and CLS)
        only, so its restored value does not depend on which other genes are hidden.
        """
        values = values.float().masked_fill(hide | pad, 0.0)     # hidden values never leak in
        value_emb = self._value_embedding(gene_idx, values)                 # (B, L, D)
        value_emb = torch.where(hide.unsqueeze(-1), self.mask_token.to(value_emb.dtype), value_emb)
        tokens = self._with_cls(self.gene_embed(gene_idx) + value_emb)     # (B, L', D)
        keep = ~(pad | hide)
        if self.cls_token is not None:
            keep = torch.cat([keep.new_ones(keep.shape[0], 1), keep], dim=1)   # (B, 1 + L)
        # A row with nothing to attend to would softmax to NaN; let it see its first slot instead.
        empty = ~keep.any(dim=1, keepdim=True)
        keep = keep.clone()
        keep[:, :1] |= empty
        return tokens, keep


# Token parts (gene, bin and value embeddings, mask and CLS tokens) are read through LayerNorm,
# so their scale only sets how fast Adam turns them (a step of ~lr against a norm of ~std): tiny
# tokens learn in tens of steps. In the residual stream they also leave a hidden gene's state to
# what attention brings it. At nanoGPT's 0.02 the masked loss sat at the mean for ~150 steps.
_TOKEN_STD = 0.002


def _init_weights(module: nn.Module) -> None:
    """Linear layers at unit gain (std 1/sqrt(fan_in)): with d_model 64, nanoGPT's 0.02 (tuned
    for 768) shrank the signal ~6x per layer. Embeddings are token parts, see `_TOKEN_STD`."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=module.in_features ** -0.5)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=_TOKEN_STD)
