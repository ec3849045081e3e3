"""Image and coordinate transforms between the original image frame and the model input frame.

Naming: ``_orig`` = pixels of the user's image, ``_input`` = pixels of the square model input
(S x S, S = ``cfg.image_size``; SAM 2 squashes without keeping the aspect ratio).  SAM works in
(x, y); napari in (row, col) = (y, x): :func:`yx_to_xy` is the one place that flips.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF


def yx_to_xy(points_yx: np.ndarray) -> np.ndarray:
    """Swap (row, col) napari coordinates to (x, y) SAM coordinates, shape (..., 2)."""
    return np.asarray(points_yx, dtype=np.float64)[..., ::-1].copy()


def xy_to_yx(points_xy: np.ndarray) -> np.ndarray:
    """Inverse of :func:`yx_to_xy`."""
    return np.asarray(points_xy, dtype=np.float64)[..., ::-1].copy()


def to_float_rgb(image: np.ndarray) -> np.ndarray:
    """Convert an image to float32 RGB in [0, 1], shape (H, W, 3).

    Accepted: (H, W) greyscale, (H, W, 1), (H, W, 3) RGB, (H, W, 4) RGBA (alpha dropped).
    Value rule: uint8 is divided by 255 (as Meta's predictor does); other integer types
    (uint16 microscopy, int32 ...) and floats outside [0, 1] are min-max stretched to [0, 1];
    floats already in [0, 1] are kept.  A constant image maps to zeros.

    Raises:
        ValueError: for any other shape, or for non-finite values.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(
            f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {a.shape}"
        )
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"empty image of shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == bool:
        return a.astype(np.float32)
    f = a.astype(np.float32)
    if not np.isfinite(f).all():
        raise ValueError("image contains NaN or infinite values")
    if np.issubdtype(a.dtype, np.floating) and f.min() >= 0.0 and f.max() <= 1.0:
        return f
    lo, hi = float(f.min()), float(f.max())
    if hi <= lo:
        return np.zeros_like(f)
    return (f - lo) / (hi - lo)


def preprocess(image: np.ndarray, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Image (any accepted layout) -> (1, 3, size, size) float tensor in [0, 1], squashed.

    The resize is bilinear with antialiasing (torchvision's default), as in Meta's predictor.
    """
    rgb = to_float_rgb(image)
    x = torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)  # (3, H, W)
    x = TF.resize(x, [size, size], antialias=True)
    return x.unsqueeze(0)  # (1, 3, S, S)


def coords_orig_to_input(
    coords_xy: torch.Tensor, orig_hw: tuple[int, int], size: int
) -> torch.Tensor:
    """Scale (..., 2) (x, y) pixel coordinates of the original image to the model input."""
    h, w = orig_hw
    scale = coords_xy.new_tensor([size / w, size / h])
    return coords_xy * scale


# Outputs from this many pixels on (per mask) take the sign-change path of upsample_masks on a
# CPU; below it one plain interpolation is as fast.
LARGE_MASK_PIXELS = 1 << 20


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Source index and the weight of the next source, per output pixel, in float32.

    The rule of ``F.interpolate(..., mode="bilinear", align_corners=False)`` along one axis.
    """
    scale = np.float32(n_in) / np.float32(n_out)
    src = scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    w1 = src - i0.astype(np.float32)
    return i0, w1


def _plain_masks(logits: torch.Tensor, hw: tuple[int, int]) -> np.ndarray:
    h, w = logits.shape[-2:]
    lg = logits.float().reshape(-1, 1, h, w)
    out = F.interpolate(lg, hw, mode="bilinear", align_corners=False) > 0
    return out.reshape(*logits.shape[:-2], *hw).cpu().numpy()


def upsample_masks(logits: torch.Tensor, hw: tuple[int, int]) -> np.ndarray:
    """``F.interpolate(logits, hw, mode="bilinear") > 0`` as a bool array, fast for big images.

    Args:
        logits: (..., h, w) low-res mask logits (any device).
        hw: Output (H, W).

    Returns:
        bool (..., H, W) numpy array.

    On a CPU, outputs of :data:`LARGE_MASK_PIXELS` pixels or more are built without
    interpolating every pixel.  The low-res rows are interpolated along x first (h x W values).
    Along y, an output pixel between two source rows is a convex combination of them: where
    both have the same sign it has that sign, and where they differ its sign changes once, at a
    weight found from the two values.  So every output row is copied from its nearest source
    row, and only the pixels between each sign change and the half-way row are flipped.  The
    result equals the plain one except where a value is within float32 rounding (relative to
    the neighbouring logits) of zero.  Noise-like logits (many sign changes, e.g. an untrained
    model) take the plain path.
    """
    h, w = logits.shape[-2:]
    height, width = hw
    if logits.device.type != "cpu" or height * width < LARGE_MASK_PIXELS or h < 2:
        return _plain_masks(logits, hw)
    lg = logits.float().reshape(1, -1, w)
    rows = F.interpolate(lg, size=width, mode="linear", align_corners=False)
    rows = rows.reshape(-1, h, width).numpy()  # (N, h, W): interpolated along x
    pos = rows > 0
    changes = pos[:, :-1] != pos[:, 1:]  # sign changes between rows k and k+1
    # each change costs some bookkeeping and flips ~a quarter of its rows: with noise-like
    # masks (many changes, e.g. an untrained model) interpolating everything is cheaper
    if np.count_nonzero(changes) * (height / h / 4 + 8) > len(pos) * height * width / 8:
        return _plain_masks(logits, hw)
    y0, wy1 = _linear_taps(h, height)
    # every output row copied from its nearest source row; torch allocates the big result:
    # numpy asks for transparent huge pages for it, which stalled clicks in napari (~2x)
    near = torch.from_numpy(np.minimum(y0 + (wy1 >= 0.5), h - 1))
    out = torch.from_numpy(pos)[:, near].numpy()
    n, k, x = np.nonzero(changes)
    if len(n):
        r0, r1 = rows[n, k, x].astype(np.float64), rows[n, k + 1, x].astype(np.float64)
        up = r0 > 0
        t = r0 / (r0 - r1)  # from weight t on (past t when r0 <= 0) the sign is row k+1's
        # y0 + weight increases along the output rows: sorted searches find the rows
        key = y0 + wy1.astype(np.float64)
        # (a row exactly on source row k, weight 0, keeps its sign even when k + t rounds to k)
        cross = np.where(
            up,
            np.maximum(np.searchsorted(key, k + t, "left"), np.searchsorted(key, k, "right")),
            np.searchsorted(key, k + t, "right"),
        )
        cross = np.minimum(cross, np.searchsorted(y0, k, "right"))  # within source row k
        mid = np.searchsorted(key, k + 0.5, "left")  # first row copied from row k+1
        lo, length = np.minimum(cross, mid), np.abs(cross - mid)
        value = np.where(cross < mid, ~up, up)  # [cross, mid) gets row k+1's sign, else k's
        first = (n * height + lo) * width + x  # flat index of each run's first pixel
        seg = np.repeat(np.arange(len(first)), length)
        step = np.arange(len(seg)) - np.repeat(np.cumsum(length) - length, length)
        out.reshape(-1)[first[seg] + step * width] = value[seg]
    return out.reshape(*logits.shape[:-2], height, width)
