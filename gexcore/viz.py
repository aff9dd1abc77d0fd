"""Plotly figure builders for the dashboard; each returns a `go.Figure` and never calls Streamlit.

One look everywhere: the `gexscope` template (white, 14 px sans-serif), a colour-blind safe
palette (Okabe-Ito, then Paul Tol's muted set) and Viridis / Blues for continuous values.
"""

from __future__ import annotations

import functools
import html
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

if TYPE_CHECKING:
    from gexcore.tasks.survival import KMResult

__all__ = [
    "PALETTE", "class_colours", "confusion_heatmap", "embedding_scatter", "format_p",
    "importance_bar", "imputation_curves", "km_figure", "label_fraction_curves", "loss_curve",
    "probability_bars", "template",
]

PALETTE = (  # Okabe-Ito (yellow late: weak on white), then Tol muted; grey is kept for "missing"
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#000000", "#F0E442",
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255",
    "#AA4499",
)
MISSING_COLOR = "#BBBBBB"
CONTINUOUS_SCALE = "Viridis"
_FONT = "Inter, 'Helvetica Neue', Helvetica, Arial, sans-serif"
_METRIC_LABELS = {"macro_f1": "macro-F1", "accuracy": "accuracy", "c_index": "C-index",
                  "c_index_uno": "Uno's C-index", "rmse": "RMSE", "pearson_r": "Pearson r"}


@functools.cache
def template() -> go.layout.Template:
    """The house template (built once): plotly_white with larger fonts and the palette."""
    import plotly.io as pio

    axis = {"showline": True, "linecolor": "#444444", "ticks": "outside",
            "gridcolor": "#E8E8E8", "zeroline": False, "title_standoff": 8}
    base = go.layout.Template(pio.templates["plotly_white"])
    base.layout.update(
        font={"family": _FONT, "size": 14, "color": "#222222"}, colorway=PALETTE,
        title={"font": {"size": 18}, "x": 0.0, "xanchor": "left"}, xaxis=axis, yaxis=axis,
        legend={"bgcolor": "rgba(255,255,255,0.8)"}, hoverlabel={"font_size": 13},
        margin={"l": 60, "r": 20, "t": 60, "b": 55})
    return base


def embedding_scatter(coords, *, color=None, color_name: str = "", hover_ids=None,
                      hover_data: dict[str, object] | None = None, title: str = "",
                      simulated: bool = False, categorical: bool | None = None,
                      classes=None, missing_name: str = "missing",
                      axis_titles: tuple[str, str] = ("UMAP 1", "UMAP 2")) -> go.Figure:
    """WebGL scatter of an (n, 2) embedding; `customdata` of every point is its row index.

    `color` non-numeric (or `categorical=True`) gives one trace per category (sorted, or in the
    order of a pandas Categorical), coloured by `class_colours(classes)`: pass the same
    `classes` (default: a Categorical's categories, else the values present) to give a class
    the same colour in every view. NaN points form a `missing_name` trace, only if there are
    any. Numeric `color` gives a colour bar. Lasso select is on.
    """
    xy = np.asarray(coords, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"coords must have shape (n, 2), not {xy.shape}.")
    n = len(xy)
    text = _hover_text(n, hover_ids, hover_data, color, color_name)
    size = 7 if n <= 2_000 else 5 if n <= 20_000 else 3
    fig = go.Figure()
    if color is None:
        fig.add_trace(_points(xy, np.arange(n), text, "samples", {"color": PALETTE[0]}, size))
        fig.update_layout(showlegend=False)
    else:
        values = _as_1d(color, n, "color")
        if categorical if categorical is not None else not _is_numeric(values):
            _add_categories(fig, xy, values, text, size, classes, missing_name)
        else:
            _add_continuous(fig, xy, values, text, size, color_name)
    fig.update_layout(template=template(), title=_plain(title), dragmode="lasso",
                      hovermode="closest", uirevision="embed",
                      legend={"title": _plain(color_name), "itemsizing": "constant"})
    fig.update_xaxes(title=axis_titles[0], showgrid=False, showticklabels=False, ticks="")
    fig.update_yaxes(title=axis_titles[1], showgrid=False, showticklabels=False, ticks="")
    if simulated:
        _simulated_note(fig)
    return fig


def _points(xy, rows, text, name, marker, size) -> go.Scattergl:
    return go.Scattergl(x=xy[rows, 0], y=xy[rows, 1], mode="markers", name=name,
                        customdata=rows, text=text[rows], hovertemplate="%{text}<extra></extra>",
                        marker=dict(size=size, opacity=0.8, line={"width": 0}, **marker))


