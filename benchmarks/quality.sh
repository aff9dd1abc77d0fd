#!/usr/bin/env bash
# The evaluation runs behind benchmarks/QUALITY.md (CPU: about 2.5 h in all on 2 cores).
#   bash benchmarks/quality.sh OUT_DIR
# Each run writes OUT_DIR/<name>/{report.md,results.json,curves.html,predictions.csv}.
set -euo pipefail
OUT=${1:-quality}
GEX=.venv/bin/gex
TISSUE="assets/data/tissue_gene_expression/expression.csv.gz --clinical assets/data/tissue_gene_expression/clinical.csv"
GSE="assets/data/gse7390_breast/expression.csv.gz --clinical assets/data/gse7390_breast/clinical.csv"
mkdir -p "$OUT"
$GEX demo simulated_pancancer --out "$OUT/sim.h5ad"

$GEX evaluate $TISSUE --label tissue --seeds 3 --out "$OUT/tissue_classification"
$GEX evaluate $GSE --survival --seeds 3 --out "$OUT/gse7390_survival"
$GEX evaluate $TISSUE --impute --seeds 3 --out "$OUT/tissue_imputation"
$GEX evaluate $GSE --impute --seeds 3 --out "$OUT/gse7390_imputation"
$GEX evaluate "$OUT/sim.h5ad" --label cancer_type --seeds 3 --pretrain-epochs 10 \
    --finetune-epochs 10 --out "$OUT/sim_classification"
$GEX evaluate "$OUT/sim.h5ad" --survival --seeds 3 --fractions 0.05 0.2 1.0 \
    --pretrain-epochs 10 --finetune-epochs 10 --out "$OUT/sim_survival"
$GEX evaluate "$OUT/sim.h5ad" --impute --seeds 3 --pretrain-epochs 10 --out "$OUT/sim_imputation"
# A smaller panel: whole genes hidden in every test sample (what `gex impute` fills).
$GEX evaluate $TISSUE --impute --missing genes --seeds 3 --out "$OUT/tissue_panel"
$GEX evaluate $GSE --impute --missing genes --seeds 3 --out "$OUT/gse7390_panel"
$GEX evaluate "$OUT/sim.h5ad" --impute --missing genes --seeds 3 --pretrain-epochs 10 \
    --out "$OUT/sim_panel"
$GEX evaluate $TISSUE --impute --missing genes --methods transformer vime --pretrain-epochs 100 --seeds 3 --out "$OUT/tissue_panel_e100"
