"""SAM 2 training losses: focal + dice on the best mask, IoU regression, object-score BCE.

An optional ranking term (not in Meta's recipe) teaches the IoU head to order the three
candidates of one click: a KL divergence between the softmax of the predicted and of the
actual IoUs over an object's candidates.

Follows Meta's ``training/loss_fns.py`` (see SAM2_IMAGE_SPEC.md §8) with an ignore mask:
ignored pixels count neither in the focal mean, the dice sums nor the IoU target.
All functions return per-object (and per-mask) values; the caller sums and normalises.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    """Weights of the terms (Meta: 20 : 1 : 1 : 1, no ranking) and the IoU loss type.

    ``rank`` weighs the candidate-ranking term; ``rank_temperature`` divides the predicted and
    actual IoUs before their softmax (smaller: a harder target).
    """

    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    cls: float = 1.0
    iou_loss: str = "l1"
    rank: float = 0.0
    rank_temperature: float = 0.1


def sigmoid_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    keep: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Focal loss averaged over the kept pixels.

    Args:
        logits: (K, M, H, W) float mask logits.
        target: (K, 1, H, W) float in {0, 1}.
        keep: (K, 1, H, W) float, 1 for pixels that count (not ignored).
        alpha: Weight of the positive class (negative values disable it).
        gamma: Focusing exponent.

    Returns:
        (K, M) loss per object and mask.
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target.expand_as(logits), reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    n = keep.sum(dim=(-2, -1)).clamp_min(1.0)  # (K, 1)
    return (loss * keep).sum(dim=(-2, -1)) / n


def dice_loss(logits: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Soft dice loss ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)`` over kept pixels.

    Args:
        logits: (K, M, H, W) float mask logits.
        target: (K, 1, H, W) float in {0, 1}.
        keep: (K, 1, H, W) float, 1 for pixels that count.

    Returns:
        (K, M) loss per object and mask.
    """
    prob = logits.sigmoid() * keep
    t = target * keep
    num = 2 * (prob * t).sum(dim=(-2, -1))
    den = prob.sum(dim=(-2, -1)) + t.sum(dim=(-2, -1))
    return 1 - (num + 1) / (den + 1)


def mask_iou(logits: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Actual IoU of ``logits > 0`` against the target over kept pixels (no gradient).

    Args:
        logits: (K, M, H, W) float.
        target: (K, 1, H, W) float in {0, 1}.
        keep: (K, 1, H, W) float.

    Returns:
        (K, M) IoU in [0, 1] (1 when prediction and target are both empty).
    """
    pred = (logits.detach() > 0).float() * keep
    t = target * keep
    inter = (pred * t).sum(dim=(-2, -1))
    union = (pred + t).clamp(max=1).sum(dim=(-2, -1))
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(union))


@dataclass
class StepLoss:
    """Loss of one decoder round, summed over objects (not yet normalised).

    Attributes:
        total: Scalar weighted sum.
        focal: Scalar focal term (unweighted, best mask).
        dice: Scalar dice term (unweighted, best mask).
        iou: Scalar IoU-prediction term (unweighted, mean over masks).
        cls: Scalar object-score term (unweighted).
        rank: Scalar candidate-ranking term (unweighted; zero for single-mask rounds).
    """

    total: torch.Tensor
    focal: torch.Tensor
    dice: torch.Tensor
    iou: torch.Tensor
    cls: torch.Tensor
    rank: torch.Tensor


def rank_loss(iou_pred: torch.Tensor, actual: torch.Tensor, temperature: float) -> torch.Tensor:
    """How far the order of the predicted IoUs is from that of the actual ones.

    Args:
        iou_pred: (K, M) predicted IoU.
        actual: (K, M) actual IoU (no gradient).
        temperature: Divides both before the softmax over the M candidates.

    Returns:
        (K,) KL divergence from the actual to the predicted distribution; 0 when M == 1.
    """
    if iou_pred.shape[1] < 2:
        return iou_pred.new_zeros(iou_pred.shape[0], dtype=torch.float32)
    log_p = F.log_softmax(iou_pred.float() / temperature, dim=1)
    target = F.softmax(actual.float() / temperature, dim=1)
    return F.kl_div(log_p, target, reduction="none").sum(1)


def sam_loss(
    logits: torch.Tensor,
    iou_pred: torch.Tensor,
    object_logit: torch.Tensor,
    target: torch.Tensor,
    keep: torch.Tensor,
    w: LossWeights,
) -> StepLoss:
    """Loss of one round for K objects (Meta's ``MultiStepMultiMasksAndIous`` for one step).

    With M = 3 masks the focal and dice terms use only the mask with the lowest
    ``focal_w * focal + dice_w * dice``; the IoU term is averaged over all M masks. Mask,
    dice and IoU terms are zero for objects whose target is empty. With ``w.rank > 0`` and
    M > 1, :func:`rank_loss` is added.

    Args:
        logits: (K, M, H, W) float32 mask logits at the target's resolution.
        iou_pred: (K, M) predicted IoU in [0, 1].
        object_logit: (K, 1) object-presence logit.
        target: (K, 1, H, W) float in {0, 1}.
        keep: (K, 1, H, W) float, 1 for pixels that count.
        w: Loss weights.

    Returns:
        :class:`StepLoss`, each term summed over the K objects.
    """
    focal = sigmoid_focal_loss(logits, target, keep)  # (K, M)
    dice = dice_loss(logits, target, keep)  # (K, M)
    best = (w.focal * focal + w.dice * dice).argmin(dim=1, keepdim=True)  # (K, 1)
    focal_b, dice_b = focal.gather(1, best)[:, 0], dice.gather(1, best)[:, 0]  # (K,)
    actual = mask_iou(logits, target, keep)
    if w.iou_loss == "l1":
        iou_l = F.l1_loss(iou_pred.float(), actual, reduction="none").mean(1)  # (K,)
    else:
        iou_l = F.mse_loss(iou_pred.float(), actual, reduction="none").mean(1)
    present = (target.flatten(1) > 0).any(1).float()  # (K,)
    cls = F.binary_cross_entropy_with_logits(object_logit.float()[:, 0], present, reduction="none")
    focal_s, dice_s = (focal_b * present).sum(), (dice_b * present).sum()
    iou_s, cls_s = (iou_l * present).sum(), cls.sum()
    rank_s = (rank_loss(iou_pred, actual, w.rank_temperature) * present).sum()
    total = w.focal * focal_s + w.dice * dice_s + w.iou * iou_s + w.cls * cls_s
    if w.rank > 0:
        total = total + w.rank * rank_s
    return StepLoss(total, focal_s, dice_s, iou_s, cls_s, rank_s)
