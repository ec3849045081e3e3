"""Image and coordinate transforms between the original image frame and the model input frame.

Naming: ``_orig`` = pixels of the user's image, ``_input`` = pixels of the square model input
(S x S, S = ``cfg.image_size``; SAM 2 squashes without keeping the aspect ratio).  SAM works in
(x, y); napari in (row, col) = (y, x): :func:`yx_to_xy` is the one place that flips.
"""

from __future__ import annotations

import numpy as np
import torch
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