def class_colours(classes) -> dict[str, str]:
    """Class name -> colour, from the sorted (natural order) distinct names: the one colour
    map of categories, so a class keeps its colour whichever column or subset shows it."""
    names = sorted({str(c) for c in classes if not pd.isna(c)}, key=_natural_key)
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _add_categories(fig: go.Figure, xy, values, text, size: int, classes=None,
                    missing_name: str = "missing") -> None:
    missing = np.asarray(pd.isna(values))
    labels = pd.Series(values).astype(object).where(~missing).map(str, na_action="ignore")
    if isinstance(values, pd.Categorical):
        present = set(labels.dropna())
        cats = [str(c) for c in values.categories if str(c) in present]
    else:
        cats = sorted(labels.dropna().unique(), key=_natural_key)
    default = values.categories if isinstance(values, pd.Categorical) else cats
    colours = class_colours([*(default if classes is None else classes), *cats])
    for cat in cats:
        rows = np.flatnonzero(labels.to_numpy() == cat)
        fig.add_trace(_points(xy, rows, text, _plain(cat), {"color": colours[cat]}, size))
    if missing.any():
        fig.add_trace(_points(xy, np.flatnonzero(missing), text, _plain(missing_name),
                              {"color": MISSING_COLOR}, size))


def _add_continuous(fig: go.Figure, xy, values, text, size: int, color_name: str) -> None:
    z = np.asarray(values, dtype=float)
    finite = np.isfinite(z)
    rows = np.flatnonzero(finite)
    marker = {"color": z[rows], "colorscale": CONTINUOUS_SCALE, "showscale": True,
                  "colorbar": {"title": _plain(color_name), "thickness": 14}}
    fig.add_trace(_points(xy, rows, text, _plain(color_name) or "value", marker, size))
    if not finite.all():
        fig.add_trace(_points(xy, np.flatnonzero(~finite), text, "missing",
                              {"color": MISSING_COLOR}, size))
    fig.update_layout(showlegend=not finite.all(), legend={"x": 0, "y": -0.05, "yanchor": "top",
                                                               "orientation": "h"})


def _hover_text(n: int, ids, hover_data, color, color_name: str) -> np.ndarray:
    """One HTML hover string per point: the sample id in bold, then `name: value` lines."""
    head = (pd.Series(_as_1d(ids, n, "hover_ids")).astype(str).map(_plain) if ids is not None
            else pd.Series(np.arange(n)).map("row {}".format))
    text = "<b>" + head + "</b>"
    extra = dict(hover_data or {})
    if color is not None and color_name and color_name not in extra:
        extra = {color_name: color, **extra}
    for name, column in extra.items():
        values = pd.Series(_as_1d(column, n, f"hover_data[{name!r}]"))
        shown = values.astype(object).map(_fmt_value).fillna("missing").map(_plain)
        text = text + f"<br>{_plain(name)}: " + shown
    return text.to_numpy(dtype=object)


def _plain(text: object) -> str:
    """User text (ids, names, labels) as literal characters in plotly's HTML-like strings."""
    return html.escape(str(text), quote=False)


