"""Seeded simulator of a pan-cancer-like bulk expression cohort (simulated data, never real).

Plants co-expression modules, cancer types with matched normals, batch effects, missingness and
survival driven by module activity, and records the planted truth in `uns["simulation"]`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from gexcore import keys
from gexcore.data.rules import survival_info

__all__ = ["NORMAL_LABEL", "TYPE_CODES", "SimulationConfig", "simulate_cohort"]

logger = logging.getLogger(__name__)

# TCGA-style study codes give familiar labels; the data behind them are simulated.
TYPE_CODES = (
    "BRCA", "LUAD", "LUSC", "COAD", "KIRC", "PRAD", "THCA", "SKCM", "GBM", "LIHC", "STAD", "OV",
    "HNSC", "BLCA", "UCEC", "LGG", "KIRP", "CESC", "SARC", "PAAD", "READ", "ESCA", "TGCT", "PCPG",
)
NORMAL_LABEL = "Normal"
LOADINGS_KEY = "simulation_loadings"                 # varm slot: genes x modules planted loadings

# Share of female patients where the type is sex-specific (or nearly); every other type is 0.5.
_FEMALE_SHARE = {"BRCA": 0.99, "OV": 1.0, "UCEC": 1.0, "CESC": 1.0, "PRAD": 0.0, "TGCT": 0.0}
_ALNUM = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
_SITES_PER_TYPE = 3
_TYPE_MODULE_LEVEL = (3.0, 4.0)      # activity of a type's own modules in its tumours
_NORMAL_TISSUE_SHARE = 0.4           # normals keep this share of their tissue's type profile
_WEIBULL_SHAPE = 1.3
_BASELINE_MEDIAN_MONTHS = 90.0       # median survival at log-hazard 0
_AGE_LOG_HAZARD = 0.015              # per year above 60; older patients die sooner
_MAX_EXACT_COUNT = 2**24             # float32 holds every integer up to here
_INT_RANGES = (                      # (field, lowest, highest) for the plain integer fields
    ("n_samples", 10, 1_000_000), ("n_genes", 10, 999_999), ("n_batches", 1, 100),
    ("n_shared_modules", 0, 1000), ("n_type_modules", 1, 100), ("seed", 0, 2**63 - 1),
)


@dataclass(frozen=True)
class SimulationConfig:
    """Size and structure of a simulated cohort; `asdict` of it is stored in the provenance."""

    n_samples: int = 3000
    n_genes: int = 2000
    n_cancer_types: int = 12
    normal_fraction: float = 0.06      # matched normals: share a patient with a tumour sample
    n_batches: int = 3
    n_shared_modules: int = 8          # co-expression modules active across types
    n_type_modules: int = 1            # type-specific modules per cancer type
    module_size: int = 40              # genes per module (modules overlap when they do not fit)
    n_prognostic_modules: int = 3      # shared modules whose activity drives the hazard
    values: Literal["log", "counts"] = "log"
    missing_fraction: float = 0.01     # MCAR NaN cells (log values only)
    panel_gap_fraction: float = 0.05   # genes one batch did not measure (log values only)
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low, high in _INT_RANGES:
            _check_range(name, getattr(self, name), low, high)
        _check_range("n_cancer_types", self.n_cancer_types, 2, len(TYPE_CODES))
        _check_range("module_size", self.module_size, 2, self.n_genes)
        _check_range("n_prognostic_modules", self.n_prognostic_modules, 0, self.n_shared_modules)
        _check_range("normal_fraction", self.normal_fraction, 0.0, 0.5)
        _check_range("missing_fraction", self.missing_fraction, 0.0, 0.5)
        _check_range("panel_gap_fraction", self.panel_gap_fraction, 0.0, 0.5)
        if self.values not in ("log", "counts"):
            raise ValueError(f"values must be 'log' or 'counts' (got {self.values!r}).")
        n_tumours = self.n_samples - _n_normals(self)
        if n_tumours < self.n_cancer_types:
            raise ValueError(
                f"n_samples ({self.n_samples}) leaves {n_tumours} tumours for n_cancer_types "
                f"({self.n_cancer_types}); raise n_samples or lower normal_fraction."
            )


def _check_range(name: str, value: object, low: float, high: float) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if isinstance(low, int) and not isinstance(value, (int, np.integer)):
        ok = False
    if not ok or not low <= value <= high:
        kind = "an integer" if isinstance(low, int) else "a number"
        raise ValueError(f"{name} must be {kind} in [{low}, {high}] (got {value!r}).")


def _n_normals(config: SimulationConfig) -> int:
    return int(round(config.normal_fraction * config.n_samples))


def simulate_cohort(config: SimulationConfig | None = None, **overrides) -> ad.AnnData:
    """Simulate a labelled pan-cancer-like cohort; `overrides` replace fields of `config`.

    Writes `X` (samples x genes float32), obs clinical columns, var `module`/`prognostic`,
    varm `simulation_loadings`, and uns `provenance`, `survival` and `simulation` (planted truth).
    """
    unknown = sorted(set(overrides) - {f.name for f in fields(SimulationConfig)})
    if unknown:
        raise TypeError(f"unknown SimulationConfig field(s) {unknown}; see SimulationConfig.")
    config = replace(config or SimulationConfig(), **overrides)
    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    modules = _plant_modules(config, rng)
    samples = _draw_samples(config, rng)
    activity = _module_activity(config, rng, samples, modules)
    log_expr = _log_expression(config, rng, activity, modules["loadings"], samples["batch"])
    surv_time, event, surv_truth = _survival(config, rng, activity, samples, modules)
    if config.values == "log":
        X, gap_batch, gap_genes = _observe_log(config, rng, log_expr, samples["batch"])
    else:
        X, gap_batch, gap_genes = _observe_counts(rng, log_expr), "none", np.array([], int)
    adata = _assemble(config, X, samples, modules, surv_time, event)
    adata.uns["simulation"] = _truth(config, adata.var_names, modules, surv_truth,
                                     gap_batch, gap_genes)
    logger.info("simulated %s x %s %s cohort in %.2f s", f"{adata.n_obs:,}",
                f"{adata.n_vars:,}", config.values, time.perf_counter() - start)
    return adata


def _plant_modules(config: SimulationConfig, rng: np.random.Generator) -> dict:
    """Sparse module x gene loadings, module names and which shared modules are prognostic."""
    n_types, per_type = config.n_cancer_types, config.n_type_modules
    codes = TYPE_CODES[:n_types]
    type_names = [f"type_{c}" if r == 0 else f"type_{c}_{r + 1}"
                  for c in codes for r in range(per_type)]
    names = [f"shared_{i + 1:02d}" for i in range(config.n_shared_modules)] + type_names
    n_modules, size = len(names), config.module_size
    # Consecutive blocks of one permutation: disjoint modules while they fit, overlap after.
    slots = np.arange(n_modules * size) % config.n_genes
    members = rng.permutation(config.n_genes)[slots].reshape(n_modules, size)
    weights = rng.normal(1.0, 0.3, size=(n_modules, size))
    weights *= np.where(rng.random((n_modules, size)) < 0.15, -1.0, 1.0)  # anti-correlated genes
    loadings = np.zeros((n_modules, config.n_genes), dtype=np.float32)
    np.add.at(loadings, (np.repeat(np.arange(n_modules), size), members.ravel()), weights.ravel())
    prognostic = np.sort(rng.choice(config.n_shared_modules, config.n_prognostic_modules,
                                    replace=False))
    betas = rng.uniform(0.6, 0.8, config.n_prognostic_modules)
    betas *= rng.choice([-1.0, 1.0], config.n_prognostic_modules)
    owner = np.concatenate([np.full(config.n_shared_modules, -1),
                            np.repeat(np.arange(n_types), per_type)])
    return {"names": names, "members": members, "loadings": loadings, "owner": owner,
            "prognostic": prognostic, "betas": betas}


def _draw_samples(config: SimulationConfig, rng: np.random.Generator) -> dict:
    """Types, matched normals, patients, batches, age and sex; rows come out shuffled."""
    n_types, n_normals = config.n_cancer_types, _n_normals(config)
    n_tumours = config.n_samples - n_normals
    share = rng.dirichlet(np.full(n_types, 3.0))          # uneven, like TCGA project sizes
    floor = min(5, n_tumours // n_types)                  # enough per type for 5-fold CV
    counts = floor + rng.multinomial(n_tumours - floor * n_types, share)
    tumour_type = np.repeat(np.arange(n_types), counts)
    matched = rng.choice(n_tumours, n_normals, replace=False)
    patient = np.concatenate([np.arange(n_tumours), matched])
    order = rng.permutation(config.n_samples)
    patient, is_normal = patient[order], (order >= n_tumours)
    cancer_type = tumour_type[patient]
    # Batches lean towards some types (sites ship to one centre) without following them.
    batch_share = rng.dirichlet(np.full(config.n_batches, 2.0), size=n_types)
    below = rng.random(config.n_samples)[:, None] > np.cumsum(batch_share, axis=1)[cancer_type]
    batch = np.minimum(below.sum(axis=1), config.n_batches - 1)
    age = np.clip(np.round(rng.normal(62.0, 12.0, n_tumours)), 18, 90).astype(np.int64)
    female_share = np.array([_FEMALE_SHARE.get(c, 0.5) for c in TYPE_CODES[:n_types]])
    female = rng.random(n_tumours) < female_share[tumour_type]
    ids = _patient_ids(rng, tumour_type)
    return {"type": cancer_type, "is_normal": is_normal, "batch": batch,
            "patient_id": ids[patient], "age": age[patient], "female": female[patient],
            "sample_id": np.char.add(ids[patient], np.where(is_normal, "-11A", "-01A"))}


def _patient_ids(rng: np.random.Generator, tumour_type: np.ndarray) -> np.ndarray:
    """Barcode-shaped ids 'SIMU-XX-NNNN': XX a site of the type, NNNN unique base-36."""
    n_types, n = int(tumour_type.max()) + 1, len(tumour_type)
    site_codes = _base36(rng.choice(36**2, n_types * _SITES_PER_TYPE, replace=False), 2)
    site = tumour_type * _SITES_PER_TYPE + rng.integers(0, _SITES_PER_TYPE, n)
    number = _base36(rng.permutation(n) + 1, 4)
    return np.char.add(np.char.add("SIMU-", site_codes[site]), np.char.add("-", number))


def _base36(numbers: np.ndarray, width: int) -> np.ndarray:
    digits = (numbers[:, None] // 36 ** np.arange(width - 1, -1, -1)) % 36
    return np.ascontiguousarray(_ALNUM[digits]).view(f"<U{width}").ravel()


def _module_activity(config: SimulationConfig, rng: np.random.Generator, samples: dict,
                     modules: dict) -> np.ndarray:
    """Per-sample module activity (samples x modules): type profile plus N(0, 1) variation."""
    n_types, owner = config.n_cancer_types, modules["owner"]
    shared_means = rng.normal(0.0, 0.8, size=(n_types, config.n_shared_modules))
    own_level = rng.uniform(*_TYPE_MODULE_LEVEL, size=len(owner) - config.n_shared_modules)
    type_means = np.where(np.arange(n_types)[:, None] == owner[None, config.n_shared_modules:],
                          own_level, 0.0)
    profile = np.hstack([shared_means, type_means])            # (types, modules)
    normal_shift = rng.normal(0.0, 1.0, size=len(owner))       # what all normal tissue shares
    noise = rng.standard_normal((config.n_samples, len(owner)))
    tissue = profile[samples["type"]]
    normal = _NORMAL_TISSUE_SHARE * tissue + normal_shift + 0.7 * noise
    return np.where(samples["is_normal"][:, None], normal, tissue + noise).astype(np.float32)


def _log_expression(config: SimulationConfig, rng: np.random.Generator, activity: np.ndarray,
                    loadings: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """Unclipped log2 expression: baseline + batch scale * (modules + gene noise) + batch shift."""
    n, g = config.n_samples, config.n_genes
    baseline = np.clip(rng.normal(6.0, 2.0, g), 0.0, 14.0).astype(np.float32)
    noise_sd = rng.uniform(0.3, 0.8, g).astype(np.float32)
    shift = rng.normal(0.0, 0.4, size=(config.n_batches, g)).astype(np.float32)
    scale = rng.uniform(0.8, 1.2, config.n_batches).astype(np.float32)
    deviation = activity @ loadings                            # (samples, genes)
    deviation += rng.standard_normal((n, g), dtype=np.float32) * noise_sd
    deviation *= scale[batch][:, None]
    deviation += baseline
    deviation += shift[batch]
    return deviation


def _survival(config: SimulationConfig, rng: np.random.Generator, activity: np.ndarray,
              samples: dict, modules: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """Weibull overall survival (months) from module activity; normals get NaN time and event."""
    type_log_hazard = rng.normal(0.0, 0.4, config.n_cancer_types)
    prog_activity = activity[:, modules["prognostic"]].astype(np.float64)
    log_hazard = (type_log_hazard[samples["type"]] + prog_activity @ modules["betas"]
                  + _AGE_LOG_HAZARD * (samples["age"] - 60.0))
    scale = np.log(2.0) / _BASELINE_MEDIAN_MONTHS**_WEIBULL_SHAPE
    event_time = (rng.exponential(1.0, config.n_samples)
                  / (scale * np.exp(log_hazard))) ** (1.0 / _WEIBULL_SHAPE)
    # Independent censoring: staggered entry (administrative end) and loss to follow-up.
    censor_time = np.minimum(rng.uniform(6.0, 120.0, config.n_samples),
                             rng.exponential(200.0, config.n_samples))
    surv_time = np.maximum(np.minimum(event_time, censor_time), 0.03)   # no zero-length times
    event = (event_time <= censor_time).astype(np.float32)
    surv_time = np.where(samples["is_normal"], np.nan, surv_time).astype(np.float32)
    event[samples["is_normal"]] = np.nan
    truth = {"type_log_hazard": type_log_hazard, "weibull_shape": _WEIBULL_SHAPE,
             "baseline_median_months": _BASELINE_MEDIAN_MONTHS,
             "age_log_hazard_per_year": _AGE_LOG_HAZARD}
    return surv_time, event, truth


def _observe_log(config: SimulationConfig, rng: np.random.Generator, log_expr: np.ndarray,
                 batch: np.ndarray) -> tuple[np.ndarray, str, np.ndarray]:
    """Clip at 0, blank MCAR cells, and blank the genes one batch's panel lacked."""
    X = np.maximum(log_expr, 0.0, out=log_expr)
    X[rng.random(X.shape, dtype=np.float32) < config.missing_fraction] = np.nan
    n_gap = int(round(config.panel_gap_fraction * config.n_genes))
    if config.n_batches < 2 or n_gap == 0:     # one batch: no other batch could have measured them
        return X, "none", np.array([], dtype=int)
    gap_batch = int(rng.integers(config.n_batches))
    gap_genes = np.sort(rng.choice(config.n_genes, n_gap, replace=False))
    X[np.ix_(batch == gap_batch, gap_genes)] = np.nan
    return X, f"batch{gap_batch + 1}", gap_genes


