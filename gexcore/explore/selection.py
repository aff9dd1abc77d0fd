"""Selections of samples without a lasso: every sample whose clinical column has one value."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype

__all__ = ["MAX_SELECT_VALUES", "column_values", "rows_where", "selectable_columns"]

MAX_SELECT_VALUES = 200          # columns with more distinct values are ids or measurements


def selectable_columns(obs: pd.DataFrame) -> list[str]:
    """Columns a user can select samples by: categories or text with 1 to 200 distinct values,
    and whole numbers with at most 20 (stage, grade, batch numbers)."""
    return [str(c) for c in obs.columns if _selectable(obs[c].dropna())]


def _selectable(values: pd.Series) -> bool:
    n = values.nunique()
    if isinstance(values.dtype, pd.CategoricalDtype) or not is_numeric_dtype(values):
        return 0 < n <= MAX_SELECT_VALUES
    return 0 < n <= 20 and bool(np.all(np.asarray(values, dtype=float) % 1 == 0))


def column_values(obs: pd.DataFrame, column: str) -> list[str]:
    """Distinct non-missing values of `column` as text, most frequent first."""
    return [str(v) for v in obs[column].dropna().astype(str).value_counts().index]


def rows_where(obs: pd.DataFrame, column: str, value: str) -> np.ndarray:
    """Row indices of the samples whose `column` reads `value` (compared as text)."""
    values = obs[column]
    text = values.astype(object).where(values.notna()).map(str, na_action="ignore")
    return np.flatnonzero(text.to_numpy() == str(value))
