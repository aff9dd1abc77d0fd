"""GeneTransformer training speed: the masked path of before, the MAE path, nn.TransformerEncoder.

    .venv/bin/python benchmarks/bench_transformer.py                  # CPU, small preset, demo data
    .venv/bin/python benchmarks/bench_transformer.py --device cuda    # + small, base, corpus (bf16)
    .venv/bin/python benchmarks/bench_transformer.py --device cpu --presets tiny --steps 4

One process, one data set, one size: (a) the padded, key-masked path of before (the objective's
`_masked_forward`), (b) the mask-free path now used (same model and weights: equal counts per
row, hidden tokens are queries only, keys and values from observed genes), (b') the MAE decoder
(decoder_layers >= 1: the encoder reads observed genes only, one cross-attention block
restores the hidden ones), (c) a plain nn.TransformerEncoder (norm_first,
GELU) of the same d_model, layers, heads and tokens, with a gene embedding, a value projection
and a linear head. Each is a full training step (forward, backward, clip, AdamW), timed in
chunks taken in turns so machine noise falls on all three alike; the best chunk counts.
(a), (b) and (b') train from the same batches; their held-out masked MSE after equal steps is
measured with the same hidden genes (each model's general `forward`). FLOP/s is an analytic
count (6 x tokens x linear weights + 12 x Lq x Lk x d per attention layer) over the measured
GEMM rate of this machine (a large torch.matmul in the same precision).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
from torch import nn

from gexcore.models.gene_transformer import GeneTransformer, GeneTransformerConfig, sample_genes
from gexcore.models.objectives.masked import MaskedObjective, hidden_count
from gexcore.models.presets import PRESETS

TINY = GeneTransformerConfig(d_model=32, n_heads=4, n_layers=2, ff_mult=4, dropout=0.0,
                             genes_per_sample=64, n_bins=16)
BATCH = {"tiny": 16, "small": 64, "base": 64, "corpus": 16}
PATHS = ("masked (before)", "mask-free (now)", "MAE decoder", "nn.TransformerEncoder")
TORCH = PATHS[-1]


def _config(preset: str) -> GeneTransformerConfig:
    return TINY if preset == "tiny" else PRESETS["transformer"][preset]


def demo_tensors(n_top_genes: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """The simulated demo cohort (3,000 x 2,000) normalised as `gex pretrain` does (500 genes)."""
    from gexcore.data.normalize import NormalizeConfig, Normalizer
    from gexcore.data.simulate import simulate_cohort
    from gexcore.models.encoder import cohort_tensors

    adata = simulate_cohort()
    return cohort_tensors(adata, Normalizer(NormalizeConfig(n_top_genes=n_top_genes)).fit(adata))


def random_tensors(n: int, n_genes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """z-scored random values, nothing missing: throughput only (presets wider than the demo)."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, n_genes, generator=g), torch.zeros(n, n_genes, dtype=torch.bool)


