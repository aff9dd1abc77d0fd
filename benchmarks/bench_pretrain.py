"""Pretraining throughput and peak memory per method, and our transformer against nn.TransformerEncoder.

Run: .venv/bin/python benchmarks/bench_pretrain.py [--preset small|base] [--device cpu|cuda]
Each method runs in its own process so peak RSS (and peak CUDA memory) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

H100_BF16_DENSE_TFLOPS = 989.0      # SXM datasheet, dense; H200 has the same compute


def _one_method(method: str, preset: str, device: str, steps: int) -> dict:
    from gexcore.data.simulate import simulate_cohort
    from gexcore.models.encoder import Encoder
    from gexcore.models.presets import PRESETS
    from gexcore.train.loop import TrainConfig

    adata = simulate_cohort()                                   # 3,000 x 2,000 demo size
    enc = Encoder(method, PRESETS[method][preset])
    batch = 128
    sub = adata[: min(adata.n_obs, int(steps * batch / 0.9) + 2)].copy()   # ~`steps` steps
    cfg = TrainConfig(epochs=1, batch_size=batch, val_fraction=0.1, device=device, patience=None)
    t0 = time.perf_counter()
    history = enc.pretrain(sub, cfg)
    seconds = time.perf_counter() - t0
    out = {"method": method, "preset": preset, "device": history.device,
           "precision": history.precision, "steps": history.steps,
           "samples_per_s": history.samples_per_s, "wall_s": seconds,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available() and device != "cpu":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _transformer_vs_torch(preset: str, device: str, repeats: int = 5) -> dict:
    """Forward+backward samples/s of GeneTransformer vs nn.TransformerEncoder of the same size."""
    from torch import nn

    from gexcore.models.gene_transformer import GeneTransformer
    from gexcore.models.presets import PRESETS

    cfg = PRESETS["transformer"][preset]
    dev = torch.device("cuda" if device == "cuda" else "cpu")
    B, L, G = 64, cfg.genes_per_sample, 2000
    ours = GeneTransformer(G, cfg).to(dev)
    ref_layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.ff_mult * cfg.d_model,
                                           dropout=cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
    ref = nn.ModuleDict({"emb": nn.Embedding(G, cfg.d_model),
                         "enc": nn.TransformerEncoder(ref_layer, cfg.n_layers,
                                                      enable_nested_tensor=False),
                         "head": nn.Linear(cfg.d_model, 1)}).to(dev)
    g = torch.Generator().manual_seed(0)
    idx = torch.stack([torch.randperm(G, generator=g)[:L] for _ in range(B)]).to(dev)
    values = torch.randn(B, L, generator=g).to(dev)
    hide = (torch.rand(B, L, generator=g) < 0.3).to(dev)
    pad = torch.zeros(B, L, dtype=torch.bool, device=dev)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda"
           else torch.autocast("cpu", enabled=False))

    def step_ours():
        with amp:
            _, restored = ours(idx, values, hide, pad)
        restored.float().mean().backward()

    def step_ref():
        with amp:
            h = ref["enc"](ref["emb"](idx) + values.unsqueeze(-1))
            out = ref["head"](h)
        out.float().mean().backward()

    def rate(fn) -> float:
        fn()                                                      # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return B * repeats / (time.perf_counter() - t0)

    ours_rate, ref_rate = rate(step_ours), rate(step_ref)
    n_params = sum(m.weight.numel() for m in ours.modules() if isinstance(m, nn.Linear))
    flops_per_sample = 6 * L * n_params + 12 * cfg.n_layers * L * L * cfg.d_model  # fwd+bwd
    out = {"ours_samples_per_s": ours_rate, "torch_samples_per_s": ref_rate,
           "ratio": ours_rate / ref_rate, "tflops": ours_rate * flops_per_sample / 1e12,
           "B": B, "L": L, "d_model": cfg.d_model, "layers": cfg.n_layers}
    if dev.type == "cuda":
        out["fraction_of_bf16_peak"] = out["tflops"] / H100_BF16_DENSE_TFLOPS
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small", choices=["small", "base"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps per method")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one_method(args.one, args.preset, args.device, args.steps)))
        return
    rows = []
    for method in ("transformer", "scarf", "vime", "byol"):
        res = subprocess.run([sys.executable, __file__, "--one", method, "--preset", args.preset,
                              "--device", args.device, "--steps", str(args.steps)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"pretraining, 3,000 x 2,000 simulated cohort, batch 128, preset {args.preset}")
    print(f"{'method':>12} {'device':>7} {'prec':>5} {'steps':>5} {'samples/s':>10} "
          f"{'peak RSS MiB':>12}" + (" peak CUDA MiB" if args.device == "cuda" else ""))
    for r in rows:
        cuda = f" {r['peak_cuda_mib']:13.0f}" if "peak_cuda_mib" in r else ""
        print(f"{r['method']:>12} {r['device']:>7} {r['precision']:>5} {r['steps']:5d} "
              f"{r['samples_per_s']:10.1f} {r['peak_rss_mib']:12.0f}{cuda}")
    cmp = _transformer_vs_torch(args.preset, args.device)
    print(f"\nGeneTransformer vs nn.TransformerEncoder (same d_model={cmp['d_model']}, "
          f"layers={cmp['layers']}, B={cmp['B']}, L={cmp['L']}, forward+backward)")
    print(f"  ours {cmp['ours_samples_per_s']:.1f} samples/s, torch "
          f"{cmp['torch_samples_per_s']:.1f} samples/s, ratio {cmp['ratio']:.2f}; "
          f"achieved {cmp['tflops']:.3f} TFLOP/s"
          + (f" ({cmp['fraction_of_bf16_peak']:.1%} of bf16 peak)"
             if "fraction_of_bf16_peak" in cmp else ""))


if __name__ == "__main__":
    main()
