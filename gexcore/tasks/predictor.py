"""A saved prediction model: a fitted head (linear classifier or Cox risk) with the features it
reads (an encoder, or normalised expression), its normaliser, the training value ranges and,
for risk, the risk-group cut-offs of the training risks, in one folder:

```
model/predictor.json      task, target columns, classes, risk groups, OOD settings, provenance
model/head.safetensors    head weights and per-gene training value ranges (float64)
model/encoder/            the encoder checkpoint (model.safetensors + config.json + ...), if any
```
Tensors go through safetensors and the rest through JSON: loading never unpickles anything.

```python
model = fit_predictor(adata, "classification", label="cancer_type", encoder=enc)
model.save("brca_model"); model = Predictor.load("brca_model")
table = model.predict(new_cohort)    # p_<class>..., predicted, confidence, flags per sample
```
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gexcore.atomic import OutputKind, atomic_write_dir
from gexcore.data.genes import MIN_GENE_OVERLAP
from gexcore.data.normalize import NormalizeConfig, Normalizer
from gexcore.data.rules import MIN_CLASS_SIZE, labelled_rows, survival_rows
from gexcore.errors import CheckpointError, GeneMismatchError, InputError

if TYPE_CHECKING:
    from anndata import AnnData

    from gexcore.models.encoder import Encoder

__all__ = ["MAX_OUT_OF_RANGE", "PREDICTOR_KIND", "PREDICTOR_OUTPUT", "RANGE_QUANTILES",
           "Predictor", "Task", "fit_predictor", "is_predictor", "left_out_classes"]

logger = logging.getLogger(__name__)

Task = Literal["classification", "survival"]
PREDICTOR_KIND = "gexscope-predictor"
FORMAT_VERSION = 1
# A value is outside the training range beyond these per-gene quantiles of the normalised
# training values; by construction about 2% of an in-distribution sample's values are.
RANGE_QUANTILES = (0.01, 0.99)
# A sample with more than this share of its measured values outside the training range is
# flagged: unseen patients of the simulated world stay under 10% (at most 9.2% of 255 in
# tests/test_predict.py); another simulator seed puts about half of every sample outside.
MAX_OUT_OF_RANGE = 0.15
_JSON, _HEAD, _ENCODER = "predictor.json", "head.safetensors", "encoder"
_EXPRESSION_TOP_GENES = 2000      # default genes of an expression model (as the dashboard's)

PREDICTOR_OUTPUT = OutputKind("predictor", "a prediction model", files=(_JSON, _HEAD, _ENCODER))


def left_out_classes(obs: pd.DataFrame, label: str) -> dict[str, int]:
    """Classes of `label` that `labelled_rows` leaves out (fewer than MIN_CLASS_SIZE samples),
    with their sample counts; {} when none is."""
    counts = obs[label].value_counts()
    small = counts[(counts > 0) & (counts < MIN_CLASS_SIZE)]
    return {str(k): int(v) for k, v in small.items()}


def is_predictor(path: str | Path) -> bool:
    """Whether `path` is a prediction-model folder (cheap: reads predictor.json's kind only)."""
    try:
        config = json.loads((Path(path) / _JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("kind") == PREDICTOR_KIND


class Predictor:
    """A fitted head on an encoder's embedding or on normalised expression; see the module.

    `head` holds arrays: classification `mean`, `scale`, `coef` (k, d), `intercept` (k,) of a
    standardise + logistic regression; survival `mean`, `scale`, `coef` (d,) of a `CoxHead`.
    Risks are log hazard ratios: higher = shorter survival.
    """

    def __init__(self, task: Task, target: dict[str, str], head: dict[str, np.ndarray], *,
                 normalizer: Normalizer, encoder: Encoder | None = None,
                 classes: list[str] | None = None, risk_groups: dict | None = None,
                 range_low: np.ndarray, range_high: np.ndarray, info: dict | None = None):
        self.task, self.target, self.head = task, dict(target), head
        self.normalizer, self.encoder = normalizer, encoder
        self.classes = list(classes or [])
        self.risk_groups = risk_groups          # {scheme, quantiles, thresholds, names}
        self.range_low, self.range_high = range_low, range_high
        self.info = dict(info or {})

    @property
    def genes(self) -> list[str]:
        """The genes the model reads (the encoder's vocabulary, or the expression genes)."""
        return list(self.normalizer.genes_)

    @property
    def features(self) -> str:
        """'<method> encoder embedding' or 'normalised expression'."""
        return (f"{self.encoder.method} encoder embedding" if self.encoder is not None
                else "normalised expression")

    @property
    def missing_genes(self) -> str:
        """What happens to a gene a sample lacks, as the output says it."""
        from gexcore.models.gene_transformer import GeneTransformer

        if self.encoder is not None and isinstance(self.encoder.body, GeneTransformer):
            return ("genes a sample lacks are left out of the transformer's attention "
                    "(masked), not filled")
        reader = "the MLP encoder" if self.encoder is not None else "the linear model"
        return (f"genes a sample lacks enter {reader} as 0, the training mean after z-scoring "
                "(as in training)")

    @property
    def description(self) -> str:
        what = (f"{self.target['label']} ({len(self.classes)} classes)"
                if self.task == "classification" else "survival risk (Cox)")
        return (f"predicts {what} from the {self.features} of {len(self.genes):,} genes, "
                f"fitted on {self.info.get('n_train', 0):,} samples")

    # -- prediction ------------------------------------------------------------------------
    def predict(self, adata: AnnData) -> pd.DataFrame:
        """One row per sample of `adata`: classification `p_<class>`..., `predicted`,
        `confidence`; survival `risk`, `risk_group` (cut at the TRAINING risks); then
        `genes_measured`, `out_of_range` (shares) and `flag` ("" when in distribution).

        `attrs["missing_genes"]` says how unmeasured genes were handled. GeneMismatchError
        when the cohort shares none of the model's genes.
        """
        self._check_genes(adata)
        X = self.normalizer.transform(adata).X                    # (n, genes), NaN unmeasured
        measured = ~np.isnan(X)
        share = measured.mean(axis=1)
        out = self._predict_rows(adata, X, share > 0)
        out["genes_measured"] = share
        out["out_of_range"] = self._out_of_range(X, measured)
        out["flag"] = [_flag(s, o) for s, o in zip(share, out["out_of_range"])]
        out.attrs["missing_genes"] = self.missing_genes
        return out

    def _check_genes(self, adata: AnnData) -> None:
        genes = pd.Index(self.genes)
        shared = genes.isin(adata.var_names)
        if not shared.any():
            raise GeneMismatchError(
                f"the cohort shares none of the model's {len(genes):,} genes (model genes e.g. "
                f"{', '.join(genes[:3])}; cohort genes e.g. "
                f"{', '.join(map(str, adata.var_names[:3]))}); check the gene id type "
                "(symbols vs Ensembl) with `gex info`.")

    def _predict_rows(self, adata: AnnData, X: np.ndarray, usable: np.ndarray) -> pd.DataFrame:
        """Predictions of the rows with at least one measured gene; NaN for the others."""
        rows = np.flatnonzero(usable)
        if self.encoder is not None:
            F = self.encoder.embed(adata[rows], min_overlap=0.0).astype(np.float64)
        else:
            F = np.nan_to_num(X[rows]).astype(np.float64)
        index = adata.obs_names
        if self.task == "classification":
            proba = np.full((adata.n_obs, len(self.classes)), np.nan)
            proba[rows] = self._proba(F)
            frame = pd.DataFrame(proba, index=index, columns=[f"p_{c}" for c in self.classes])
            best = np.nan_to_num(proba, nan=-1.0).argmax(axis=1)
            frame["predicted"] = np.where(usable, np.asarray(self.classes, object)[best], None)
            frame["confidence"] = np.where(usable, np.nan_to_num(proba).max(axis=1), np.nan)
            return frame
        risk = np.full(adata.n_obs, np.nan)
        risk[rows] = (F - self.head["mean"]) / self.head["scale"] @ self.head["coef"]
        groups = _fitted_groups(self.risk_groups)
        names = np.full(adata.n_obs, None, dtype=object)
        if len(rows):
            names[rows] = np.asarray(groups.names_, dtype=object)[groups.assign(risk[rows])]
        return pd.DataFrame({"risk": risk, "risk_group": names}, index=index)

    def _proba(self, F: np.ndarray) -> np.ndarray:
        """Class probabilities of the standardise + logistic regression (sklearn's formulas)."""
        logits = (F - self.head["mean"]) / self.head["scale"] @ self.head["coef"].T \
            + self.head["intercept"]
        if logits.shape[1] == 1:                            # binary: one logit for class 1
            p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.column_stack([1.0 - p, p])
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def _out_of_range(self, X: np.ndarray, measured: np.ndarray) -> np.ndarray:
        """Per sample: share of measured values beyond the training quantiles of their gene."""
        with np.errstate(invalid="ignore"):                 # NaN bounds: never out of range
            outside = (X < self.range_low) | (X > self.range_high)
        counts = measured.sum(axis=1)
        return np.divide(outside.sum(axis=1), counts, out=np.zeros(len(X)), where=counts > 0)

    # -- saving ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model folder atomically (new, empty, or a prediction model to replace)."""
        config = {"kind": PREDICTOR_KIND, "format_version": FORMAT_VERSION, "task": self.task,
                  "target": self.target, "classes": self.classes,
                  "risk_groups": self.risk_groups,
                  "features": "encoder" if self.encoder is not None else "expression",
                  "normalizer": None if self.encoder is not None else self.normalizer.to_dict(),
                  "ood": {"range_quantiles": list(RANGE_QUANTILES),
                          "max_out_of_range": MAX_OUT_OF_RANGE,
                          "min_gene_overlap": MIN_GENE_OVERLAP},
                  "info": self.info}
        tensors = {name: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float64))
                   for name, value in {**self.head, "range_low": self.range_low,
                                       "range_high": self.range_high}.items()}

        def write(tmp: Path) -> None:
            save_file(tensors, str(tmp / _HEAD))
            (tmp / _JSON).write_text(json.dumps(config, indent=1), encoding="utf-8")
            if self.encoder is not None:
                self.encoder.save(tmp / _ENCODER)

        return atomic_write_dir(path, write, kind=PREDICTOR_OUTPUT)

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """Read a model folder; CheckpointError naming what is missing or foreign."""
        path = Path(path)
        config = _read_config(path)
        try:
            tensors = {k: v.numpy() for k, v in load_file(str(path / _HEAD)).items()}
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{path}: {_HEAD} is missing or unreadable ({err}).") from err
        encoder = None
        try:
            if config["features"] == "encoder":
                from gexcore.models.encoder import Encoder

                encoder = Encoder.load(path / _ENCODER)
                normalizer = encoder.normalizer
            else:
                normalizer = Normalizer.from_dict(config["normalizer"])
            low, high = tensors.pop("range_low"), tensors.pop("range_high")
            model = cls(config["task"], config["target"], tensors, normalizer=normalizer,
                        encoder=encoder, classes=config["classes"],
                        risk_groups=config["risk_groups"], range_low=low, range_high=high,
                        info=config.get("info"))
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: {_JSON} does not describe a prediction model "
                                  f"({type(err).__name__}: {err}).") from err
        if len(low) != len(normalizer.genes_):
            raise CheckpointError(f"{path}: the value ranges cover {len(low)} genes but the "
                                  f"model reads {len(normalizer.genes_)}.")
        return model