def gemm_tflops(device: torch.device, dtype: torch.dtype, n: int) -> float:
    """Best of 3 (n x n) @ (n x n) matmuls in TFLOP/s: the rate FLOP/s is compared with."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(4):                                          # the first is a warm-up
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e12


class TorchReference(nn.Module):
    """Gene embedding + value projection -> nn.TransformerEncoder -> value head, masked MSE."""

    def __init__(self, n_genes: int, c: GeneTransformerConfig):
        super().__init__()
        layer = nn.TransformerEncoderLayer(c.d_model, c.n_heads, c.ff_mult * c.d_model,
                                           dropout=c.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.emb, self.value = nn.Embedding(n_genes, c.d_model), nn.Linear(1, c.d_model)
        self.enc = nn.TransformerEncoder(layer, c.n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(c.d_model, 1)
        self.k, self.mask_ratio = c.genes_per_sample, c.mask_ratio

    def forward(self, x, missing, generator=None):
        gene_idx, _ = sample_genes(missing, self.k, generator)
        values = x.gather(1, gene_idx)
        hide = torch.rand(gene_idx.shape, generator=generator, device=x.device) < self.mask_ratio
        inputs = values.masked_fill(hide, 0.0).unsqueeze(-1)
        out = self.head(self.enc(self.emb(gene_idx) + self.value(inputs))).squeeze(-1)
        sq = (out.float() - values).square() * hide
        return _Loss(sq.sum() / hide.sum().clamp(min=1))


class _Loss:
    def __init__(self, loss):
        self.loss = loss


def build(path: str, n_genes: int, c: GeneTransformerConfig) -> nn.Module:
    torch.manual_seed(0)
    if path == TORCH:
        return TorchReference(n_genes, c)
    decoder = max(c.decoder_layers, 1) if path == PATHS[2] else 0
    objective = (BeforeObjective if path == PATHS[0] else MaskedObjective)
    return objective(GeneTransformer(n_genes, replace(c, decoder_layers=decoder)))


class BeforeObjective(MaskedObjective):
    """The objective as it was: k genes per sample, padded, Bernoulli-hidden, key-masked."""

    def forward(self, x, missing, generator=None):
        return self._masked_forward(x, missing, generator)


def flops_per_sample(path: str, c: GeneTransformerConfig) -> float:
    """Training FLOPs (forward + backward) of one sample, analytic, at genes_per_sample tokens."""
    d, k, ff = c.d_model, c.genes_per_sample, c.ff_mult
    cls = int(c.pooling == "cls") if path != TORCH else 0
    layer = (4 + 2 * ff) * d * d                               # qkv, proj, MLP weights

    def attention(lq: int, lk: int) -> float:
        return 12 * lq * lk * d

    if path in (PATHS[0], TORCH):
        tokens = k + cls
        return c.n_layers * (6 * tokens * layer + attention(tokens, tokens))
    hidden = hidden_count(k, c.mask_ratio)
    visible = k - hidden + cls
    if path == PATHS[1]:                        # hidden tokens: no keys or values of their own
        return c.n_layers * (6 * (visible * layer + hidden * (layer - 2 * d * d))
                             + attention(visible + hidden, visible))
    encoder = c.n_layers * (6 * visible * layer + attention(visible, visible))
    per_decoder = 6 * hidden * (2 + 2 * ff) * d * d + 6 * visible * 2 * d * d
    return encoder + max(c.decoder_layers, 1) * (per_decoder + attention(hidden, visible))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _amp(device: torch.device):
    if device.type == "cuda":                   # bf16 on CUDA only; the CPU runs fp32
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def timed_training(models: dict, x, missing, *, steps: int, chunk: int, batch: int,
                   device: torch.device, n_train: int) -> dict[str, float]:
    """Train every model `steps` steps on the same batches; best chunk's samples/s per model."""
    opts = {p: torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=1e-4,
                                 fused=True if device.type == "cuda" else None)
            for p, m in models.items()}
    gens = {p: torch.Generator(device).manual_seed(1) for p in models}
    order = torch.Generator().manual_seed(2)
    batches = [torch.randint(n_train, (batch,), generator=order).to(device)
               for _ in range(steps + 1)]
    best = dict.fromkeys(models, 0.0)

    def run(path: str, rows_list) -> None:
        model, opt = models[path], opts[path]
        for rows in rows_list:
            with _amp(device):
                loss = model(x[rows], missing[rows], gens[path]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

    for path in models:                                          # warm-up step
        models[path].train()
        run(path, batches[:1])
    for start in range(1, steps + 1, chunk):
        for path in models:
            _sync(device)
            t0 = time.perf_counter()
            part = batches[start:start + chunk]
            run(path, part)
            _sync(device)
            best[path] = max(best[path], batch * len(part) / (time.perf_counter() - t0))
    return best


@torch.no_grad()
def held_out_mse(objective: MaskedObjective, x, missing, c: GeneTransformerConfig) -> float:
    """Masked MSE on held-out rows: the same genes hidden for every model (general forward)."""
    objective.eval()
    g = torch.Generator(x.device).manual_seed(3)
    gene_idx, pad = sample_genes(missing, c.genes_per_sample, g)
    n_hidden = hidden_count(gene_idx.shape[1], c.mask_ratio)
    hide = torch.zeros_like(pad)
    hide[:, -n_hidden:] = True                  # sample_genes' order is random: a random split
    hide &= ~pad
    values = x.gather(1, gene_idx)
    _, restored = objective.encoder(gene_idx, values, hide, pad)
    return float(((restored.float() - values).square() * hide).sum() / hide.sum())


def compare(preset: str, device: torch.device, x, missing, *, steps: int, chunk: int,
            batch: int, gemm: float, compile_models: bool = False) -> list[dict]:
    """Rows of the three paths at one preset: samples/s, tokens/s, TFLOP/s, MSE, peak memory."""
    c = _config(preset)
    n_train = int(0.9 * x.shape[0])
    x, missing = x.to(device), missing.to(device)
    models = {p: build(p, x.shape[1], c).to(device) for p in PATHS}
    for p in PATHS[:3]:
        models[p].fit_data(x[:n_train], missing[:n_train])
    if compile_models:
        models = {p: torch.compile(m) for p, m in models.items()}
    rates = timed_training(models, x, missing, steps=steps, chunk=chunk, batch=batch,
                           device=device, n_train=n_train)
    rows = []
    for p in PATHS:
        flops = rates[p] * flops_per_sample(p, c) / 1e12
        row = {"preset": preset, "path": p, "samples_per_s": rates[p],
               "tokens_per_s": rates[p] * c.genes_per_sample, "tflops": flops,
               "of_gemm": flops / gemm, "vs_torch": rates[p] / rates[TORCH], "mse": None}
        if p != TORCH:
            body = models[p]._orig_mod if compile_models else models[p]
            row["mse"] = held_out_mse(body, x[n_train:], missing[n_train:], c)
        rows.append(row)
    return rows


def peak_memory(path: str, preset: str, device: torch.device, x, missing, batch: int) -> float:
    """Peak CUDA MiB of training steps of one path alone at this preset."""
    c = _config(preset)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    model = {path: build(path, x.shape[1], c).to(device)}
    timed_training(model, x.to(device), missing.to(device), steps=2, chunk=2, batch=batch,
                   device=device, n_train=x.shape[0])
    return torch.cuda.max_memory_allocated(device) / 2 ** 20


def print_table(rows: list[dict], header: str) -> None:
    print(f"\n{header}")
    print(f"| preset | path | samples/s | x torch | tokens/s | TFLOP/s | of GEMM | "
          f"held-out masked MSE | peak MiB |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mse = "" if r["mse"] is None else f"{r['mse']:.4f}"
        peak = f"{r['peak_mib']:.0f}" if "peak_mib" in r else ""
        print(f"| {r['preset']} | {r['path']} | {r['samples_per_s']:.1f} | "
              f"{r['vs_torch']:.2f} | {r['tokens_per_s']:,.0f} | {r['tflops']:.3f} | "
              f"{r['of_gemm']:.1%} | {mse} | {peak} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--presets", nargs="+", help="default: small on the CPU; "
                        "small base corpus on CUDA; 'tiny' is a bench-only size")
    parser.add_argument("--steps", type=int, default=120, help="timed training steps per path")
    parser.add_argument("--chunk", type=int, default=10, help="steps per timed chunk")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch)")
    parser.add_argument("--gemm-n", type=int, default=4096)
    parser.add_argument("--compile", action="store_true", help="torch.compile every model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    presets = args.presets or (["small", "base", "corpus"] if device.type == "cuda"
                               else ["small"])
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    gemm = gemm_tflops(device, dtype, args.gemm_n)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{str(dtype).removeprefix('torch.')} GEMM ({args.gemm_n}^3): {gemm:.3f} TFLOP/s")
    demo = demo_tensors()
    tables = []
    for preset in presets:
        c = _config(preset)
        x, missing = (demo if c.genes_per_sample <= demo[0].shape[1]
                      else random_tensors(4 * BATCH[preset] * 8, 2 * c.genes_per_sample))
        rows = compare(preset, device, x, missing, steps=args.steps, chunk=args.chunk,
                       batch=BATCH[preset], gemm=gemm, compile_models=args.compile)
        if device.type == "cuda":
            for row in rows:
                row["peak_mib"] = peak_memory(row["path"], preset, device, x, missing,
                                              BATCH[preset])
        data = "demo cohort 3,000 x 500" if x is demo[0] else f"random {tuple(x.shape)}"
        tables.append((rows, f"{preset}: d_model {c.d_model}, {c.n_layers} layers, "
                          f"{c.n_heads} heads, {c.genes_per_sample} genes/sample, batch "
                          f"{BATCH[preset]}, {args.steps} steps, {data}, "
                          f"{str(dtype).removeprefix('torch.')}"))
    after = gemm_tflops(device, dtype, args.gemm_n)     # the machine's load may have changed
    print(f"GEMM again after the runs: {after:.3f} TFLOP/s; fractions use the higher")
    for rows, header in tables:
        for row in rows:
            row["of_gemm"] = row["tflops"] / max(gemm, after)
        print_table(rows, header)


if __name__ == "__main__":
    main()
