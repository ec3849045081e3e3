"""Validation with fixed prompts: a tight box and a click at the most interior pixel.

Metrics are computed at the model-input resolution S against the (squash-resized) GT with
its ignore mask: mean IoU and Dice over objects, per prompt type; ``val_miou`` is the mean of
the box and click mIoU and is what ``best.pt`` is chosen by.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from sam_pets.eval.metrics import dice, iou
from sam_pets.model import ImageFeatures, Sam2Image
from sam_pets.train.prompting import Prompts, box_prompts, center_click_prompts
from sam_pets.train.step import encode


@torch.no_grad()
def validate(
    model: Sam2Image,
    items: Iterable[tuple[ImageFeatures | torch.Tensor, torch.Tensor, torch.Tensor]],
    autocast: Callable = contextlib.nullcontext,
    decoder_autocast: Callable | None = None,
) -> dict[str, float]:
    """Score box and click prompts on validation items.

    Args:
        model: The model; put in eval mode here and left in eval mode (the caller restores
            its train modes).
        items: ``(features or image (1, 3, S, S) in [0, 1], masks (K, S, S) bool,
            ignore (S, S) bool)`` per image, on the model's device.
        autocast: Zero-argument context factory for the forward passes.
        decoder_autocast: Context factory for the decoder (default ``autocast``), as in
            training (:func:`sam_pets.train.step.batch_loss`); it gets float32 features.

    Returns:
        ``val_miou``, ``val_iou_box``, ``val_iou_click``, ``val_dice_box``,
        ``val_dice_click`` (floats in [0, 1]) and ``val_objects``.
    """
    model.eval()
    dec = autocast if decoder_autocast is None else decoder_autocast
    scores: dict[str, list[float]] = {
        "iou_box": [],
        "iou_click": [],
        "dice_box": [],
        "dice_click": [],
    }
    for x, masks, ignore in items:
        if not len(masks):
            continue
        with autocast():
            feats = x if isinstance(x, ImageFeatures) else encode(model, x, trainable=False)
        feats = ImageFeatures(*(t.float() for t in feats.tensors()))
        gt = masks.cpu().numpy()
        for kind, prompts in (("box", box_prompts(gt, None)), ("click", center_click_prompts(gt))):
            pred = _predict(model, feats, prompts, masks.device, dec)
            scores[f"iou_{kind}"] += iou(pred, masks, ignore).tolist()
            scores[f"dice_{kind}"] += dice(pred, masks, ignore).tolist()
    out = {f"val_{k}": float(np.mean(v)) if v else 0.0 for k, v in scores.items()}
    out["val_miou"] = (out["val_iou_box"] + out["val_iou_click"]) / 2
    out["val_objects"] = len(scores["iou_box"])
    return out


def _predict(model, feats, prompts: Prompts, device, autocast) -> torch.Tensor:
    """(K, S, S) bool masks; the candidate with the best predicted IoU when multimask."""
    pts = torch.from_numpy(prompts.points_xy).to(device)
    labels = torch.from_numpy(prompts.labels).to(device)
    with autocast():
        out = model.decode(feats, pts, labels, None, prompts.multimask)
    logits = out.logits.float()
    best = out.iou.argmax(dim=1)
    rows = torch.arange(len(logits), device=device)
    sel = logits[rows, best][:, None]  # (K, 1, s, s)
    s = model.cfg.image_size
    full = F.interpolate(sel, size=(s, s), mode="bilinear", align_corners=False)  # (K, 1, S, S)
    return full[:, 0] > 0