def _fmt_value(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "missing" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def _as_1d(values, n: int, name: str):
    if isinstance(values, pd.Series):
        values = values.array
    out = values if isinstance(values, pd.Categorical) else np.asarray(values)
    if len(out) != n or np.ndim(out) != 1:
        raise ValueError(f"{name} must have one value per point ({n}), not shape "
                         f"{np.shape(out)}.")
    return out


def _is_numeric(values) -> bool:
    if isinstance(values, pd.Categorical):
        return False
    kind = np.asarray(values).dtype.kind
    return kind in "iuf"


def _natural_key(label: str):
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def _simulated_note(fig: go.Figure) -> None:
    fig.add_annotation(text="simulated data", xref="paper", yref="paper", x=1.0, y=1.0,
                       xanchor="right", yanchor="bottom", showarrow=False,
                       font={"size": 13, "color": "#8A4B00"}, bgcolor="#FFF4E0",
                       bordercolor="#E69F00", borderwidth=1, borderpad=3)


def km_figure(result: KMResult, *, title: str = "", censor_ticks: bool = True) -> go.Figure:
    """Kaplan-Meier step curves with 95% CI bands, log-rank p and HRs, numbers at risk below.

    Censor ticks are drawn for groups that carry `censor_times`.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.8, 0.2],
                        vertical_spacing=0.1)
    names = [_plain(g.name) for g in result.groups]
    for i, group in enumerate(result.groups):
        _add_km_group(fig, group, PALETTE[i % len(PALETTE)], censor_ticks, result.time_unit)
    for i, name in enumerate(names):
        counts = result.at_risk.get(name, [])
        fig.add_trace(go.Scatter(
            x=result.at_risk_times[:len(counts)], y=[name] * len(counts), mode="text",
            text=[f"{c:,}" for c in counts], textfont={"color": PALETTE[i % len(PALETTE)]},
            showlegend=False, hoverinfo="skip"), row=2, col=1)
    unit = f" ({result.time_unit})" if result.time_unit else ""
    ticks = [float(t) for t in result.at_risk_times]
    fig.update_xaxes(tickvals=ticks, tickformat=".3~g", row=1, col=1)
    fig.update_xaxes(tickvals=ticks, tickformat=".3~g", title=f"time{unit}", showgrid=False,
                     row=2, col=1)
    fig.update_yaxes(title="survival probability", range=[0, 1.03], row=1, col=1)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=names[::-1],
                     range=[-0.6, len(names) - 0.3], showgrid=False, showline=False, ticks="",
                     row=2, col=1)
    fig.add_annotation(text="<b>Number at risk</b>", xref="paper", yref="y2 domain", x=0,
                       y=1.0, xanchor="right", yanchor="bottom", showarrow=False,
                       font={"size": 12})
    fig.add_annotation(text=_km_stats(result), xref="x domain", yref="y domain", x=0.99,
                       y=0.99, xanchor="right", yanchor="top", align="right", showarrow=False,
                       bgcolor="rgba(255,255,255,0.85)", font={"size": 12})
    fig.update_layout(template=template(), title=_plain(title), height=540, hovermode="closest",
                      margin={"l": 100, "t": 90},
                      legend={"orientation": "h", "x": 0, "y": 1.0, "xanchor": "left",
                                  "yanchor": "bottom"})
    return fig


def _add_km_group(fig: go.Figure, group, color: str, censor_ticks: bool, unit: str) -> None:
    t, name = np.asarray(group.timeline, dtype=float), _plain(group.name)
    band = {"x": t, "mode": "lines", "line": {"width": 0, "shape": "hv"}, "hoverinfo": "skip",
                "showlegend": False, "legendgroup": name}
    fig.add_trace(go.Scatter(y=np.asarray(group.lower, float), **band), row=1, col=1)
    fig.add_trace(go.Scatter(y=np.asarray(group.upper, float), fill="tonexty",
                             fillcolor=_rgba(color, 0.15), **band), row=1, col=1)
    median = ("not reached" if group.median is None or not np.isfinite(group.median)
              else f"{group.median:.3g} {unit}".strip())
    fig.add_trace(go.Scatter(
        x=t, y=np.asarray(group.survival, float), mode="lines", legendgroup=name,
        name=f"{name} (n={group.n:,}, {group.events:,} events)",
        line={"color": color, "width": 2.5, "shape": "hv"},
        hovertemplate=(f"<b>{name}</b><br>t = %{{x:.3g}}<br>S(t) = %{{y:.2f}}"
                       f"<br>median: {median}<extra></extra>")), row=1, col=1)
    censored = getattr(group, "censor_times", None)
    if censor_ticks and censored is not None and len(censored):
        ct = np.asarray(censored, dtype=float)
        at = np.clip(np.searchsorted(t, ct, side="right") - 1, 0, len(t) - 1)
        fig.add_trace(go.Scatter(x=ct, y=np.asarray(group.survival, float)[at], mode="markers",
                                 marker={"symbol": "line-ns-open", "size": 8, "color": color},
                                 legendgroup=name, showlegend=False, hoverinfo="skip"),
                      row=1, col=1)


def _km_stats(result: KMResult) -> str:
    lines = [format_p(result.logrank_p, prefix="log-rank p")]
    for hr in result.hazard_ratios:
        lines.append(f"HR {_plain(hr.group)} vs {_plain(hr.reference)}: {hr.hr:.2f} "
                     f"({hr.lower:.2f}-{hr.upper:.2f}), {format_p(hr.p)}")
    return "<br>".join(lines)


def format_p(p: float | None, *, prefix: str = "p") -> str:
    """A p-value as clinicians read it: 'p < 0.001', 'p = 0.032', 'p = 0.41', 'p > 0.99'
    ('p = n/a' when missing), never '1.8e-30'. `prefix=""` gives the bare '< 0.001', '0.032'.

    The one home of this rule: pages, tables and figures all call it.
    """
    if p is None or not np.isfinite(p):
        text = "= n/a"
    elif p < 0.001:
        text = "< 0.001"
    elif p > 0.99:
        text = "> 0.99"
    else:                                  # 3 decimals below 0.1, where 0.032 vs 0.045 matters
        text = f"= {p:.3f}" if round(p, 3) < 0.1 else f"= {p:.2f}"
    return f"{prefix} {text}" if prefix else text.removeprefix("= ")


def importance_bar(table: pd.DataFrame, *, value: str = "importance", label: str = "gene",
                   top: int = 20, title: str = "") -> go.Figure:
    """Horizontal bars of the `top` rows by `value`, highest at the top; negatives in vermilion."""
    _require_columns(table, [label, value], "importance table")
    rows = (table[[label, value]].dropna(subset=[value])
            .sort_values(value, ascending=False, kind="stable").head(top))
    v = rows[value].to_numpy(dtype=float)
    fig = go.Figure(go.Bar(
        x=v, y=rows[label].astype(str).map(_plain), orientation="h",
        marker_color=np.where(v >= 0, PALETTE[0], PALETTE[3]).tolist(),
        hovertemplate="%{y}: %{x:.3g}<extra></extra>"))
    fig.update_layout(template=template(), title=_plain(title),
                      height=max(280, 24 * len(rows) + 110),
                      bargap=0.25)
    fig.update_yaxes(autorange="reversed", title=None, ticks="")   # first row at the top
    fig.update_xaxes(title=value)
    return fig


def label_fraction_curves(df: pd.DataFrame, *, metric: str = "macro_f1",
                          title: str = "") -> go.Figure:
    """Metric (mean +- sd band) against the labelled fraction, log x in %; one line per method.

    `df` is long: method, fraction, mean, sd (and optionally `metric`, filtered to `metric`).
    """
    _require_columns(df, ["method", "fraction", "mean"], "label-fraction table")
    if "metric" in df.columns:
        if metric not in set(df["metric"]):
            raise ValueError(f"no rows for metric {metric!r}; the table has "
                             f"{sorted(map(str, set(df['metric'])))}.")
        df = df[df["metric"] == metric]
    fig = go.Figure()
    for i, (method, rows) in enumerate(df.groupby("method", sort=False)):
        rows = rows.sort_values("fraction")
        x, mean = rows["fraction"].to_numpy(float), rows["mean"].to_numpy(float)
        sd = rows["sd"].fillna(0).to_numpy(float) if "sd" in rows else np.zeros_like(mean)
        _add_band(fig, x, mean, sd, PALETTE[i % len(PALETTE)], _plain(method))
    fractions = np.sort(df["fraction"].unique())
    fig.update_xaxes(type="log", tickvals=fractions.tolist(), title="labelled fraction",
                     ticktext=[_percent(f) for f in fractions])
    fig.update_yaxes(title=_METRIC_LABELS.get(metric, metric))
    fig.update_layout(template=template(), title=_plain(title), hovermode="x unified")
    return fig


def _add_band(fig: go.Figure, x, mean, sd, color: str, name: str, **where) -> None:
    fig.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=np.r_[mean + sd, (mean - sd)[::-1]],
                             mode="lines", fill="toself", fillcolor=_rgba(color, 0.15),
                             line={"width": 0},
                             hoverinfo="skip", showlegend=False, legendgroup=name), **where)
    fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=name, legendgroup=name,
                             line={"color": color, "width": 2.5}, customdata=sd,
                             hovertemplate=f"{name}: %{{y:.3f}} \u00b1 %{{customdata:.3f}}"
                                           "<extra></extra>"), **where)


def _percent(f: float) -> str:
    return f"{100 * f:.3g}%"


def confusion_heatmap(confusion: list[list[int]], classes, *, normalize: bool = True,
                      title: str = "") -> go.Figure:
    """Rows = true class, columns = predicted; `normalize` colours by row share (recall)."""
    counts = np.asarray(confusion, dtype=float)
    classes = [_plain(c) for c in classes]
    if counts.shape != (len(classes), len(classes)):
        raise ValueError(f"confusion is {counts.shape} but there are {len(classes)} classes.")
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    z = share if normalize else counts
    text = [[f"{int(c):,}<br>{s:.0%}" if normalize else f"{int(c):,}" for c, s in zip(rc, rs)]
            for rc, rs in zip(counts, share)]
    fig = go.Figure(go.Heatmap(
        z=z, x=classes, y=classes, text=text, texttemplate="%{text}", colorscale="Blues",
        zmin=0, zmax=1 if normalize else None, xgap=1, ygap=1,
        colorbar={"title": "share of true" if normalize else "samples", "thickness": 14},
        hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>"))
    fig.update_layout(template=template(), title=_plain(title))
    fig.update_xaxes(title="predicted", showgrid=False, side="bottom")
    fig.update_yaxes(title="true", showgrid=False, autorange="reversed")
    return fig


def loss_curve(history: dict, *, title: str = "Training loss") -> go.Figure:
    """Train / validation loss per epoch over the per-step loss, from `History.to_dict()`.

    A live history may hold steps past its last whole epoch; its `steps_per_epoch` places them.
    """
    train, val = _floats(history.get("train_loss")), _floats(history.get("val_loss"))
    step = _floats(history.get("step_loss"))
    fig = go.Figure()
    n_epochs = len(train)
    per_epoch = history.get("steps_per_epoch") or (len(step) / n_epochs if n_epochs else 0)
    if len(step) and per_epoch:
        x = np.arange(1, len(step) + 1) / per_epoch                 # steps in epoch units
        fig.add_trace(go.Scatter(x=x, y=step, mode="lines", name="step",
                                 line={"color": _rgba(PALETTE[4], 0.6), "width": 1},
                                 hovertemplate="step loss %{y:.4g}<extra></extra>"))
    epochs = np.arange(1, n_epochs + 1)
    if n_epochs:
        fig.add_trace(go.Scatter(x=epochs, y=train, mode="lines+markers", name="train",
                                 line={"color": PALETTE[0], "width": 2.5}))
    if len(val):
        fig.add_trace(go.Scatter(x=np.arange(1, len(val) + 1), y=val, mode="lines+markers",
                                 name="validation", line={"color": PALETTE[1], "width": 2.5,
                                                              "dash": "dash"}))
    best = int(history.get("best_epoch") or 0)
    if best:
        fig.add_vline(x=best, line={"color": "#777777", "dash": "dot"},
                      annotation_text=f"best epoch {best}", annotation_position="top")
    if not fig.data:
        fig.add_annotation(text="no training history yet", showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5, font={"size": 16, "color": "#777777"})
    fig.update_layout(template=template(), title=_plain(title), hovermode="x unified")
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="loss")
    return fig


def _floats(values) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in (values or [])], dtype=float)


def imputation_curves(df: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Two panels against missing rate: RMSE and Pearson r (mean +- sd band), one line per method.

    `df` rows: method, missing_rate, rmse_mean, rmse_sd, r_mean, r_sd.
    """
    _require_columns(df, ["method", "missing_rate", "rmse_mean", "r_mean"], "imputation table")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("RMSE (lower is better)", "Pearson r (higher is better)"))
    for i, (method, rows) in enumerate(df.groupby("method", sort=False)):
        rows = rows.sort_values("missing_rate")
        x, color = rows["missing_rate"].to_numpy(float), PALETTE[i % len(PALETTE)]
        for col, stat in ((1, "rmse"), (2, "r")):
            mean = rows[f"{stat}_mean"].to_numpy(float)
            sd = (rows[f"{stat}_sd"].fillna(0).to_numpy(float) if f"{stat}_sd" in rows
                  else np.zeros_like(mean))
            _add_band(fig, x, mean, sd, color, _plain(method), row=1, col=col)
            if col == 2:
                fig.data[-1].showlegend = False
    fig.update_xaxes(title="missing rate", tickformat=".0%")
    fig.update_layout(template=template(), title=_plain(title), hovermode="x unified")
    return fig


def probability_bars(proba_row, classes, *, title: str = "") -> go.Figure:
    """One sample's class probabilities as horizontal bars, most likely at the top."""
    p = np.asarray(proba_row, dtype=float).ravel()
    classes = [_plain(c) for c in classes]
    if len(p) != len(classes):
        raise ValueError(f"{len(p)} probabilities but {len(classes)} classes.")
    order = np.argsort(-p, kind="stable")
    colors = [PALETTE[0] if i == 0 else "#9DB9D3" for i in range(len(p))]
    fig = go.Figure(go.Bar(
        x=p[order], y=[classes[i] for i in order], orientation="h", marker_color=colors,
        text=[f"{v:.0%}" for v in p[order]], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(template=template(), title=_plain(title),
                      height=max(240, 28 * len(p) + 100))
    fig.update_xaxes(range=[0, 1.1], tickformat=".0%", title="probability")
    fig.update_yaxes(autorange="reversed", ticks="", title=None)
    return fig


def _require_columns(df: pd.DataFrame, columns: list[str], what: str) -> None:
    lacking = [c for c in columns if c not in df.columns]
    if lacking:
        raise ValueError(f"{what} lacks column(s) {lacking}; it has {list(df.columns)}.")


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