def fit_predictor(adata: AnnData, task: Task, *, label: str | None = None, time: str = "time",
                  event: str = "event", encoder: Encoder | None = None,
                  features: np.ndarray | None = None, normalize: NormalizeConfig | None = None,
                  groups: str = "median", C: float = 1.0, penalizer: float = 1.0) -> Predictor:
    """Fit a head on every usable row of `adata` (labelled rows, or rows with survival).

    Features: `encoder`'s embedding (`features` may pass its stored embedding of `adata`,
    (n_obs, d), to skip embedding again), or without an encoder the expression normalised by
    a `Normalizer(normalize)` fitted on those rows (default: top 2,000 variable genes).
    Survival risk groups (`groups`: median, tertiles, quartiles) are cut at quantiles of the
    training risks.
    """
    from gexcore.tasks.survival import RiskGroups

    rows, y, target, info = _training_rows(adata, task, label, time, event)
    train = adata[rows]
    if encoder is not None:
        normalizer = encoder.normalizer
        F = _encoder_features(encoder, train, features, rows, adata.n_obs)
    else:
        config = normalize or NormalizeConfig(n_top_genes=_EXPRESSION_TOP_GENES)
        normalizer = Normalizer(config).fit(train)
    X = normalizer.transform(train).X
    if encoder is None:
        F = np.nan_to_num(X).astype(np.float64)
    low, high = _value_ranges(X)
    info |= {"n_train": len(rows), "n_genes": len(normalizer.genes_),
             "source": str(adata.uns.get("provenance", {}).get("source", ""))}
    if encoder is not None:
        info["encoder_method"] = encoder.method
    if task == "classification":
        head, classes = _fit_classifier(F, y, C)
        return Predictor(task, target, head, normalizer=normalizer, encoder=encoder,
                         classes=classes, range_low=low, range_high=high, info=info)
    head, train_risk = _fit_cox(F, y, penalizer)
    fitted = RiskGroups(scheme=groups).fit(train_risk)
    risk_groups = {"scheme": groups, "quantiles": fitted.quantiles_.tolist(),
                   "thresholds": fitted.thresholds_.tolist(), "names": list(fitted.names_)}
    return Predictor(task, target, head, normalizer=normalizer, encoder=encoder,
                     risk_groups=risk_groups, range_low=low, range_high=high, info=info)