def _observe_counts(rng: np.random.Generator, log_expr: np.ndarray) -> np.ndarray:
    """Negative-binomial (gamma-Poisson) counts with lognormal library sizes around 20M."""
    n, g = log_expr.shape
    library = np.exp(rng.normal(np.log(20e6), 0.35, n))
    abundance = np.exp2(log_expr - log_expr.max(axis=1, keepdims=True))  # stable 2**x
    mean = abundance * (library / abundance.sum(axis=1, dtype=np.float64))[:, None]
    dispersion = np.exp(rng.normal(np.log(0.1), 0.5, g)).astype(np.float32)
    rate = mean * rng.standard_gamma(1.0 / dispersion, size=(n, g), dtype=np.float32) * dispersion
    counts = rng.poisson(rate)
    return np.minimum(counts, _MAX_EXACT_COUNT).astype(np.float32)


def _assemble(config: SimulationConfig, X: np.ndarray, samples: dict, modules: dict,
              surv_time: np.ndarray, event: np.ndarray) -> ad.AnnData:
    codes = list(TYPE_CODES[: config.n_cancer_types])
    type_code = np.asarray(codes)[samples["type"]]
    is_normal = samples["is_normal"]
    obs = pd.DataFrame({
        keys.OBS_PATIENT: samples["patient_id"],
        "cancer_type": pd.Categorical(type_code, categories=codes),
        "sample_type": pd.Categorical(np.where(is_normal, "normal", "tumour"),
                                      categories=["tumour", "normal"]),
        keys.OBS_LABEL: pd.Categorical(np.where(is_normal, NORMAL_LABEL, type_code),
                                       categories=codes + [NORMAL_LABEL]),
        "batch": pd.Categorical(np.char.add("batch", (samples["batch"] + 1).astype(str)),
                                categories=[f"batch{b + 1}" for b in range(config.n_batches)]),
        "age": samples["age"],
        "sex": pd.Categorical(np.where(samples["female"], "female", "male"),
                              categories=["female", "male"]),
        keys.OBS_TIME: surv_time,
        keys.OBS_EVENT: event,
    }, index=pd.Index(samples["sample_id"], name="sample_id"))
    width = max(5, len(str(config.n_genes)))
    genes = np.char.add("SIMG", np.char.zfill(np.arange(1, config.n_genes + 1).astype(str), width))
    var = pd.DataFrame({"module": _first_module(config, modules),
                        "prognostic": (modules["loadings"][modules["prognostic"]] != 0).any(0)},
                       index=pd.Index(genes, name="gene"))
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.varm[LOADINGS_KEY] = np.ascontiguousarray(modules["loadings"].T)
    adata.uns[keys.UNS_PROVENANCE] = {
        "source": "simulated", "simulated": True,
        "label": "Simulated pan-cancer cohort (simulated data)", "config": asdict(config)}
    adata.uns[keys.UNS_SURVIVAL] = survival_info(keys.OBS_TIME, keys.OBS_EVENT, "months",
                                                 "OS (simulated)", surv_time, event)
    return adata


