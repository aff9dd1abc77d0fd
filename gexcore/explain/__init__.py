"""Gene importance: transformer attention, and integrated gradients for any encoder."""

from __future__ import annotations

from gexcore.explain.attention import attention_importance, importance_table, select_rows
from gexcore.explain.gradients import (
    gene_attributions,
    integrated_gradients,
    linear_head,
    path_weights,
)

__all__ = ["attention_importance", "gene_attributions", "importance_table",
           "integrated_gradients", "linear_head", "path_weights", "select_rows"]
