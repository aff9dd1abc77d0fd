"""Downstream tasks on embeddings: survival, classification, imputation heads and their metrics.

Import the submodules directly (`from gexcore.tasks.survival import CoxHead`); this package
imports nothing eagerly so its modules stay independent. Which methods can impute is a
capability of the method: `gexcore.models.methods.methods_with("can_restore")` (no torch).
"""
