"""Training prompts in the model-input frame: first prompts and correction clicks.

All coordinates are (x, y) pixels of the square S x S model input. Point labels: 1 positive,
0 negative, 2/3 box corners, -1 padding. Randomness comes from a ``numpy.random.Generator``
so a step's prompts depend only on its seed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sam_pets.data.prompts import interior_point, jitter_box, random_points, tight_box

PAD = -1


class Prompts(NamedTuple):
    """Prompts for K objects of one image.

    Attributes:
        points_xy: (K, N, 2) float32 model-input pixels.
        labels: (K, N) int64.
        multimask: Whether the decoder should return 3 candidates (one click only).
    """

    points_xy: np.ndarray
    labels: np.ndarray
    multimask: bool


def box_prompts(masks: np.ndarray, rng: np.random.Generator | None) -> Prompts:
    """Tight boxes of each mask, jittered as in SAM 2 training when ``rng`` is given.

    Args:
        masks: (K, S, S) bool, none empty.
        rng: Generator for the jitter (None: exact tight boxes, for validation).

    Returns:
        :class:`Prompts` with N = 2 (labels 2, 3), single-mask output.
    """
    boxes = []
    for m in masks:
        b = tight_box(m)
        boxes.append(jitter_box(b, m.shape, rng) if rng is not None else b)
    pts = np.asarray(boxes, np.float32).reshape(-1, 2, 2)  # (K, 2, 2)
    labels = np.tile(np.array([2, 3], np.int64), (len(masks), 1))
    return Prompts(pts, labels, False)


def click_prompts(
    masks: np.ndarray, n: int, rng: np.random.Generator, ignore: np.ndarray | None = None
) -> Prompts:
    """``n`` uniform random positive clicks per mask (padded when a mask is smaller).

    Args:
        masks: (K, S, S) bool.
        n: Clicks per object.
        rng: Generator.
        ignore: (S, S) bool pixels never clicked.

    Returns:
        :class:`Prompts` with N = n; multimask when n == 1 (SAM 2's rule).
    """
    pts = np.zeros((len(masks), n, 2), np.float32)
    labels = np.full((len(masks), n), PAD, np.int64)
    for k, m in enumerate(masks):
        p, _ = random_points(m, n, 0, rng, ignore)
        if not len(p):  # everything ignored: fall back to the mask itself
            p, _ = random_points(m, n, 0, rng)
        pts[k, : len(p)], labels[k, : len(p)] = p, 1
    return Prompts(pts, labels, n == 1)


def center_click_prompts(masks: np.ndarray) -> Prompts:
    """One click per mask at its most interior pixel (deterministic; for validation)."""
    pts = np.stack([interior_point(m) for m in masks])[:, None].astype(np.float32)  # (K, 1, 2)
    return Prompts(pts, np.ones((len(masks), 1), np.int64), True)


def grid_click_prompts(masks: np.ndarray, points_per_side: int) -> Prompts:
    """One click per mask on the automatic mask generator's grid (the ``grid`` prompt mode).

    The click is the grid point nearest the mask's most interior pixel among the grid points
    inside the mask; a mask holding no grid point (smaller than a grid cell) gets the grid
    point nearest that pixel. The grid is the generator's, ``points_per_side`` cell centres
    per side of the S x S model input (the image squashed to it, as the generator sees it).
    """
    s = masks.shape[-1]
    side = (np.arange(points_per_side) + 0.5) * (s / points_per_side)
    gx, gy = np.meshgrid(side, side)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=-1).astype(np.float32)  # (G, 2) x, y
    cells = np.minimum(grid.astype(np.int64), s - 1)
    pts = np.zeros((len(masks), 1, 2), np.float32)
    for k, m in enumerate(masks):
        centre = interior_point(m)
        inside = m[cells[:, 1], cells[:, 0]]
        choice = grid[inside] if inside.any() else grid
        d = ((choice - centre) ** 2).sum(1)
        pts[k, 0] = choice[int(np.argmin(d))]
    return Prompts(pts, np.ones((len(masks), 1), np.int64), True)


def first_prompts(
    masks: np.ndarray,
    ignore: np.ndarray,
    rng: np.random.Generator,
    prob_box: float,
    num_clicks: int,
    mode: str = "mixed",
    grid_points_per_side: int = 32,
) -> Prompts:
    """The first prompt of every object of an image.

    ``mode="mixed"``: boxes with ``prob_box``, else ``num_clicks`` random clicks; one draw per
    image, as Meta's trainer does per frame, so all objects share N. ``mode="grid"``: one
    click per object snapped to the automatic generator's grid (:func:`grid_click_prompts`).
    """
    if mode == "grid":
        return grid_click_prompts(masks, grid_points_per_side)
    if rng.random() < prob_box:
        return box_prompts(masks, rng)
    return click_prompts(masks, num_clicks, rng, ignore)


def correction_clicks(
    pred: np.ndarray,
    gt: np.ndarray,
    ignore: np.ndarray,
    rng: np.random.Generator,
    prob_from_gt: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """One corrective click per object, drawn uniformly from the current error region.

    A missed pixel gives a positive click, a false positive a negative one. With
    ``prob_from_gt`` the click is a positive one drawn from the GT mask instead; with no
    error left, a negative click from the background (SAM 2's rules).

    Args:
        pred: (K, S, S) bool current prediction.
        gt: (K, S, S) bool ground truth.
        ignore: (S, S) bool pixels that are never errors nor clicked.
        rng: Generator.
        prob_from_gt: Probability of clicking inside the GT instead of on an error.

    Returns:
        points_xy (K, 1, 2) float32 and labels (K, 1) int64 (-1 when nothing can be clicked).
    """
    k_obj = len(gt)
    pts = np.zeros((k_obj, 1, 2), np.float32)
    labels = np.full((k_obj, 1), PAD, np.int64)
    allowed = ~ignore
    for k in range(k_obj):
        if rng.random() < prob_from_gt:
            region, positive = gt[k] & allowed, None
        else:
            region, positive = (pred[k] ^ gt[k]) & allowed, None
            if not region.any():
                region, positive = ~gt[k] & allowed, False
        flat = np.flatnonzero(region)
        if not len(flat):
            continue
        y, x = divmod(int(flat[rng.integers(len(flat))]), region.shape[1])
        pts[k, 0] = (x, y)
        labels[k, 0] = int(gt[k][y, x]) if positive is None else int(positive)
    return pts, labels
