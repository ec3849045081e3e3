"""Prompt sampling for training and evaluation: boxes, points and correction clicks.

Conventions: boxes are XYXY in pixel indices with inclusive maxima (as
``torchvision.ops.masks_to_boxes``); points are (x, y) = (column, row) pixel indices; point
labels are 1 (positive) and 0 (negative), as SAM expects. Every random function takes a
``numpy.random.Generator`` or an int seed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

SeedLike = np.random.Generator | int | None


class Click(NamedTuple):
    """A correction click: (x, y) pixel position and label (1 positive, 0 negative)."""

    point_xy: np.ndarray
    label: int


def _rng(seed: SeedLike) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def tight_box(mask: np.ndarray) -> np.ndarray:
    """Tight box of a mask.

    Args:
        mask: (H, W) bool, not empty.

    Returns:
        (4,) float32 ``[x_min, y_min, x_max, y_max]`` (inclusive pixel indices).
    """
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        raise ValueError("empty mask has no box")
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.float32)


def jitter_box(
    box_xyxy: np.ndarray,
    size_hw: tuple[int, int],
    rng: SeedLike = None,
    noise: float = 0.1,
    max_px: float = 20.0,
) -> np.ndarray:
    """SAM 2's training box noise.

    Each coordinate moves by a uniform amount in ``[-s, s]`` with ``s = min(noise * side,
    max_px)`` (side = box width for x, height for y); the result is clamped to the image
    and reordered so that min <= max.

    Args:
        box_xyxy: (4,) box.
        size_hw: (H, W) of the image.
        rng: Generator or seed.
        noise: Noise as a fraction of the box side.
        max_px: Cap on the noise in pixels.

    Returns:
        (4,) float32 jittered box.
    """
    box = np.asarray(box_xyxy, dtype=np.float64)
    w, h = box[2] - box[0], box[3] - box[1]
    scale = np.minimum(noise * np.array([w, h, w, h]), max_px)
    out = box + _rng(rng).uniform(-1.0, 1.0, size=4) * scale
    hi = np.array([size_hw[1] - 1, size_hw[0] - 1] * 2, dtype=np.float64)
    out = np.clip(out, 0.0, hi)
    x0, x1 = sorted((out[0], out[2]))
    y0, y1 = sorted((out[1], out[3]))
    return np.array([x0, y0, x1, y1], dtype=np.float32)


def boundary_distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of each mask pixel to the nearest non-mask pixel.

    Pixels outside the image count as outside the mask, so a mask touching the image edge
    has distance 1 there (as in SAM 2's click sampling).

    Args:
        mask: (H, W) bool.

    Returns:
        (H, W) float distances, 0 outside the mask.
    """
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.shape, np.float64)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return out
    # only the mask's bounding box, padded by one background pixel: every pixel beyond that
    # ring is farther from the mask than the ring pixel it projects onto, so this is exact
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box = np.pad(mask[y0:y1, x0:x1], 1)
    out[y0:y1, x0:x1] = ndimage.distance_transform_edt(box)[1:-1, 1:-1]
    return out


def interior_point(mask: np.ndarray, rng: SeedLike = None) -> np.ndarray:
    """The mask pixel farthest from the mask boundary.

    Args:
        mask: (H, W) bool, not empty.
        rng: If given, ties are broken at random; otherwise the first in raster order wins.

    Returns:
        (2,) float32 ``(x, y)``.
    """
    dist = boundary_distance(mask)
    if dist.max() <= 0:
        raise ValueError("empty mask has no interior point")
    return _argmax_xy(dist, rng)


def _argmax_xy(values: np.ndarray, rng: SeedLike) -> np.ndarray:
    if rng is None:
        y, x = np.unravel_index(int(np.argmax(values)), values.shape)
    else:
        ys, xs = np.nonzero(values == values.max())
        i = _rng(rng).integers(len(ys))
        y, x = ys[i], xs[i]
    return np.array([x, y], dtype=np.float32)


def random_points(
    mask: np.ndarray, n_pos: int, n_neg: int, rng: SeedLike = None, ignore: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random positive points in the mask and negative points outside it.

    Args:
        mask: (H, W) bool.
        n_pos: Positive points wanted (fewer if the mask is smaller).
        n_neg: Negative points wanted, drawn outside ``mask`` and ``ignore``.
        rng: Generator or seed.
        ignore: (H, W) bool pixels never sampled.

    Returns:
        points_xy: (N, 2) float32, positives first.
        labels: (N,) int32, 1 for positive, 0 for negative.
    """
    rng = _rng(rng)
    allowed = ~ignore if ignore is not None else np.ones_like(mask, dtype=bool)
    pos = _sample_pixels(mask & allowed, n_pos, rng)
    neg = _sample_pixels(~mask & allowed, n_neg, rng)
    labels = np.concatenate([np.ones(len(pos), np.int32), np.zeros(len(neg), np.int32)])
    return np.concatenate([pos, neg]).astype(np.float32), labels


def _sample_pixels(region: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(region)
    if n <= 0 or not len(ys):
        return np.zeros((0, 2), np.float32)
    idx = rng.choice(len(ys), size=min(n, len(ys)), replace=False)
    return np.stack([xs[idx], ys[idx]], axis=1).astype(np.float32)


def error_regions(
    pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Missed pixels (false negatives) and false positives of a prediction.

    Args:
        pred: (H, W) bool prediction.
        gt: (H, W) bool ground truth.
        ignore: (H, W) bool pixels that are never errors.

    Returns:
        missed: (H, W) bool ``gt & ~pred``; extra: (H, W) bool ``pred & ~gt``.
    """
    pred, gt = pred.astype(bool), gt.astype(bool)
    keep = ~ignore.astype(bool) if ignore is not None else True
    return gt & ~pred & keep, pred & ~gt & keep


def correction_click(
    pred: np.ndarray,
    gt: np.ndarray,
    rng: SeedLike = None,
    ignore: np.ndarray | None = None,
    mode: str = "center",
) -> Click | None:
    """The next click a user would make to correct ``pred`` towards ``gt``.

    ``mode="center"``: take the error type (missed or false positive) whose region has the
    deeper interior and click at its pixel farthest from that region's boundary; a positive
    click on a miss, a negative click on a false positive (SAM 2's "center" rule).
    ``mode="random"``: a uniform random pixel of all errors, labelled by its error type.

    Args:
        pred: (H, W) bool prediction.
        gt: (H, W) bool ground truth.
        rng: Generator or seed (ties in "center", the draw in "random").
        ignore: (H, W) bool pixels that are never errors.
        mode: "center" or "random".

    Returns:
        The click, or None when there is no error left.
    """
    missed, extra = error_regions(pred, gt, ignore)
    if not missed.any() and not extra.any():
        return None
    if mode == "random":
        xy = _sample_pixels(missed | extra, 1, _rng(rng))[0]
        return Click(xy, int(missed[int(xy[1]), int(xy[0])]))
    if mode != "center":
        raise ValueError(f"mode must be 'center' or 'random', got {mode!r}")
    d_miss, d_extra = boundary_distance(missed), boundary_distance(extra)
    positive = d_miss.max() >= d_extra.max()
    dist = d_miss if positive else d_extra
    return Click(_argmax_xy(dist, rng), int(positive))
