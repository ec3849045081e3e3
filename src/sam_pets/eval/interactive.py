"""Simulated interactive segmentation: correction clicks, IoU after each, clicks to a target.

The protocol (as in the interactive-segmentation literature, SAM's and SAM 2's evaluation):
the first prompt is a click at the mask's most interior pixel (or the tight box); then, while
clicks remain, the next click goes to the centre of the largest error region, "largest" and
"centre" measured by depth as usual: of the missed pixels and the false positives, the set
whose farthest-from-boundary pixel lies deeper is chosen, and the click goes on that pixel;
positive on missed foreground, negative on a false positive
(:func:`sam_pets.data.prompts.correction_click`, ignored pixels never count as errors).
Every click after the first keeps all earlier clicks and, when the predictor's
``mask_feedback`` is on (SAM 2's practice; the default unless zooming in), feeds the previous
low-res logits back as the mask input, as the Annotator does. The IoU after each click gives
the mIoU@k curve; :func:`clicks_to_iou` turns it into NoC@85 / NoC@90.
"""

from __future__ import annotations

import numpy as np

from sam_pets.data.prompts import correction_click, interior_point, tight_box
from sam_pets.eval.metrics import iou

FIRST_PROMPTS = ("center", "box")


def simulate_clicks(
    predictor,
    gt_mask: np.ndarray,
    ignore: np.ndarray | None = None,
    max_clicks: int = 20,
    first: str = "center",
    until: float | None = None,
    min_clicks: int = 1,
) -> list[float]:
    """Run the correction-click protocol on the predictor's current image.

    The caller must have called ``predictor.set_image`` on the image ``gt_mask`` belongs to
    (so one embedding serves every protocol). Deterministic: ties go to the first pixel in
    raster order.

    Args:
        predictor: An :class:`~sam_pets.predict.ImagePredictor` with the image set.
        gt_mask: (H, W) bool ground truth in original-image pixels, not empty.
        ignore: (H, W) bool pixels left out of the IoU and never clicked, or None.
        max_clicks: Number of clicks k (>= 1). With ``first="box"`` the box counts as the
            first interaction, so ``max_clicks - 1`` correction clicks follow it.
        first: "center" (positive click at the most interior pixel) or "box" (tight box).
        until: Stop early once the IoU reaches this value after at least ``min_clicks``
            interactions (None: always ``max_clicks``). NoC at any target up to ``until``
            and the IoU after the first ``min_clicks`` interactions are the same as
            without it; it only saves the clicks nobody reads.
        min_clicks: See ``until``.

    Returns:
        IoU in [0, 1] after each interaction, ``max_clicks`` floats (fewer when ``until``
        stopped it). When the prediction is already perfect, no error is left to click and
        the last IoU is repeated.

    Raises:
        ValueError: Bad ``first`` / ``max_clicks``, or an empty ``gt_mask``.
    """
    if first not in FIRST_PROMPTS:
        raise ValueError(f"first must be one of {FIRST_PROMPTS}, got {first!r}")
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be >= 1, got {max_clicks}")
    gt = np.asarray(gt_mask).astype(bool)
    ign = None if ignore is None else np.asarray(ignore).astype(bool)
    if not gt.any():
        raise ValueError("gt_mask is empty: there is nothing to click on")
    box = tight_box(gt) if first == "box" else None
    points: list[np.ndarray] = [] if box is not None else [interior_point(gt)]
    labels: list[int] = [] if box is not None else [1]
    mask, logits, window = _predict(predictor, points, labels, box, None, None, multimask=True)
    feedback = getattr(predictor, "mask_feedback", True)
    ious = [float(iou(mask, gt, ign))]
    while len(ious) < max_clicks:
        if until is not None and len(ious) >= min_clicks and ious[-1] >= until:
            break
        click = correction_click(mask, gt, ignore=ign, mode="center")
        if click is None:
            ious.append(ious[-1])
            continue
        points.append(click.point_xy)
        labels.append(click.label)
        mask, logits, window = _predict(
            predictor,
            points,
            labels,
            box,
            logits if feedback else None,
            window if feedback else None,
            multimask=False,
        )
        ious.append(float(iou(mask, gt, ign)))
    return ious


def _predict(predictor, points, labels, box, logits, window, multimask: bool):
    """Best mask (H, W) bool, its low-res logits (1, s, s) and the window they cover.

    ``window`` is the region ``logits`` cover (a zooming predictor's crop; None: the image).
    """
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 2) if points else None
    lab = np.asarray(labels, dtype=np.int32) if points else None
    # one positive click is ambiguous: pick among 3 candidates; a box or several clicks are not
    multi = multimask and box is None and len(points) == 1
    extra = {} if window is None else {"mask_window": window}
    pred = predictor.predict(
        points_xy=pts, labels=lab, box_xyxy=box, mask_logits=logits, multimask=multi, **extra
    )
    best = pred.best()
    return pred.masks[best], pred.low_res_logits[best][None], getattr(pred, "window", None)


def clicks_to_iou(ious: list[float] | np.ndarray, threshold: float, cap: int = 20) -> int:
    """Number of clicks needed to reach ``threshold`` IoU (NoC@85 with 0.85).

    Args:
        ious: IoU after click 1, 2, ... (as returned by :func:`simulate_clicks`).
        threshold: Target IoU in [0, 1].
        cap: Value returned when the target is never reached within the first ``cap`` clicks
            (the usual convention; 20).

    Returns:
        The 1-based index of the first IoU >= ``threshold``, at most ``cap``.
    """
    for k, v in enumerate(list(ious)[:cap], start=1):
        if v >= threshold:
            return k
    return cap
