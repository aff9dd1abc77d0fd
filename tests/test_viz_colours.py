"""One colour per class across views, and no "missing" legend entry without missing samples."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gexcore import viz


def _colours(fig) -> dict[str, str]:
    return {t.name: t.marker.color for t in fig.data}


def test_a_class_keeps_its_colour_between_label_and_predicted_label():
    """Regression: colours followed the classes present, so a class missing from the
    predictions shifted every colour after it ('label' vs 'predicted label')."""
    xy = np.zeros((6, 2))
    label = pd.Categorical(["BRCA", "LUAD", "COAD", "Normal", "BRCA", "LUAD"],
                           categories=["BRCA", "COAD", "LUAD", "Normal"])
    predicted = np.array(["LUAD", "LUAD", "Normal", "Normal", "LUAD", "LUAD"], dtype=object)
    by_label = _colours(viz.embedding_scatter(xy, color=label, color_name="label"))
    by_prediction = _colours(viz.embedding_scatter(xy, color=predicted, classes=label.categories,
                                                   color_name="predicted label"))
    assert set(by_prediction) == {"LUAD", "Normal"}
    assert all(by_prediction[c] == by_label[c] for c in by_prediction)
    assert by_label == {c: viz.class_colours(label.categories)[c] for c in by_label}
    assert len(set(by_label.values())) == 4


def test_class_colours_follow_sorted_names_not_their_order():
    assert viz.class_colours(["b", "a", np.nan, "10", "9"]) == viz.class_colours(
        ["9", "10", "a", "b"])
    assert list(viz.class_colours(["b", "a", "10", "9"])) == ["9", "10", "a", "b"]


def test_missing_shows_only_when_a_sample_is_missing():
    xy = np.zeros((4, 2))
    full = viz.embedding_scatter(xy, color=pd.Categorical(list("abab")), color_name="type")
    assert {t.name for t in full.data} == {"a", "b"}
    gene = viz.embedding_scatter(xy, color=np.arange(4.0), color_name="GENE1")
    assert [t.name for t in gene.data] == ["GENE1"] and not gene.layout.showlegend
    some = viz.embedding_scatter(xy, color=np.array(["a", None, "b", "a"], dtype=object),
                                 missing_name="not predicted")
    assert [t.name for t in some.data] == ["a", "b", "not predicted"]
