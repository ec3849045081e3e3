"""Zoom-in geometry: the crop window around an object and the moves in and out of it.

A zoomed prediction embeds a crop of the image (the object plus a margin), squashed to the
model's square input like a whole image, so the object covers most of the 64 x 64 low-res
mask cells instead of a corner of them. Prompts go into the crop's frame, the mask comes back
pasted into the image's own size.

A window is ``(x0, y0, x1, y1)`` in image pixels, ``x1``/``y1`` exclusive (pixel edges), and
lies inside the image. Boxes are XYXY with inclusive pixel indices; points are (x, y) pixel
positions, as everywhere in :mod:`sam_pets.predict`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

Window = tuple[int, int, int, int]

# Margin added on each side of the object's box, as a fraction of the box side. Measured on
# the held-out pets with the built-in model (benchmarks/bench_zoom.py, BENCHMARKS.md): none
# scored best with tight boxes (0.822 vs 0.802 at 0.05, 0.791 at 0.15), 0.05 with jittered
# ones (0.803 vs 0.795); the crop then frames what the person boxed.
DEFAULT_MARGIN = 0.0
# Smallest crop side in pixels (a 5-pixel box is not blown up to the model's input alone).
MIN_SIDE = 32
# A mask whose box comes within this share of the window's side of an inner edge has grown
# to that edge: the next pass re-chooses the window.
EDGE_SHARE = 0.02
# Logit given to mask-prompt cells that fall outside the window the logits came from.
OUTSIDE_LOGIT = -20.0


def default_for(model) -> bool:
    """Whether zoom-in pays for ``model`` by default: models with an input under 1024 px.

    The built-in model (256 px) gains from it with boxes and clicks on held-out pets; for
    Meta's 1024-px checkpoints a second embedding costs a second or more on a CPU, so it is
    off by default there (BENCHMARKS.md, zoom).
    """
    return int(model.cfg.image_size) < 1024


def window_around(
    box_xyxy: np.ndarray, size_hw: tuple[int, int], margin: float = DEFAULT_MARGIN
) -> Window:
    """The crop window of a box: the box plus ``margin`` of its side on each side.

    Each side is at least :data:`MIN_SIDE` pixels (grown about the box centre), and the
    window is clipped to the image. A window that would cover the whole image is the image.

    Args:
        box_xyxy: (4,) box, inclusive pixel indices (may reach outside the image).
        size_hw: (H, W) of the image.
        margin: Fraction of the box width (height) added left and right (top and bottom).
    """
    h, w = size_hw
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box_xyxy, np.float64).reshape(4))
    x0, x1 = min(x0, x1), max(x0, x1)
    y0, y1 = min(y0, y1), max(y0, y1)
    return _order(_span(x0, x1 + 1.0, w, margin), _span(y0, y1 + 1.0, h, margin))


def _span(lo: float, hi: float, n: int, margin: float) -> tuple[int, int]:
    """[lo, hi) widened by ``margin`` of its length per side, at least MIN_SIDE, in [0, n)."""
    side = hi - lo
    lo, hi = lo - margin * side, hi + margin * side
    need = min(float(n), float(MIN_SIDE))
    if hi - lo < need:  # exactly the smallest side, about the centre
        a = int(math.floor(0.5 * (lo + hi) - need / 2 + 0.5))
        b = a + int(need)
    else:
        a, b = int(math.floor(lo)), int(math.ceil(hi))
    if b > n:  # keep the side where the image allows: shift back in before clipping
        a, b = a - (b - n), n
    if a < 0:
        a, b = 0, b - a
    return max(0, a), min(n, max(b, a + 1))


def _order(xs: tuple[int, int], ys: tuple[int, int]) -> Window:
    return (xs[0], ys[0], xs[1], ys[1])


def is_full(window: Window | None, size_hw: tuple[int, int]) -> bool:
    """True when ``window`` is None or covers the whole image."""
    return window is None or tuple(window) == (0, 0, size_hw[1], size_hw[0])


def window_hw(window: Window) -> tuple[int, int]:
    """(height, width) of a window."""
    return window[3] - window[1], window[2] - window[0]


def crop(image: np.ndarray, window: Window) -> np.ndarray:
    """The pixels of ``window`` (a view of ``image``, any channel layout after H, W)."""
    x0, y0, x1, y1 = window
    return image[y0:y1, x0:x1]


def points_into(points_xy: np.ndarray, window: Window) -> np.ndarray:
    """(..., 2) image-pixel points in the window's own pixel frame."""
    return np.asarray(points_xy, np.float32) - np.array(window[:2], np.float32)


