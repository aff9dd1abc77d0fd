"""Out-of-fold predictions for every sample, to colour a map by them.

Patient-aware stratified K folds (a patient's samples share a fold); each fold is predicted by
a model fitted on the other folds only, so no sample's prediction comes from a model that saw
it. Features are an encoder's embedding or `EXPRESSION` (normalised on the fitting folds only),
as in `gexcore.explore.holdout`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from anndata import AnnData

from gexcore.data.rules import labelled_rows, survival_rows
from gexcore.errors import InputError
from gexcore.evaluate.splits import Split, patient_groups
from gexcore.explore.features import split_features

__all__ = ["out_of_fold_classes", "out_of_fold_risk"]


def out_of_fold_classes(adata: AnnData, features: np.ndarray | str, label: str, *,
                        folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Linear-probe class of every labelled sample, predicted by the folds it is not in.

    Returns a frame indexed like `adata.obs_names`: `predicted`, `confidence` (its probability)
    and `correct`; rows without a label in a class of 2+ samples stay missing.
    """
    from gexcore.tasks.classification import linear_probe

    keep, y = labelled_rows(adata.obs, label)
    out = pd.DataFrame({"predicted": pd.Series(pd.NA, index=adata.obs_names, dtype=object),
                        "confidence": np.nan, "correct": pd.NA}, index=adata.obs_names)
    rows = np.flatnonzero(keep)
    for split in _folds(adata, keep, y[keep], folds, seed):
        X_train, X_test = split_features(features, adata, rows[split.train], rows[split.test])
        model = linear_probe().fit(X_train, y[rows[split.train]])
        proba = model.predict_proba(X_test)
        test = rows[split.test]
        out.iloc[test, 0] = model.classes_[proba.argmax(axis=1)].astype(str)
        out.iloc[test, 1] = proba.max(axis=1)
    labelled = out.index[rows]
    out.loc[labelled, "correct"] = out.loc[labelled, "predicted"].to_numpy() == y[rows]
    return out


def out_of_fold_risk(adata: AnnData, features: np.ndarray | str, *, time: str = "time",
                     event: str = "event", folds: int = 5, seed: int = 0,
                     penalizer: float = 1.0) -> pd.Series:
    """Ridge-Cox risk of every sample with follow-up, from the folds it is not in, as its
    percentile (0-100) among the fitting folds' own risks: each fold's model has its own
    scale, the percentile does not. Higher = shorter predicted survival; NaN for samples
    without a usable time and event."""
    from gexcore.tasks.survival import CoxHead, survival_target

    keep, t, e = survival_rows(adata.obs, time, event)
    risk = pd.Series(np.nan, index=adata.obs_names, name="risk percentile")
    rows = np.flatnonzero(keep)
    for split in _folds(adata, keep, e[keep].astype(str), folds, seed):
        train = rows[split.train]
        X_train, X_test = split_features(features, adata, train, rows[split.test])
        model = CoxHead(penalizer=penalizer).fit(X_train, survival_target(t[train], e[train]))
        reference = np.sort(model.predict_risk(X_train))
        ranks = np.searchsorted(reference, model.predict_risk(X_test), side="right")
        risk.iloc[rows[split.test]] = 100.0 * ranks / len(reference)
    return risk


def _folds(adata: AnnData, keep: np.ndarray, strata: np.ndarray, folds: int,
           seed: int) -> Iterator[Split]:
    """Patient-grouped stratified folds of the `keep` rows (indices into those rows)."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups, grouped_by = patient_groups(adata[keep])
    smallest = int(pd.Series(strata).value_counts().min())
    n_splits = min(folds, smallest, len(set(groups)))
    if n_splits < 2:
        raise InputError("out-of-fold predictions need at least 2 patients in every class.")
    kfold = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train, test in kfold.split(np.zeros(len(strata)), strata, groups):
        split = Split(train, test, grouped_by)
        split.check_disjoint(groups)
        yield split
