"""Copy-paste augmentation: an image's objects pasted onto another background.

The objects (their masks plus the ignored band around them, where the pixels mix object and
background, as the Oxford trimap border) are blended onto a background with a softened edge;
the targets do not change. A background is either a photo from a folder of images that hold
no object of interest (e.g. the facade photos), or the largest strip of another item that
lies beside its objects' box (a floor, a sofa, a lawn: real backgrounds of the same domain).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from sam_pets.data.imaging import decode_image, read_bytes, to_rgb_uint8

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
# A strip beside the objects is used only when it holds this share of the image's area.
MIN_STRIP_SHARE = 0.15


def load_backgrounds(
    folders: Sequence[str | os.PathLike], max_side: int | None = None
) -> list[np.ndarray]:
    """RGB uint8 images of the files in ``folders`` (not recursive), shrunk to ``max_side``.

    Raises:
        ValueError: a folder does not exist or holds no readable image (naming it). Single
            unreadable files are skipped.
    """
    out: list[np.ndarray] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise ValueError(f"{root}: background folder not found")
        found = 0
        for path in sorted(root.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                rgb, _ = to_rgb_uint8(decode_image(read_bytes(path), str(path)))
            except (OSError, ValueError):
                continue
            out.append(_fit(rgb, max_side))
            found += 1
        if not found:
            raise ValueError(f"{root}: no readable image to use as a background")
    return out


def _fit(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = rgb.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return rgb
    return resize_rgb(rgb, (round(h * max_side / max(h, w)), round(w * max_side / max(h, w))))


def resize_rgb(rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 resized to ``size_hw`` (bilinear, antialiased)."""
    from torchvision.transforms.v2 import functional as TF

    t = torch.from_numpy(np.array(rgb, copy=True) if not rgb.flags.writeable else rgb)
    t = t.permute(2, 0, 1)
    size = [max(1, int(size_hw[0])), max(1, int(size_hw[1]))]
    return TF.resize(t, size, antialias=True).permute(1, 2, 0).contiguous().numpy()


def free_strip(image: np.ndarray, objects: np.ndarray) -> np.ndarray | None:
    """The largest of the four strips of ``image`` beside the box of ``objects``.

    Args:
        image: (H, W, 3) pixels.
        objects: (H, W) bool pixels of objects (and their uncertain band).

    Returns:
        The strip's pixels, or None when none holds :data:`MIN_STRIP_SHARE` of the image.
    """
    h, w = objects.shape
    rows, cols = np.flatnonzero(objects.any(1)), np.flatnonzero(objects.any(0))
    if not len(rows):
        return image
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    strips = [
        (y0 * w, (slice(0, y0), slice(0, w))),
        ((h - y1) * w, (slice(y1, h), slice(0, w))),
        (x0 * h, (slice(0, h), slice(0, x0))),
        ((w - x1) * h, (slice(0, h), slice(x1, w))),
    ]
    area, where = max(strips, key=lambda s: s[0])
    if area < MIN_STRIP_SHARE * h * w:
        return None
    return image[where]


def paste(image: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``image`` where ``alpha`` is set, ``background`` (resized to fit) elsewhere.

    Args:
        image: (H, W, 3) uint8.
        alpha: (H, W) bool pixels to keep (objects and their uncertain band).
        background: (h, w, 3) uint8, any size.

    Returns:
        (H, W, 3) uint8; the edge is softened over a pixel or so on each side.
    """
    h, w = alpha.shape
    bg = background if background.shape[:2] == (h, w) else resize_rgb(background, (h, w))
    a = ndimage.uniform_filter(alpha.astype(np.float32), size=3)
    a = np.maximum(a, ndimage.binary_erosion(alpha)).astype(np.float32)[..., None]
    out = image.astype(np.float32) * a + bg.astype(np.float32) * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def random_crop(background: np.ndarray, aspect: float, gen: torch.Generator | None = None):
    """A random crop of ``background`` with the aspect ratio (W / H) of the target."""
    h, w = background.shape[:2]
    if w / h > aspect:
        cw, ch = max(1, round(h * aspect)), h
    else:
        cw, ch = w, max(1, round(w / aspect))
    scale = 0.6 + 0.4 * float(torch.rand((), generator=gen))
    cw, ch = max(1, round(cw * scale)), max(1, round(ch * scale))
    x = int(torch.randint(w - cw + 1, (), generator=gen))
    y = int(torch.randint(h - ch + 1, (), generator=gen))
    return background[y : y + ch, x : x + cw]
