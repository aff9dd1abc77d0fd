"""Plotly figures of differential expression (`gexcore.explore.de` tables); like `gexcore.viz`,
each returns a `go.Figure` and never calls Streamlit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from gexcore.viz import MISSING_COLOR, PALETTE, _plain, template

__all__ = ["Q_FLOOR", "volcano_figure"]

Q_FLOOR = 1e-300                 # q below this (or exactly 0) is drawn at -log10 = 300
_UP, _DOWN = PALETTE[3], PALETTE[0]
_LABEL_OFFSETS = ((0, -28), (0, 26), (-38, -46), (38, -46), (-44, 18), (44, 18))  # px, (ax, ay)


def volcano_figure(table: pd.DataFrame, *, top: int = 10, q_cut: float = 0.05,
                   title: str = "") -> go.Figure:
    """log2 fold change against -log10 q, one point per tested gene; the first `top` rows of
    the (sorted) table are labelled with their symbols. Up (red) and down (blue) genes are
    those with q < `q_cut`; hover shows symbol, fold change, q and means."""
    tested = table[table["q"].notna()]
    y = -np.log10(np.maximum(tested["q"].to_numpy(dtype=float), Q_FLOOR))
    fc = tested["log2_fc"].to_numpy(dtype=float)
    significant = tested["q"].to_numpy() < q_cut
    symbols = tested["symbol"].astype(str).map(_plain)
    hover = (("<b>" + symbols + "</b><br>log2 FC: ").to_numpy(dtype=object)
             + np.char.mod("%.3g", fc).astype(object) + "<br>q: "
             + np.char.mod("%.2g", tested["q"].to_numpy(dtype=float)).astype(object))
    fig = go.Figure()
    for name, rows, colour in ((f"q ≥ {q_cut:g}", ~significant, MISSING_COLOR),
                               ("up in the selection", significant & (fc > 0), _UP),
                               ("down in the selection", significant & (fc <= 0), _DOWN)):
        fig.add_trace(go.Scattergl(x=fc[rows], y=y[rows], mode="markers", name=name,
                                   text=hover[rows], hovertemplate="%{text}<extra></extra>",
                                   marker={"color": colour, "size": 6, "opacity": 0.75}))
    _label_top(fig, fc[:top], y[:top], symbols.iloc[:top].tolist())
    fig.update_layout(template=template(), title=_plain(title), height=480,
                      xaxis_title="log2 fold change (selection - reference)",
                      yaxis_title="-log10 q (Benjamini-Hochberg)",
                      legend={"orientation": "h", "y": -0.18})
    fig.add_hline(y=-np.log10(q_cut), line={"dash": "dot", "color": "#777777", "width": 1})
    return fig


def _label_top(fig: go.Figure, x, y, names: list[str]) -> None:
    """Name the top genes with short leader lines; neighbours on the plot (in x order) take
    different offsets, so labels of a tight group of genes do not sit on each other."""
    for rank, i in enumerate(np.argsort(x, kind="stable")):
        ax, ay = _LABEL_OFFSETS[rank % len(_LABEL_OFFSETS)]
        fig.add_annotation(x=x[i], y=y[i], text=names[i], showarrow=True, arrowhead=0,
                           arrowwidth=1, arrowcolor="#777777", ax=ax, ay=ay,
                           font={"size": 12}, bgcolor="rgba(255,255,255,0.7)")
