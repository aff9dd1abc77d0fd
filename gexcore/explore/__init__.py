"""What the dashboard pages ask for, so pages hold widgets and layout only: feature sources,
single-split probes and risk models, out-of-fold predictions, stored maps and attention, the
simulator's planted truth and finished evaluation reports.

Import the submodules (`gexcore.explore.holdout`, `.maps`, ...); none imports torch at load.
"""
