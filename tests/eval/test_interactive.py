"""Simulated correction clicks and clicks-to-IoU, on a scripted predictor and the test model."""

from __future__ import annotations

import numpy as np
import pytest

from sam_pets.eval.interactive import clicks_to_iou, simulate_clicks
from sam_pets.predict.predictor import Prediction


class ScriptedPredictor:
    """Predicts the union of 9x9 squares around positive clicks minus those of negative ones."""

    def __init__(self, hw=(40, 40), box_mask=None):
        self.hw = hw
        self.box_mask = box_mask
        self.calls = []

    def predict(self, points_xy=None, labels=None, box_xyxy=None, mask_logits=None, multimask=True):
        self.calls.append((points_xy, labels, box_xyxy, mask_logits, multimask))
        mask = np.zeros(self.hw, bool) if self.box_mask is None else self.box_mask.copy()
        if box_xyxy is None and self.box_mask is not None:
            mask[:] = False
        for (x, y), lab in zip(
            np.asarray(points_xy if points_xy is not None else []),
            np.asarray(labels if labels is not None else []),
            strict=True,
        ):
            x, y = int(x), int(y)
            mask[max(y - 4, 0) : y + 5, max(x - 4, 0) : x + 5] = bool(lab)
        m = 3 if multimask else 1
        logits = np.where(mask, 10.0, -10.0)[None].repeat(m, 0)[:, :16, :16]
        return Prediction(
            np.repeat(mask[None], m, 0), np.linspace(0.9, 0.1, m), logits, np.float32(1.0)
        )


def _square(hw=(40, 40), y0=10, x0=10, side=9):
    gt = np.zeros(hw, bool)
    gt[y0 : y0 + side, x0 : x0 + side] = True
    return gt


def test_center_click_hits_gt_exactly():
    gt = _square()  # 9x9 square centred at (14, 14): the first click covers it exactly
    pred = ScriptedPredictor()
    ious = simulate_clicks(pred, gt, max_clicks=5)
    assert ious == [1.0] * 5
    assert len(pred.calls) == 1  # no error left: no more predictor calls
    pts, labels, box, logits, multi = pred.calls[0]
    np.testing.assert_array_equal(pts, [[14, 14]])
    assert list(labels) == [1] and box is None and logits is None and multi


def test_correction_clicks_hand_computed():
    gt = np.zeros((40, 40), bool)
    gt[10:19, 10:28] = True  # 9x18: two clicks of 9x9 each fill it
    pred = ScriptedPredictor()
    ious = simulate_clicks(pred, gt, max_clicks=4)
    # click 1 at the most interior pixel (first in raster order): x=14, y=14 -> 81 of 162
    assert ious[0] == pytest.approx(81 / 162)
    assert ious[1:] == [1.0, 1.0, 1.0]
    pts, labels, _, logits, multi = pred.calls[1]
    np.testing.assert_array_equal(pts, [[14, 14], [23, 14]])
    assert list(labels) == [1, 1] and logits.shape == (1, 16, 16) and not multi
    assert clicks_to_iou(ious, 0.85) == 2 and clicks_to_iou(ious, 0.4) == 1


def test_without_mask_feedback_each_correction_starts_again_from_the_clicks():
    gt = np.zeros((40, 40), bool)
    gt[10:19, 10:28] = True
    fed, fresh = ScriptedPredictor(), ScriptedPredictor()
    fresh.mask_feedback = False  # a zooming ImagePredictor's default
    assert simulate_clicks(fed, gt, max_clicks=3) == simulate_clicks(fresh, gt, max_clicks=3)
    assert fed.calls[1][3] is not None  # SAM 2's practice: the previous logits go back in
    pts, labels, _, logits, multi = fresh.calls[1]
    np.testing.assert_array_equal(pts, [[14, 14], [23, 14]])
    assert logits is None and not multi  # all the clicks, no previous mask


def test_image_predictor_feeds_back_unless_zooming(test_model):
    from sam_pets.predict import ImagePredictor

    p = ImagePredictor(test_model, device="cpu")
    assert p.mask_feedback
    p.zoom = True
    assert not p.mask_feedback
    p.mask_feedback = True  # an explicit choice wins over the zoom's default
    assert p.mask_feedback
    p.zoom, p.mask_feedback = False, False
    assert not p.mask_feedback
    p.mask_feedback = None
    assert p.mask_feedback


def test_negative_click_on_false_positive():
    gt = _square(side=5, y0=12, x0=12)  # 5x5 inside the 9x9 first prediction
    pred = ScriptedPredictor()
    ious = simulate_clicks(pred, gt, max_clicks=2)
    assert ious[0] == pytest.approx(25 / 81)
    _, labels, _, _, _ = pred.calls[1]
    assert list(labels) == [1, 0]


def test_box_first_and_ignore():
    gt = _square(side=9)
    box_mask = np.zeros((40, 40), bool)
    box_mask[10:19, 10:17] = True  # box prediction misses two columns
    ignore = np.zeros((40, 40), bool)
    ignore[:, 17:19] = True  # ...which are ignored: IoU 1
    pred = ScriptedPredictor(box_mask=box_mask)
    ious = simulate_clicks(pred, gt, ignore=ignore, max_clicks=3, first="box")
    assert ious == [1.0, 1.0, 1.0]
    np.testing.assert_array_equal(pred.calls[0][2], [10, 10, 18, 18])
    assert pred.calls[0][0] is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="first"):
        simulate_clicks(ScriptedPredictor(), _square(), first="random")
    with pytest.raises(ValueError, match="max_clicks"):
        simulate_clicks(ScriptedPredictor(), _square(), max_clicks=0)
    with pytest.raises(ValueError, match="empty"):
        simulate_clicks(ScriptedPredictor(), np.zeros((40, 40), bool))


def test_clicks_to_iou_cap():
    assert clicks_to_iou([0.1, 0.5, 0.84], 0.85) == 20
    assert clicks_to_iou([0.1] * 30 + [0.99], 0.85) == 20
    assert clicks_to_iou([0.1, 0.9], 0.9, cap=5) == 2
    assert clicks_to_iou(np.array([0.86, 0.2]), 0.85) == 1
    assert clicks_to_iou([0.5, 0.95], 0.9, cap=1) == 1


def test_real_model_reproducible(test_model, pet_image, pet_trimap, one_torch_thread):
    from sam_pets.predict import ImagePredictor

    predictor = ImagePredictor(test_model, device="cpu")
    predictor.set_image(pet_image)
    gt, ignore = pet_trimap == 1, pet_trimap == 3
    a = simulate_clicks(predictor, gt, ignore, max_clicks=4)
    b = simulate_clicks(predictor, gt, ignore, max_clicks=4, first="box")
    assert len(a) == len(b) == 4
    assert all(0.0 <= v <= 1.0 for v in a + b)
    assert simulate_clicks(predictor, gt, ignore, max_clicks=4) == a
