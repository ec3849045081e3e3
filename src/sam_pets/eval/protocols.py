"""Prompt protocols: how one object of the ground truth becomes a prompt and a mask.

- ``box``: the tight box of the object.
- ``box-jitter``: that box with SAM 2's training noise (:func:`~sam_pets.data.prompts.jitter_box`).
- ``center``: one positive click at the object pixel farthest from its boundary.
- ``random``: one positive click at a uniformly random object pixel outside the ignore region.
- ``clicks``: the interactive protocol (:mod:`sam_pets.eval.interactive`), scored separately.
- ``everything``: no prompt from the object: the automatic mask generator proposes masks for
  the whole image, scored by COCO mask AP and each object's best IoU
  (:mod:`sam_pets.eval.everything`). Not in the default set (it costs a grid of clicks).

Single-click protocols ask for 3 candidates and keep the one with the best predicted IoU (a
single click is ambiguous); box protocols ask for one mask. Random protocols draw from a
generator the caller seeds per (item, object), so results do not depend on the order or the
subset of items evaluated.
"""

from __future__ import annotations

import numpy as np

PROTOCOLS = ("box", "box-jitter", "center", "random", "clicks", "everything")
SINGLE_SHOT = PROTOCOLS[:4]
DEFAULT_PROTOCOLS = PROTOCOLS[:5]


def object_rng(seed: int, item_key: int, k: int, protocol: str) -> np.random.Generator:
    """The generator for object ``k`` of an item (``item_key`` from the name) and a protocol."""
    return np.random.default_rng([seed, item_key, k, PROTOCOLS.index(protocol)])


def prompt_for(
    protocol: str,
    gt: np.ndarray,
    ignore: np.ndarray | None,
    rng: np.random.Generator | None = None,
) -> dict:
    """Keyword arguments for :meth:`ImagePredictor.predict` under a single-shot protocol.

    Args:
        protocol: One of :data:`SINGLE_SHOT`.
        gt: (H, W) bool object mask, not empty.
        ignore: (H, W) bool or None.
        rng: Generator for the random protocols.

    Returns:
        ``points_xy``/``labels`` or ``box_xyxy``, and ``multimask``.
    """
    from sam_pets.data.prompts import interior_point, jitter_box, random_points, tight_box

    if protocol == "box":
        return {"box_xyxy": tight_box(gt), "multimask": False}
    if protocol == "box-jitter":
        return {"box_xyxy": jitter_box(tight_box(gt), gt.shape, rng), "multimask": False}
    if protocol == "center":
        return {
            "points_xy": interior_point(gt)[None],
            "labels": np.ones(1, np.int32),
            "multimask": True,
        }
    if protocol == "random":
        pts, labels = random_points(gt, 1, 0, rng, ignore)
        if not len(pts):  # the whole object is ignored: fall back to any object pixel
            pts, labels = random_points(gt, 1, 0, rng)
        return {"points_xy": pts, "labels": labels, "multimask": True}
    raise ValueError(f"unknown single-shot protocol {protocol!r}; choose from {SINGLE_SHOT}")


def predict_object(predictor, protocol: str, gt, ignore, rng=None) -> np.ndarray:
    """(H, W) bool mask for one object under a single-shot protocol (image already set)."""
    pred = predictor.predict(**prompt_for(protocol, gt, ignore, rng))
    return pred.masks[pred.best()]