# ---------------------------------------------------------------------------------- helpers

def _training_rows(adata: AnnData, task: Task, label: str | None, time: str, event: str):
    """(row indices, target, target columns, info) of the rows a `task` fit uses."""
    if task == "classification":
        if label is None:
            raise InputError("a classification model needs a label column (--label COLUMN).")
        keep, y = labelled_rows(adata.obs, label)
        info = {"left_out": left_out_classes(adata.obs, label)}
        return np.flatnonzero(keep), y[keep], {"label": label}, info
    if task != "survival":
        raise ValueError(f"task must be 'classification' or 'survival', not {task!r}.")
    from gexcore.tasks.survival import survival_target

    keep, t, e = survival_rows(adata.obs, time, event)
    return (np.flatnonzero(keep), survival_target(t[keep], e[keep]),
            {"time": time, "event": event}, {})


def _encoder_features(encoder: Encoder, train: AnnData, features: np.ndarray | None,
                      rows: np.ndarray, n_obs: int) -> np.ndarray:
    if features is None:
        return encoder.embed(train).astype(np.float64)
    F = np.asarray(features, dtype=np.float64)
    if F.shape != (n_obs, encoder.dim) or not np.isfinite(F).all():
        raise InputError(f"features have shape {F.shape}; expected ({n_obs}, {encoder.dim}), "
                         "the encoder's finite embedding of every sample of the cohort.")
    return F[rows]


