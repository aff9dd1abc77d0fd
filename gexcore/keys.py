"""AnnData slot names shared by readers, models, tasks and pages."""

from __future__ import annotations

OBS_TIME = "time"                  # survival time, in the unit recorded in uns[UNS_SURVIVAL]
OBS_EVENT = "event"                # 1 = event observed (death, metastasis), 0 = censored
OBS_PATIENT = "patient_id"         # splits group by this when present
OBS_LABEL = "label"

OBSM_EMBED = "X_gex"

VAR_SYMBOL = "gene_symbol"
VAR_ENSEMBL = "ensembl_id"
VAR_OBSERVED = "observed"          # False for vocabulary genes the cohort did not measure

UNS_PROVENANCE = "provenance"      # source files, format, reader options, simulated flag
UNS_VALIDATION = "validation"      # the ValidationReport of the load, as a dict
UNS_SURVIVAL = "survival"          # which clinical columns became time/event, and the time unit
UNS_NORMALIZE = "normalize"
UNS_IMPUTATION = "imputation"      # how an encoder filled missing genes (tasks/restore.py)

LAYER_IMPUTED = "imputed"          # True for cells an encoder filled, not measured
