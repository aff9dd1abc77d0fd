"""Downstream tasks on embeddings: survival, classification, imputation heads and their metrics.

Import the submodules directly (`from gexcore.tasks.survival import CoxHead`); this package
imports nothing eagerly so its modules stay independent (and the dashboard can read the
constants below without loading torch).
"""

IMPUTING_METHODS = ("transformer", "vime")          # the encoders with a value decoder
