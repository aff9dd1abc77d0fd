"""Leakage-safe splits: patient-aware stratified train/test, nested label-fraction subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from gexcore import keys
from gexcore.data.clinical import patient_ids
from gexcore.errors import InputError

__all__ = ["Split", "nested_fractions", "patient_groups", "stratified_subset", "train_test_split"]


class Split:
    """Row indices of one train/test split and how it was grouped."""

    def __init__(self, train: np.ndarray, test: np.ndarray, grouped_by: str):
        self.train, self.test, self.grouped_by = train, test, grouped_by

    def check_disjoint(self, groups: np.ndarray) -> None:
        """Raise if a patient (group) has samples on both sides: the guard every protocol calls."""
        shared = set(groups[self.train]) & set(groups[self.test])
        if shared:
            raise AssertionError(f"{len(shared)} patients are in both train and test, "
                                 f"e.g. {sorted(shared)[:3]}.")


def patient_groups(adata: AnnData) -> tuple[np.ndarray, str]:
    """One group id per sample: `obs["patient_id"]`, else TCGA patient barcodes, else sample ids."""
    if keys.OBS_PATIENT in adata.obs:
        ids = adata.obs[keys.OBS_PATIENT].astype(str).to_numpy()
        return ids, f"obs['{keys.OBS_PATIENT}']"
    ids = np.asarray(patient_ids(adata.obs_names), dtype=object).astype(str)
    if len(set(ids)) < adata.n_obs:
        return ids, "TCGA patient barcode (first 12 characters)"
    return np.asarray(adata.obs_names, dtype=str), "sample"


def train_test_split(adata: AnnData, *, stratify: np.ndarray | None = None,
                     test_size: float = 0.2, seed: int = 0) -> Split:
    """Stratified split that keeps every patient's samples on one side.

    Groups are shuffled within strata (a patient's stratum is its first sample's label), then
    whole groups go to test until each stratum reaches `test_size`.
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), not {test_size}.")
    groups, grouped_by = patient_groups(adata)
    strata = np.zeros(adata.n_obs, dtype=int) if stratify is None else _codes(stratify)
    rng = np.random.default_rng(seed)
    first = pd.DataFrame({"g": groups, "s": strata}).drop_duplicates("g")
    sizes = pd.Series(groups).value_counts()
    test_groups: list[str] = []
    for _, block in first.groupby("s", sort=True):
        order = rng.permutation(block["g"].to_numpy())
        target = test_size * sizes[order].sum()
        taken = np.cumsum(sizes[order].to_numpy())
        n_take = int(np.searchsorted(taken, target, side="left")) + 1
        n_take = min(n_take, len(order) - 1) if len(order) > 1 else 0
        test_groups.extend(order[:n_take])
    is_test = np.isin(groups, test_groups)
    split = Split(np.flatnonzero(~is_test), np.flatnonzero(is_test), grouped_by)
    if len(split.test) == 0 or len(split.train) == 0:
        raise InputError(f"cannot split {adata.n_obs} samples into train and test; "
                         "the cohort needs at least two patients per class.")
    split.check_disjoint(groups)
    return split


def nested_fractions(labels: np.ndarray, fractions: tuple[float, ...], *,
                     seed: int = 0) -> dict[float, np.ndarray]:
    """Nested, class-stratified subsets (positions into `labels`) for each label fraction.

    One seeded order per class; fraction f takes the first ceil(f * n_class) of each class (at
    least one), so every smaller subset is contained in every larger one.
    """
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"label fractions must be in (0, 1], not {f}.")
    codes = _codes(labels)
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(np.flatnonzero(codes == c)) for c in np.unique(codes)]
    return {f: np.sort(np.concatenate([o[:max(1, int(np.ceil(f * len(o))))] for o in orders]))
            for f in sorted(fractions)}


def _codes(values: np.ndarray) -> np.ndarray:
    return pd.factorize(pd.Series(np.asarray(values)).astype(str))[0]


def stratified_subset(labels, n: int, *, seed: int = 0) -> np.ndarray:
    """Sorted positions of at most `n` items, about equally many per class (all of a small one)."""
    codes = pd.factorize(pd.Series(np.asarray(labels, dtype=object)).astype(str))[0]
    if len(codes) <= n:
        return np.arange(len(codes))
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(np.flatnonzero(codes == c)) for c in np.unique(codes)]
    take, budget = {}, n
    for i, order in sorted(enumerate(orders), key=lambda io: len(io[1])):   # small classes first
        share = budget // (len(orders) - len(take))
        take[i] = order[:share]
        budget -= len(take[i])
    return np.sort(np.concatenate(list(take.values())))