def _value_ranges(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene RANGE_QUANTILES of the normalised training values (NaN for unmeasured genes)."""
    with warnings.catch_warnings():                       # all-NaN genes: NaN bounds on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(X, RANGE_QUANTILES, axis=0)
    return low.astype(np.float64), high.astype(np.float64)


def _fit_classifier(F: np.ndarray, y: np.ndarray, C: float):
    from gexcore.tasks.classification import linear_probe

    probe = linear_probe(C=C).fit(F, y)
    scaler, lr = probe[0], probe[-1]
    head = {"mean": scaler.mean_, "scale": scaler.scale_, "coef": lr.coef_,
            "intercept": lr.intercept_}
    return head, [str(c) for c in lr.classes_]


def _fit_cox(F: np.ndarray, y: np.ndarray, penalizer: float):
    from gexcore.tasks.survival import CoxHead

    cox = CoxHead(penalizer=penalizer).fit(F, y)
    head = {"mean": cox.mean_, "scale": cox.scale_, "coef": cox.coef_}
    return head, cox.predict_risk(F)


def _fitted_groups(saved: dict):
    """The `RiskGroups` of the training risks, as saved (thresholds, not refitted)."""
    from gexcore.tasks.survival import RiskGroups

    groups = RiskGroups(scheme=saved["scheme"])
    groups.quantiles_ = np.asarray(saved["quantiles"], dtype=float)
    groups.thresholds_ = np.asarray(saved["thresholds"], dtype=float)
    groups.names_ = list(saved["names"])
    return groups


def _flag(measured: float, out_of_range: float) -> str:
    reasons = []
    if measured < MIN_GENE_OVERLAP:
        reasons.append(f"only {measured:.0%} of the model's genes measured (needs "
                       f"{MIN_GENE_OVERLAP:.0%})")
    if out_of_range > MAX_OUT_OF_RANGE:
        reasons.append(f"{out_of_range:.0%} of values outside the training range (over "
                       f"{MAX_OUT_OF_RANGE:.0%})")
    return "; ".join(reasons)


def _read_config(path: Path) -> dict:
    if not (path / _JSON).is_file():
        hint = (" It is an encoder checkpoint (gex pretrain); make a prediction model from it "
                "with `gex fit COHORT --label COLUMN --encoder MODEL --out FOLDER`."
                if (path / "model.safetensors").is_file() else "")
        raise CheckpointError(f"{path}: not a prediction model (no {_JSON}).{hint}")
    try:
        config = json.loads((path / _JSON).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: {_JSON} is not valid JSON ({err}).") from err
    if not isinstance(config, dict) or config.get("kind") != PREDICTOR_KIND:
        raise CheckpointError(f"{path}: {_JSON} kind is {config.get('kind')!r}, not "
                              f"{PREDICTOR_KIND!r}." if isinstance(config, dict) else
                              f"{path}: {_JSON} is not a JSON object.")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer GexScope (format "
                              f"{config['format_version']}); upgrade to load it.")
    return config
