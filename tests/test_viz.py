"""Figure builders: each builds from small inputs and carries the content a page relies on."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from gexcore import viz
from gexcore.tasks.survival import HazardRatio, KMGroup, KMResult


def _texts(fig: go.Figure) -> str:
    """Everything a reader can see as text: annotations, trace texts, names, axis ticks."""
    parts = [a.text or "" for a in fig.layout.annotations]
    for trace in fig.data:
        parts.append(str(trace.name))
        if getattr(trace, "text", None) is not None:
            parts.extend(map(str, np.ravel(trace.text)))
    return "\n".join(parts)


# ----------------------------------------------------------------------------- embedding scatter

def test_categorical_scatter_has_one_webgl_trace_per_category_and_maps_back_to_rows():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(12, 2))
    color = np.array(["b", "a", "c", None, "a", "b", "c", "a", "b", np.nan, "c", "a"], object)
    ids = [f"S{i:02d}" for i in range(12)]
    fig = viz.embedding_scatter(coords, color=color, color_name="type", hover_ids=ids,
                                hover_data={"age": np.arange(12.0)})
    assert all(isinstance(t, go.Scattergl) for t in fig.data)
    assert [t.name for t in fig.data] == ["a", "b", "c", "missing"]      # sorted, NaN last
    for trace in fig.data:
        rows = np.asarray(trace.customdata)
        np.testing.assert_allclose(np.c_[trace.x, trace.y], coords[rows])
        assert all(f"<b>{ids[r]}</b>" in text for r, text in zip(rows, trace.text))
        if trace.name != "missing":
            assert (color[rows] == trace.name).all()
    assert sorted(np.concatenate([t.customdata for t in fig.data]).tolist()) == list(range(12))
    assert "age: 4" in fig.data[0].text[list(fig.data[0].customdata).index(4)]
    assert fig.layout.dragmode == "lasso"
    assert not any("simulated" in (a.text or "") for a in fig.layout.annotations)


def test_pandas_categorical_keeps_its_category_order():
    color = pd.Categorical(["high", "low", "mid", "low"], categories=["low", "mid", "high"])
    fig = viz.embedding_scatter(np.zeros((4, 2)), color=pd.Series(color))
    assert [t.name for t in fig.data] == ["low", "mid", "high"]


def test_numeric_colour_gets_a_colour_bar_and_missing_values_a_grey_trace():
    values = np.array([0.5, np.nan, 2.0, 3.0])
    fig = viz.embedding_scatter(np.arange(8.0).reshape(4, 2), color=values, color_name="age",
                                simulated=True)
    main, missing = fig.data
    assert isinstance(main, go.Scattergl) and main.marker.showscale
    assert list(main.customdata) == [0, 2, 3] and list(main.marker.color) == [0.5, 2.0, 3.0]
    assert list(missing.customdata) == [1] and missing.name == "missing"
    assert "<b>row 1</b><br>age: missing" == missing.text[0]
    assert any(a.text == "simulated data" for a in fig.layout.annotations)


def test_scatter_stays_webgl_and_fast_at_ten_thousand_points():
    rng = np.random.default_rng(1)
    n = 12_000
    fig = viz.embedding_scatter(rng.normal(size=(n, 2)), color=rng.choice(list("ABCDE"), n),
                                hover_ids=np.char.add("S", np.arange(n).astype(str)))
    assert len(fig.data) == 5 and all(t.type == "scattergl" for t in fig.data)
    assert sum(len(t.x) for t in fig.data) == n
    json.loads(fig.to_json())                            # serialises (what st.plotly_chart does)


def test_scatter_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        viz.embedding_scatter(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="one value per point"):
        viz.embedding_scatter(np.zeros((3, 2)), color=[1, 2])


# ----------------------------------------------------------------------------- Kaplan-Meier

def _km_result(p: float = 0.0123) -> KMResult:
    t = np.array([0.0, 5.0, 10.0, 20.0, 30.0])
    low = KMGroup("low risk", t, np.array([1, .9, .8, .7, .7]), np.array([1, .8, .7, .6, .5]),
                  np.array([1, .95, .9, .8, .8]), n=40, events=9, median=float("inf"))
    high = KMGroup("high risk", t, np.array([1, .7, .5, .3, .2]), np.array([1, .6, .4, .2, .1]),
                   np.array([1, .8, .6, .4, .3]), n=37, events=25, median=10.0)
    return KMResult(groups=[low, high], at_risk_times=np.array([0.0, 10.0, 20.0, 30.0]),
                    at_risk={"low risk": [40, 31, 1234, 7], "high risk": [37, 19, 8, 2]},
                    logrank_p=p, time_unit="months",
                    hazard_ratios=[HazardRatio("high risk", "low risk", 2.71, 1.42, 5.18, 0.0021)])


def test_km_figure_has_steps_bands_stats_and_numbers_at_risk():
    fig = viz.km_figure(_km_result(), title="Overall survival")
    curves = [t for t in fig.data if t.mode == "lines" and t.showlegend is not False]
    assert [c.legendgroup for c in curves] == ["low risk", "high risk"]
    assert all(c.line.shape == "hv" for c in curves)
    assert sum(t.fill == "tonexty" for t in fig.data) == 2                # one CI band each
    stats = " ".join(a.text for a in fig.layout.annotations)
    assert "log-rank p = 0.012" in stats
    assert "HR high risk vs low risk: 2.71 (1.42-5.18), p = 0.002" in stats
    table = [t for t in fig.data if t.mode == "text"]
    assert all(t.xaxis == "x2" and t.yaxis == "y2" for t in table)       # the row under the plot
    assert list(table[0].text) == ["40", "31", "1,234", "7"] and set(table[1].y) == {"high risk"}
    assert list(fig.layout.xaxis2.tickvals) == [0.0, 10.0, 20.0, 30.0]
    assert fig.layout.xaxis2.title.text == "time (months)"
    assert "Number at risk" in _texts(fig)


def test_km_figure_draws_censor_ticks_when_a_group_has_them():
    result = _km_result(p=float("nan"))
    object.__setattr__(result.groups[0], "censor_times", np.array([7.0, 25.0]))  # frozen
    fig = viz.km_figure(result)
    ticks = [t for t in fig.data if t.mode == "markers"]
    assert len(ticks) == 1 and list(ticks[0].y) == [0.9, 0.7]           # S(t) just before
    assert "log-rank p = n/a" in _texts(fig)


def test_km_figure_from_km_summary():
    from gexcore.tasks.survival import km_summary

    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1], 30)
    time = rng.exponential(np.where(groups == 1, 5.0, 15.0))
    result = km_summary(time, rng.random(60) < 0.8, groups, ["low", "high"], time_unit="months")
    fig = viz.km_figure(result)
    for name, counts in result.at_risk.items():
        shown = next(t for t in fig.data if t.mode == "text" and t.y[0] == name)
        assert list(shown.text) == [f"{c:,}" for c in counts]
    assert viz.format_p(result.logrank_p, prefix="log-rank p") in _texts(fig)


def test_format_p_as_clinicians_read_it():
    """Regression: the Survival page showed a log-rank p as '1.8e-30'."""
    assert viz.format_p(1.8e-30) == "p < 0.001" and viz.format_p(0.000999) == "p < 0.001"
    assert viz.format_p(0.001) == "p = 0.001" and viz.format_p(0.0321) == "p = 0.032"
    assert viz.format_p(0.04567) == "p = 0.046" and viz.format_p(0.41234) == "p = 0.41"
    assert viz.format_p(0.0999) == "p = 0.10" and viz.format_p(0.995) == "p > 0.99"
    assert viz.format_p(float("nan")) == "p = n/a" and viz.format_p(None) == "p = n/a"
    assert viz.format_p(3e-7, prefix="") == "< 0.001" and viz.format_p(0.5, prefix="") == "0.50"
    assert viz.format_p(0.02, prefix="log-rank p") == "log-rank p = 0.020"


# ----------------------------------------------------------------------------- bars and curves

def test_importance_bar_shows_the_top_rows_highest_first():
    table = pd.DataFrame({"gene": list("ABCDEF"), "importance": [0.1, 0.5, -0.2, 0.9, 0.3, None]})
    fig = viz.importance_bar(table, top=4, title="Top genes")
    bar = fig.data[0]
    assert bar.orientation == "h" and list(bar.y) == ["D", "B", "E", "A"]
    assert list(bar.x) == [0.9, 0.5, 0.3, 0.1]
    assert fig.layout.yaxis.autorange == "reversed"                      # first row on top
    with pytest.raises(ValueError, match="lacks column"):
        viz.importance_bar(table, value="score")


def test_label_fraction_curves_log_axis_in_percent_with_bands():
    df = pd.DataFrame({"method": ["scarf"] * 3 + ["pca+lr"] * 3,
                       "fraction": [0.01, 0.1, 1.0] * 2,
                       "mean": [0.5, 0.7, 0.9, 0.4, 0.65, 0.88], "sd": [0.05, 0.03, 0.01] * 2,
                       "metric": "macro_f1"})
    fig = viz.label_fraction_curves(df)
    lines = [t for t in fig.data if t.fill != "toself"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert [t.name for t in lines] == ["scarf", "pca+lr"] and len(bands) == 2
    np.testing.assert_allclose(bands[0].y, [0.55, 0.73, 0.91, 0.89, 0.67, 0.45])
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.ticktext) == ["1%", "10%", "100%"]
    assert fig.layout.yaxis.title.text == "macro-F1"
    with pytest.raises(ValueError, match="accuracy"):
        viz.label_fraction_curves(df, metric="accuracy")


def test_confusion_heatmap_normalises_rows_and_labels_counts():
    fig = viz.confusion_heatmap([[8, 2], [0, 0]], ["BRCA", "LUAD"])
    heat = fig.data[0]
    np.testing.assert_allclose(heat.z, [[0.8, 0.2], [0.0, 0.0]])         # empty row: no NaN
    assert heat.text[0][0] == "8<br>80%" and list(heat.y) == ["BRCA", "LUAD"]
    raw = viz.confusion_heatmap([[8, 2], [1, 3]], ["a", "b"], normalize=False).data[0]
    np.testing.assert_array_equal(raw.z, [[8, 2], [1, 3]])
    with pytest.raises(ValueError, match="3 classes"):
        viz.confusion_heatmap([[1, 2], [3, 4]], ["a", "b", "c"])


def test_loss_curve_from_history_dict():
    from gexcore.train.config import History

    history = History(train_loss=[1.0, 0.8, 0.7], val_loss=[1.1, 0.9, float("nan")],
                      step_loss=[1.2, 1.0, 0.9, 0.85, 0.75, 0.7], best_epoch=2)
    fig = viz.loss_curve(history.to_dict())
    names = [t.name for t in fig.data]
    assert names == ["step", "train", "validation"]
    assert list(fig.data[0].x) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]          # steps in epochs
    assert np.isnan(fig.data[2].y[2])
    assert "best epoch 2" in _texts(fig)
    assert "no training history" in _texts(viz.loss_curve(History().to_dict()))


def test_imputation_curves_two_panels():
    df = pd.DataFrame({"method": ["masked"] * 2 + ["knn"] * 2, "missing_rate": [0.1, 0.3] * 2,
                       "rmse_mean": [0.5, 0.6, 0.7, 0.8], "rmse_sd": [0.01] * 4,
                       "r_mean": [0.8, 0.7, 0.6, 0.5], "r_sd": [0.02] * 4})
    fig = viz.imputation_curves(df)
    lines = [t for t in fig.data if t.fill != "toself"]
    assert [(t.name, t.xaxis) for t in lines] == [("masked", "x"), ("masked", "x2"),
                                                  ("knn", "x"), ("knn", "x2")]
    assert list(lines[1].y) == [0.8, 0.7] and sum(t.showlegend is not False for t in lines) == 2
    assert "RMSE (lower is better)" in _texts(fig)


def test_probability_bars_most_likely_on_top():
    fig = viz.probability_bars([0.1, 0.7, 0.2], ["BRCA", "LUAD", "Normal"])
    bar = fig.data[0]
    assert list(bar.y) == ["LUAD", "Normal", "BRCA"] and list(bar.text) == ["70%", "20%", "10%"]
    assert fig.layout.yaxis.autorange == "reversed"
    with pytest.raises(ValueError, match="3 probabilities but 2 classes"):
        viz.probability_bars([0.1, 0.7, 0.2], ["a", "b"])


def test_every_figure_uses_the_house_template():
    fig = viz.probability_bars([1.0], ["a"])
    assert fig.layout.template.layout.colorway == viz.PALETTE
    assert fig.layout.template.layout.font.size == 14


def test_categorical_colour_and_hover_data():
    """Regression: a pandas Categorical colour crashed in the hover text (Categorical.map)."""
    import pandas as pd

    from gexcore.viz import embedding_scatter
    cat = pd.Series(pd.Categorical(["a", "b", None, "a"]))
    fig = embedding_scatter(np.zeros((4, 2)), color=cat, color_name="type",
                            hover_data={"type": cat}, hover_ids=list("wxyz"))
    assert {t.name for t in fig.data} == {"a", "b", "missing"}
    assert any("type: missing" in s for t in fig.data for s in t.text)


def test_user_text_is_literal_in_every_figure():
    """Regression: names from the data reached plotly's HTML-like text as markup."""
    from gexcore.tasks.survival import km_summary

    evil = '<a href="http://host/x">click</a>'
    coords = np.random.default_rng(0).normal(size=(6, 2))
    scatter = viz.embedding_scatter(coords, color=[evil] * 3 + ["b"] * 3, color_name=evil,
                                    hover_ids=[evil] * 6, title=evil)
    km = km_summary(np.arange(1.0, 13.0), np.tile([1, 0], 6), np.repeat([0, 1], 6),
                    [evil, "high"])
    figures = [scatter, viz.km_figure(km, title=evil),
               viz.importance_bar(pd.DataFrame({"gene": [evil], "importance": [1.0]})),
               viz.confusion_heatmap([[1, 0], [0, 1]], [evil, "b"]),
               viz.probability_bars([0.4, 0.6], [evil, "b"]),
               viz.label_fraction_curves(pd.DataFrame({"method": [evil], "fraction": [1.0],
                                                       "mean": [0.5]}))]
    for fig in figures:
        text = " ".join(_strings(fig.to_dict()))
        assert "<a href" not in text, text[:300]
        assert "&lt;a href=" in text


def _strings(value) -> list[str]:
    """Every string inside a figure's dict (names, titles, hover text, category labels)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple, np.ndarray)):
        return [s for v in value for s in _strings(v)]
    return []
