"""Aggregation: 3-category mean IoU, group means, click summaries (hand-computed)."""

from __future__ import annotations

import numpy as np
import pytest

from sam_pets.eval.summary import (
    add_to_confusion,
    group_means,
    summarize_clicks,
    three_class_miou,
)


def test_three_class_hand_computed():
    conf = np.zeros((3, 3))
    add_to_confusion(conf, "cat", tp=6, fp=2, fn=2, tn=90)  # cat image
    add_to_confusion(conf, "dog", tp=3, fp=0, fn=1, tn=96)  # dog image
    add_to_confusion(conf, None, tp=50, fp=50, fn=0, tn=0)  # unknown species: left out
    expected = {"cat": 6 / 10, "dog": 3 / 4, "background": 186 / (186 + 2 + 2 + 1)}
    out = three_class_miou(conf)
    for k, v in expected.items():
        assert out["per_class"][k] == pytest.approx(v)
    assert out["miou"] == pytest.approx(np.mean(list(expected.values())))


def test_three_class_all_background_baseline():
    # predicting no pet at all: pets get IoU 0, background keeps its share
    conf = np.zeros((3, 3))
    add_to_confusion(conf, "cat", 0, 0, 30, 70)
    add_to_confusion(conf, "dog", 0, 0, 40, 60)
    out = three_class_miou(conf)
    assert out["per_class"]["cat"] == 0 and out["per_class"]["dog"] == 0
    assert out["miou"] == pytest.approx((130 / 200) / 3)


def test_three_class_absent_class_and_empty():
    conf = np.zeros((3, 3))
    add_to_confusion(conf, "cat", 5, 0, 0, 5)
    out = three_class_miou(conf)
    assert out["per_class"]["dog"] is None and out["miou"] == 1.0
    assert three_class_miou(np.zeros((3, 3))) is None


def test_group_means():
    rows = [
        {"breed": "a", "iou": 0.2},
        {"breed": "a", "iou": 0.4},
        {"breed": None, "iou": 1},
        {"breed": "b", "iou": 1.0},
    ]
    g = group_means(rows, "breed")
    assert g == {"a": {"miou": pytest.approx(0.3), "n": 2}, "b": {"miou": 1.0, "n": 1}}


def test_summarize_clicks():
    rows = [
        {
            "ious": [0.5, 0.86, 0.95],
            "noc85": 2,
            "noc90": 3,
            "iou": 0.95,
            "species": "cat",
            "breed": "x",
        },
        {
            "ious": [0.1, 0.2, 0.3],
            "noc85": 20,
            "noc90": 20,
            "iou": 0.3,
            "species": "dog",
            "breed": "y",
        },
    ]
    s = summarize_clicks(rows, 3)
    assert s["miou_at_k"] == pytest.approx([0.3, 0.53, 0.625])
    assert s["noc85"] == 11 and s["noc90"] == 11.5
    assert s["failed85"] == 0.5 and s["failed90"] == 0.5
