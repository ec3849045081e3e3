"""Metrics against small hand-computed cases, numpy and torch alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam_pets.eval.metrics import confusion_counts, dice, iou, pixel_accuracy

# 3x3 case: gt has 4 pixels, pred has 3, they share 2.
GT = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]], bool)
PRED = np.array([[1, 1, 1], [0, 0, 0], [0, 0, 0]], bool)
# ignore the top-right pixel (a false positive) and the middle-left one (a miss)
IGN = np.array([[0, 0, 1], [1, 0, 0], [0, 0, 0]], bool)


@pytest.mark.parametrize("as_torch", [False, True])
def test_hand_computed(as_torch):
    conv = torch.from_numpy if as_torch else (lambda a: a)
    p, g, i = conv(PRED), conv(GT), conv(IGN)
    c = confusion_counts(p, g)
    assert [float(v) for v in c] == [2, 1, 2, 4]
    assert float(iou(p, g)) == pytest.approx(2 / 5)
    assert float(dice(p, g)) == pytest.approx(4 / 7)
    assert float(pixel_accuracy(p, g)) == pytest.approx(6 / 9)
    # with the ignore mask: tp 2, fp 0, fn 1, tn 4
    assert [float(v) for v in confusion_counts(p, g, i)] == [2, 0, 1, 4]
    assert float(iou(p, g, i)) == pytest.approx(2 / 3)
    assert float(dice(p, g, i)) == pytest.approx(4 / 5)
    assert float(pixel_accuracy(p, g, i)) == pytest.approx(6 / 7)
    assert isinstance(iou(p, g), torch.Tensor) == as_torch


def test_empty_conventions():
    z = np.zeros((2, 2), bool)
    assert iou(z, z) == 1.0 and dice(z, z) == 1.0
    assert pixel_accuracy(z, z, np.ones((2, 2), bool)) == 1.0
    assert iou(z, ~z) == 0.0 and dice(~z, z) == 0.0


def test_leading_axes_and_broadcast_ignore():
    p = torch.from_numpy(np.stack([PRED, GT]))  # (2, 3, 3)
    g = torch.from_numpy(np.stack([GT, GT]))
    out = iou(p, g, torch.from_numpy(IGN))  # ignore (H, W) shared by both objects
    assert out.shape == (2,)
    assert out.tolist() == pytest.approx([2 / 3, 1.0])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        iou(np.zeros((2, 2)), np.zeros((3, 3)))
