"""Map a cohort's clinical columns onto the standard obs keys before it is saved.

Every task reads `obs['label']`, `obs['time']`/`obs['event']`, `obs['batch']` and
`obs['patient_id']`; the Data page lets the user say which of their columns those are.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from anndata import AnnData

from gexcore import keys
from gexcore.data.rules import has_survival, is_label_column
from gexcore.errors import InputError

__all__ = ["OBS_BATCH", "ROLES", "ColumnMapping", "apply_mapping", "guess_mapping"]

OBS_BATCH = "batch"
ROLES = {"label": keys.OBS_LABEL, "time": keys.OBS_TIME, "event": keys.OBS_EVENT,
         "batch": OBS_BATCH, "patient": keys.OBS_PATIENT}          # role -> obs key written
UNS_MAPPING = "column_mapping"

_HINTS = {
    "label": ("label", "cancer_type", "tissue", "subtype", "diagnosis", "disease", "cell_type",
              "histology", "class", "group", "type"),
    "batch": ("batch", "plate", "center", "centre", "site", "tss", "platform", "run"),
    "patient": ("patient_id", "patient", "case_id", "submitter_id", "subject", "donor",
                "individual"),
}


@dataclass(frozen=True)
class ColumnMapping:
    """The obs column that becomes each standard key; None: the cohort has none."""

    label: str | None = None
    time: str | None = None
    event: str | None = None
    batch: str | None = None
    patient: str | None = None


def guess_mapping(adata: AnnData) -> ColumnMapping:
    """Defaults: the standard columns a reader already filled, else a column whose name says
    its role (`cancer_type`, `plate`, `case_id`, ...); a label must pass
    `is_label_column`."""
    obs = adata.obs
    by_name = {_norm(c): str(c) for c in reversed(obs.columns)}     # first spelling wins

    def find(role: str) -> str | None:
        for hint in _HINTS[role]:
            name = by_name.get(hint)
            if name is not None and (role != "label" or is_label_column(obs[name])):
                return name
        return None

    survival = has_survival(obs)
    return ColumnMapping(label=find("label"), time=keys.OBS_TIME if survival else None,
                         event=keys.OBS_EVENT if survival else None, batch=find("batch"),
                         patient=find("patient"))


def apply_mapping(adata: AnnData, mapping: ColumnMapping, *,
                  copy: bool = True) -> AnnData | None:
    """Write the mapped columns to their standard obs keys (None drops the key).

    Labels, batches and patient ids become categorical strings; time/event are parsed as the
    readers parse them. Updates `uns['survival']`, the report's column list and
    `uns['column_mapping']`. Raises `InputError` naming the column when one cannot serve.
    """
    from gexcore.data.validate import describe_columns

    missing = [c for c in asdict(mapping).values() if c is not None and c not in adata.obs]
    if missing:
        raise InputError(f"no column {missing[0]!r} in the clinical table; the columns are "
                         f"{', '.join(map(str, adata.obs.columns))}.")
    if (mapping.time is None) != (mapping.event is None):
        raise InputError("pick both a survival time and an event column, or neither.")
    out = adata.copy() if copy else adata
    obs = out.obs
    for role in ("label", "batch", "patient"):
        source, target = getattr(mapping, role), ROLES[role]
        if source is None:
            obs.drop(columns=target, inplace=True, errors="ignore")
        elif source != target:
            obs[target] = _as_categories(obs[source])
    if mapping.label is not None and obs[keys.OBS_LABEL].nunique() < 2:
        raise InputError(f"column {mapping.label!r} has fewer than 2 distinct values; a label "
                         "needs at least 2 classes.")
    _map_survival(out, mapping.time, mapping.event)
    report = out.uns.get(keys.UNS_VALIDATION)
    if report is not None:
        report["columns"] = describe_columns(obs)
        report["survival"] = dict(out.uns.get(keys.UNS_SURVIVAL, {}))
    out.uns[UNS_MAPPING] = {role: source or "" for role, source in asdict(mapping).items()}
    return out if copy else None


def _map_survival(adata: AnnData, time: str | None, event: str | None) -> None:
    from gexcore.data.rules import survival_info
    from gexcore.data.survival import detect_survival, survival_arrays

    obs = adata.obs
    if time is None:
        obs.drop(columns=[keys.OBS_TIME, keys.OBS_EVENT], inplace=True, errors="ignore")
        adata.uns.pop(keys.UNS_SURVIVAL, None)
        return
    if (time, event) == (keys.OBS_TIME, keys.OBS_EVENT):
        return                                         # the reader's own parse; keep its uns
    frame = obs.astype(object)
    frame.attrs["source"] = "clinical table"
    cols = detect_survival(frame, time_column=time, event_column=event)
    t, e = survival_arrays(frame, cols)
    if not np.isfinite(t).any():
        raise InputError(f"column {time!r} holds no survival times (all missing).")
    previous = adata.uns.get(keys.UNS_SURVIVAL, {})
    unit = (previous.get("time_unit", "unknown") if time == keys.OBS_TIME
            else cols.time_unit)
    obs[keys.OBS_TIME] = t.astype(np.float32)
    obs[keys.OBS_EVENT] = e.astype(np.float32)
    adata.uns[keys.UNS_SURVIVAL] = survival_info(time, event, unit, cols.endpoint, t, e)


def _as_categories(values: pd.Series) -> pd.Categorical:
    text = values.astype(object)
    text = text.where(text.isna(), text.astype(str))
    return pd.Categorical(text)


def _norm(name: object) -> str:
    return re.sub(r"[.\s\-]+", "_", str(name).strip().lower())
