"""Segmentation metrics with an ignore mask; numpy arrays or torch tensors in, same type out.

All functions take binary masks whose last two axes are (H, W); leading axes (K objects,
B images...) are kept, so ``iou(pred (K, H, W), gt (K, H, W))`` returns (K,) values.
``ignore`` broadcasts against the masks ((H, W) for all objects, or (K, H, W)); ignored
pixels count neither as errors nor as hits. Empty cases follow the usual convention: two
empty masks agree perfectly (IoU = Dice = 1), and accuracy with no counted pixel is 1.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


class Counts(NamedTuple):
    """Pixel counts over the last two axes.

    Attributes:
        tp: Predicted and true.
        fp: Predicted, not true.
        fn: True, not predicted.
        tn: Neither.
    """

    tp: Array
    fp: Array
    fn: Array
    tn: Array


def _bool(x, like):
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(x, device=like.device).bool()
    return np.asarray(x).astype(bool)


def _sum_hw(x):
    if isinstance(x, torch.Tensor):
        return x.sum(dim=(-2, -1)).to(torch.float64)
    return x.sum(axis=(-2, -1)).astype(np.float64)


def confusion_counts(pred: Array, gt: Array, ignore: Array | None = None) -> Counts:
    """Count TP, FP, FN and TN pixels, leaving ignored pixels out.

    Args:
        pred: (..., H, W) bool (or 0/1) prediction.
        gt: (..., H, W) bool (or 0/1) ground truth, same shape as ``pred``.
        ignore: Pixels left out, broadcastable to ``pred``; None keeps every pixel.

    Returns:
        :class:`Counts` of float64 arrays/tensors of shape ``pred.shape[:-2]``.
    """
    pred, gt = _bool(pred, pred), _bool(gt, pred)
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape")
    keep = ~_bool(ignore, pred) if ignore is not None else _bool(True, pred)
    return Counts(
        _sum_hw(pred & gt & keep),
        _sum_hw(pred & ~gt & keep),
        _sum_hw(~pred & gt & keep),
        _sum_hw(~pred & ~gt & keep),
    )


def _ratio(num, den):
    if isinstance(num, torch.Tensor):
        return torch.where(den > 0, num / den.clamp_min(1e-12), torch.ones_like(num))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1e-12), 1.0)


def iou(pred: Array, gt: Array, ignore: Array | None = None) -> Array:
    """Intersection over union, ``tp / (tp + fp + fn)``; 1 when both masks are empty.

    Args:
        pred: (..., H, W) bool prediction.
        gt: (..., H, W) bool ground truth.
        ignore: Pixels left out, broadcastable to ``pred``.

    Returns:
        (...) float64 IoU in [0, 1].
    """
    c = confusion_counts(pred, gt, ignore)
    return _ratio(c.tp, c.tp + c.fp + c.fn)


def dice(pred: Array, gt: Array, ignore: Array | None = None) -> Array:
    """Dice coefficient (F1), ``2 tp / (2 tp + fp + fn)``; 1 when both masks are empty.

    Args:
        pred: (..., H, W) bool prediction.
        gt: (..., H, W) bool ground truth.
        ignore: Pixels left out, broadcastable to ``pred``.

    Returns:
        (...) float64 Dice in [0, 1].
    """
    c = confusion_counts(pred, gt, ignore)
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn)


def pixel_accuracy(pred: Array, gt: Array, ignore: Array | None = None) -> Array:
    """Fraction of counted pixels classified correctly; 1 when no pixel is counted.

    Args:
        pred: (..., H, W) bool prediction.
        gt: (..., H, W) bool ground truth.
        ignore: Pixels left out, broadcastable to ``pred``.

    Returns:
        (...) float64 accuracy in [0, 1].
    """
    c = confusion_counts(pred, gt, ignore)
    return _ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn)
