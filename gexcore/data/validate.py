"""The validation report every load produces: shape, value range, scale, missingness, joins."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from gexcore.errors import InputError

__all__ = ["Scale", "ValidationReport", "check_counts", "detect_scale"]

Scale = Literal["counts", "linear", "log", "z-scored", "centred", "empty"]

_SUBSAMPLE = 1_000_000          # cells looked at when guessing the scale of a large matrix


@dataclass
class ValidationReport:
    """What a load found; shown by `gex info` and the Data page, stored in `uns['validation']`."""

    source: str
    format: str
    n_samples: int
    n_genes: int
    orientation: str = "samples x genes"
    value_min: float = float("nan")
    value_max: float = float("nan")
    scale: str = "empty"
    missing_fraction: float = 0.0
    gene_ids: dict = field(default_factory=dict)
    clinical: dict = field(default_factory=dict)
    survival: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict)      # obs column -> short description
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON- and h5ad-safe dict (no None; NaN written as the string "nan")."""
        return _plain(asdict(self))

    def lines(self) -> list[str]:
        """The report as human-readable lines."""
        out = [
            f"source:      {self.source} ({self.format})",
            f"shape:       {self.n_samples:,} samples x {self.n_genes:,} genes "
            f"(read as {self.orientation})",
            f"values:      {float(self.value_min):.4g} .. {float(self.value_max):.4g}; "
            f"looks like {self.scale}",
            f"missing:     {self.missing_fraction:.2%} of cells",
        ]
        g = self.gene_ids
        if g:
            dup = g.get("n_duplicated_genes", 0)
            merged = f", merged by {g.get('duplicates_merged_by')}" if dup else ""
            out.append(f"gene ids:    {g.get('gene_id', '?')}; {dup} duplicated{merged}")
        if self.clinical:
            out.append(f"clinical:    {self.clinical.get('summary', '')}")
        if self.survival:
            s = self.survival
            out.append(f"survival:    time={s['time_column']} ({s['time_unit']}), "
                       f"event={s['event_column']}; {s['n_events']} events in {s['n_with_time']} "
                       f"samples with a time")
        if self.columns:
            shown = [f"{k} ({v})" for k, v in list(self.columns.items())[:12]]
            more = len(self.columns) - len(shown)
            out.append("columns:     " + ", ".join(shown) + (f", +{more} more" if more > 0 else ""))
        out += [f"note:        {n}" for n in self.notes]
        out += [f"WARNING:     {w}" for w in self.warnings]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _plain(value):
    """Nested dicts/lists of builtins only, so the report survives JSON and .h5ad."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return "nan"
    return "" if value is None else value


def summarize_values(X: np.ndarray) -> dict:
    """Min, max, missing fraction and scale of a (samples, genes) matrix."""
    finite = np.isfinite(X)
    if not finite.any():
        return {"value_min": float("nan"), "value_max": float("nan"), "scale": "empty",
                "missing_fraction": 1.0 if X.size else 0.0}
    return {"value_min": float(np.nanmin(X)), "value_max": float(np.nanmax(X)),
            "scale": detect_scale(X), "missing_fraction": float(1.0 - finite.mean())}


def detect_scale(X: np.ndarray, *, seed: int = 0) -> Scale:
    """Guess whether `X` (samples, genes) holds raw counts, linear values, log values or z-scores."""
    rng = np.random.default_rng(seed)
    rows = X if X.shape[0] <= 2000 else X[rng.choice(X.shape[0], 2000, replace=False)]
    v = rows.ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "empty"
    if v.size > _SUBSAMPLE:
        v = rng.choice(v, _SUBSAMPLE, replace=False)
    if v.min() < 0:
        mean = np.nanmean(rows, axis=0)
        sd = np.nanstd(rows, axis=0)
        ok = np.isfinite(mean) & (sd > 0)
        centred = np.median(np.abs(mean[ok])) < 0.25 if ok.any() else False
        unit = 0.6 < np.median(sd[ok]) < 1.5 if ok.any() else False
        return "z-scored" if centred and unit else "centred"
    vmax = float(v.max())
    if np.all(v == np.round(v)) and vmax > 50:
        return "counts"
    # log2/log1p expression tops out near 20-25; linear TPM/FPKM goes far higher.
    return "log" if vmax <= 50 else "linear"


def check_counts(X: np.ndarray, samples: pd.Index, genes: pd.Index, source: str) -> None:
    """Refuse negative values in data claimed to be counts, naming the first offending cell."""
    neg = X < 0
    if neg.any():
        r, c = np.argwhere(neg)[0]
        raise InputError(
            f"{source}: values are declared as counts but sample '{samples[r]}', gene '{genes[c]}' "
            f"is {X[r, c]:g} ({int(neg.sum())} negative cell(s)). Counts cannot be negative: pass "
            "the right scale (e.g. log or z-scored) or fix the file."
        )


def describe(adata, *, source: str, format: str) -> ValidationReport:
    """A report for a cohort built in memory (simulated, subset, converted) rather than read."""
    from gexcore import keys

    X = np.asarray(adata.X, dtype=np.float32)
    report = ValidationReport(source=source, format=format, n_samples=adata.n_obs,
                              n_genes=adata.n_vars, **summarize_values(X))
    if keys.OBS_TIME in adata.obs and keys.OBS_EVENT in adata.obs:
        time = adata.obs[keys.OBS_TIME].to_numpy(float)
        info = dict(adata.uns.get(keys.UNS_SURVIVAL, {}))
        info.setdefault("time_column", keys.OBS_TIME)
        info.setdefault("event_column", keys.OBS_EVENT)
        info.setdefault("time_unit", "unknown")
        info.update(n_with_time=int(np.isfinite(time).sum()),
                    n_events=int(np.nansum(adata.obs[keys.OBS_EVENT].to_numpy(float))))
        report.survival = info
    report.columns = describe_columns(adata.obs)
    return report


def describe_columns(obs: pd.DataFrame) -> dict:
    """obs column -> "7 values" (categorical) or "numeric" / "numeric, 12% missing"."""
    out = {}
    for name in obs.columns:
        col = obs[name]
        missing = col.isna().mean()
        kind = ("numeric" if pd.api.types.is_numeric_dtype(col)
                else f"{col.nunique()} values")
        out[str(name)] = kind + (f", {missing:.0%} missing" if missing > 0 else "")
    return out