def _first_module(config: SimulationConfig, modules: dict) -> pd.Categorical:
    """Name of the first module each gene belongs to, 'none' outside modules."""
    flat = modules["members"].ravel()
    genes, first_slot = np.unique(flat, return_index=True)
    label = np.full(config.n_genes, "none", dtype=object)
    label[genes] = np.asarray(modules["names"], dtype=object)[first_slot // config.module_size]
    return pd.Categorical(label, categories=[*modules["names"], "none"])


def _truth(config: SimulationConfig, genes: pd.Index, modules: dict, surv_truth: dict,
           gap_batch: str, gap_genes: np.ndarray) -> dict:
    """Planted truth as plain h5ad-writeable values (strings, lists, numbers)."""
    names, prog = modules["names"], modules["prognostic"]
    codes = list(TYPE_CODES[: config.n_cancer_types])
    return {
        "note": "Planted truth of a simulated cohort; not real patients.",
        "type_codes": codes,
        "normal_label": NORMAL_LABEL,
        "module_names": names,
        "module_genes": {name: genes[m].tolist() for name, m in zip(names, modules["members"])},
        "loadings_varm_key": LOADINGS_KEY,
        "prognostic_modules": [names[i] for i in prog],
        "prognostic_betas": [float(b) for b in modules["betas"]],
        "type_log_hazard": dict(zip(codes, map(float, surv_truth["type_log_hazard"]))),
        "weibull_shape": float(surv_truth["weibull_shape"]),
        "baseline_median_months": float(surv_truth["baseline_median_months"]),
        "age_log_hazard_per_year": float(surv_truth["age_log_hazard_per_year"]),
        "panel_gap_batch": gap_batch,
        "panel_gap_genes": genes[gap_genes].tolist(),
    }
