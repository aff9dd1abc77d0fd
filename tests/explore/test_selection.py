"""Selections by a column's value, the gene picker's labels, an encoder's gene overlap."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gexcore import keys
from gexcore.explore.maps import encoder_overlap, gene_options
from gexcore.explore.selection import column_values, rows_where, selectable_columns
from gexcore.workspace import open_workspace


def test_rows_where_compares_as_text_and_skips_missing():
    obs = pd.DataFrame({"type": pd.Categorical(["a", "b", None, "a"]),
                        "stage": [1, 2, 2, np.nan], "age": np.linspace(30, 80, 4),
                        "id": ["x1", "x2", "x3", "x4"]})
    assert rows_where(obs, "type", "a").tolist() == [0, 3]
    assert rows_where(obs, "stage", "2.0").tolist() == [1, 2]
    assert rows_where(obs, "type", "nan").tolist() == []
    assert column_values(obs, "type") == ["a", "b"]                  # most frequent first
    assert selectable_columns(obs) == ["type", "stage", "id"]         # not a measurement


def test_gene_picker_shows_symbols_sorted_and_keeps_ids(tiny_cohort):
    adata = tiny_cohort[:, :4].copy()
    adata.var[keys.VAR_SYMBOL] = ["TP53", "brca1", "EGFR", adata.var_names[3]]
    shown = gene_options(adata)
    g = list(adata.var_names)
    assert list(shown.values()) == [f"brca1 ({g[1]})", f"EGFR ({g[2]})", g[3], f"TP53 ({g[0]})"]
    assert set(shown) == set(g)


def test_an_encoder_without_a_readable_checkpoint_is_not_offered(tmp_path, tiny_cohort):
    ws = open_workspace(tmp_path, "tester")
    run = "20260101-000000-abcdef"
    assert encoder_overlap(ws, run, tiny_cohort) == (0, 0, False)
    ws.run_dir(run).mkdir(parents=True)
    (ws.run_dir(run) / "config.json").write_text("{not json")
    assert encoder_overlap(ws, run, tiny_cohort) == (0, 0, False)