def box_into(box_xyxy: np.ndarray, window: Window) -> np.ndarray:
    """(4,) box in the window's own pixel frame."""
    off = np.array(window[:2] * 2, np.float32)
    return np.asarray(box_xyxy, np.float32).reshape(4) - off


def inside(points_xy: np.ndarray, window: Window) -> np.ndarray:
    """(N,) bool: which (N, 2) points lie in the window."""
    p = np.asarray(points_xy, np.float32).reshape(-1, 2)
    x0, y0, x1, y1 = window
    return (p[:, 0] >= x0) & (p[:, 0] < x1) & (p[:, 1] >= y0) & (p[:, 1] < y1)


def logits_box(logits: np.ndarray, window: Window) -> np.ndarray | None:
    """Image-pixel box (inclusive) of the positive cells of (s, s) low-res logits, or None.

    The logits cover ``window``; a cell's box is the image pixels it spans.
    """
    pos = np.asarray(logits).reshape(logits.shape[-2:]) > 0
    rows, cols = np.flatnonzero(pos.any(1)), np.flatnonzero(pos.any(0))
    if not len(rows):
        return None
    s_h, s_w = pos.shape
    wh, ww = window_hw(window)
    x0 = window[0] + cols[0] * ww / s_w
    x1 = window[0] + (cols[-1] + 1) * ww / s_w - 1
    y0 = window[1] + rows[0] * wh / s_h
    y1 = window[1] + (rows[-1] + 1) * wh / s_h - 1
    return np.array([x0, y0, x1, y1], np.float32)


def touches_inner_edge(
    box_xyxy: np.ndarray, window: Window, size_hw: tuple[int, int], share: float = EDGE_SHARE
) -> bool:
    """True when the box comes near an inner edge of the window.

    Near: within ``share`` of the window's side (plus a pixel). Inner: not the image's own
    border, beyond which the object cannot go on.
    """
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    wx0, wy0, wx1, wy1 = window
    wh, ww = window_hw(window)
    h, w = size_hw
    tx, ty = share * ww + 1.0, share * wh + 1.0
    return (
        (wx0 > 0 and x0 < wx0 + tx)
        or (wy0 > 0 and y0 < wy0 + ty)
        or (wx1 < w and x1 + 1.0 > wx1 - tx)
        or (wy1 < h and y1 + 1.0 > wy1 - ty)
    )


def resample_logits(
    logits: torch.Tensor,
    src: Window,
    dst: Window,
    outside: float = OUTSIDE_LOGIT,
) -> torch.Tensor:
    """Carry (..., s, s) low-res logits covering window ``src`` over to window ``dst``.

    Each cell of the result takes the bilinear value at its centre's image position in the
    source grid; cells outside ``src`` get ``outside`` (background).
    """
    if tuple(src) == tuple(dst):
        return logits
    s_h, s_w = logits.shape[-2:]
    lead = logits.shape[:-2]
    x = logits.reshape(1, -1, s_h, s_w).float()
    dev = x.device
    (sh, sw), (dh, dw) = window_hw(src), window_hw(dst)
    cx = dst[0] + (torch.arange(s_w, device=dev, dtype=torch.float32) + 0.5) * dw / s_w
    cy = dst[1] + (torch.arange(s_h, device=dev, dtype=torch.float32) + 0.5) * dh / s_h
    gx = (cx - src[0]) / sw * 2.0 - 1.0  # grid_sample's [-1, 1] over the source's edges
    gy = (cy - src[1]) / sh * 2.0 - 1.0
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    out = F.grid_sample(x - outside, grid, mode="bilinear", align_corners=False) + outside
    return out.reshape(*lead, s_h, s_w).to(logits.dtype)


def paste(masks: np.ndarray, window: Window, size_hw: tuple[int, int], fill=False) -> np.ndarray:
    """(..., h, w) masks (or logits) of a window placed into (..., H, W) filled with ``fill``."""
    out = np.full((*masks.shape[:-2], *size_hw), fill, dtype=masks.dtype)
    x0, y0, x1, y1 = window
    out[..., y0:y1, x0:x1] = masks
    return out
