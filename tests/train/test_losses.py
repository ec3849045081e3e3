"""Losses against hand-computed values; ignore handling; best-mask selection."""

from __future__ import annotations

import math

import pytest
import torch

from sam_pets.train.losses import LossWeights, dice_loss, mask_iou, sam_loss, sigmoid_focal_loss


def _t(rows):
    return torch.tensor(rows, dtype=torch.float32)[None, None]  # (1, 1, H, W)


def test_focal_and_dice_by_hand():
    logits = _t([[0.0, 0.0]])  # p = 0.5 everywhere
    target = _t([[1.0, 0.0]])
    keep = torch.ones_like(target)
    ce = math.log(2)
    # positive pixel: alpha 0.25 * 0.5^2 * ce; negative: 0.75 * 0.5^2 * ce; mean of the two
    expected = (0.25 + 0.75) * 0.25 * ce / 2
    assert sigmoid_focal_loss(logits, target, keep).item() == pytest.approx(expected)
    # dice: 1 - (2*0.5 + 1) / (1.0 + 1 + 1)
    assert dice_loss(logits, target, keep).item() == pytest.approx(1 - 2 / 3)


def test_ignored_pixels_do_not_count():
    logits = _t([[5.0, 5.0]])
    target = _t([[1.0, 0.0]])
    keep = _t([[1.0, 0.0]])  # the false positive is ignored
    assert mask_iou(logits, target, keep).item() == 1.0
    full = sigmoid_focal_loss(logits, target, torch.ones_like(keep)).item()
    assert sigmoid_focal_loss(logits, target, keep).item() < full / 10


def test_sam_loss_picks_best_mask_and_averages_iou():
    target = _t([[1.0, 1.0], [0.0, 0.0]])
    good = torch.tensor([[10.0, 10.0], [-10.0, -10.0]])
    bad = -good
    logits = torch.stack([bad, good, bad])[None]  # (1, 3, 2, 2)
    iou_pred = torch.tensor([[0.0, 1.0, 0.0]])  # actual IoUs are 0, 1, 0
    keep = torch.ones_like(target)
    out = sam_loss(logits, iou_pred, torch.tensor([[20.0]]), target, keep, LossWeights())
    assert out.dice.item() < 1e-3 and out.focal.item() < 1e-6  # the good mask was chosen
    assert out.iou.item() == pytest.approx(0.0, abs=1e-6)
    assert out.cls.item() == pytest.approx(0.0, abs=1e-6)
    out_mse = sam_loss(
        logits,
        torch.tensor([[1.0, 1.0, 1.0]]),
        torch.tensor([[0.0]]),
        target,
        keep,
        LossWeights(iou_loss="mse"),
    )
    assert out_mse.iou.item() == pytest.approx(2 / 3)
    assert out_mse.cls.item() == pytest.approx(math.log(2))


def test_absent_object_has_only_the_class_loss():
    target = torch.zeros(1, 1, 2, 2)
    out = sam_loss(
        torch.zeros(1, 1, 2, 2),
        torch.zeros(1, 1),
        torch.tensor([[0.0]]),
        target,
        torch.ones_like(target),
        LossWeights(),
    )
    assert out.focal.item() == out.dice.item() == out.iou.item() == 0.0
    assert out.total.item() == pytest.approx(math.log(2))


def test_rank_term_penalises_a_wrong_order_and_only_when_weighted():
    target = _t([[1.0, 1.0], [0.0, 0.0]])
    good = torch.tensor([[10.0, 10.0], [-10.0, -10.0]])
    logits = torch.stack([-good, good, -good])[None]  # actual IoUs 0, 1, 0
    keep = torch.ones_like(target)
    obj = torch.tensor([[20.0]])
    right = torch.tensor([[0.1, 0.9, 0.1]], requires_grad=True)
    wrong = torch.tensor([[0.9, 0.1, 0.1]], requires_grad=True)
    off = sam_loss(logits, wrong, obj, target, keep, LossWeights())
    on_wrong = sam_loss(logits, wrong, obj, target, keep, LossWeights(rank=1.0))
    on_right = sam_loss(logits, right, obj, target, keep, LossWeights(rank=1.0))
    assert on_wrong.rank.item() > 10 * on_right.rank.item() > 0
    assert on_wrong.total.item() == pytest.approx(off.total.item() + on_wrong.rank.item())
    assert off.rank.item() == pytest.approx(on_wrong.rank.item())  # logged even when off
    on_wrong.total.backward()
    assert wrong.grad[0, 1] < 0 < wrong.grad[0, 0]  # pushes the best candidate up
    single = sam_loss(logits[:, 1:2], right[:, 1:2], obj, target, keep, LossWeights(rank=1.0))
    assert single.rank.item() == 0.0
