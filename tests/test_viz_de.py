"""The volcano plot: one point per tested gene, the top genes named, names kept literal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gexcore.viz_de import Q_FLOOR, volcano_figure


def test_volcano_names_the_top_genes_literally_and_skips_untested_ones():
    evil = '<a href="http://host/x">G</a>'
    table = pd.DataFrame({"symbol": [evil, "B", "C", "D"], "log2_fc": [3.0, -2.0, 0.1, 0.0],
                          "q": [0.0, 1e-5, 0.5, np.nan]}, index=list("abcd"))
    fig = volcano_figure(table, top=2, title=evil)
    points = [t for t in fig.data if t.mode == "markers"]
    assert sum(len(t.x) for t in points) == 3                       # d has no test
    up, down = (next(t for t in points if t.name.startswith(w)) for w in ("up", "down"))
    assert list(up.x) == [3.0] and list(up.y) == [-np.log10(Q_FLOOR)]   # q = 0 drawn at the cap
    assert list(down.x) == [-2.0]
    labels = {a.text: (a.x, a.y) for a in fig.layout.annotations if a.showarrow}
    assert labels == {"&lt;a href=\"http://host/x\"&gt;G&lt;/a&gt;": (3.0, 300.0),
                      "B": (-2.0, 5.0)}
    assert "<a" not in fig.layout.title.text
