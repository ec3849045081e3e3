"""Copy-paste augmentation: an image's objects pasted onto another background.

The objects (their masks plus the ignored band around them, where the pixels mix object and
background, as the Oxford trimap border) are blended onto a background with a softened edge;
the targets do not change. A background is either a photo from a folder of images that hold
no object of interest (e.g. the facade photos), or the largest strip of another item that
lies beside its objects' box (a floor, a sofa, a lawn: real backgrounds of the same domain).

:func:`paste_objects` does the opposite: it pastes objects cut from other items onto an
image, at a random size and place, as new objects. An image then holds several objects, and a
click on one of them asks for that one, not for the most salient.
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


def cut_out(
    image: np.ndarray, mask: np.ndarray, ignore: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """An object to paste elsewhere: its pixels, mask and band, cropped to their box.

    Args:
        image: (H, W, 3) uint8.
        mask: (H, W) bool, the object.
        ignore: (H, W) bool ignored pixels; those within 2 pixels of the object are its band
            (fur at a pet's edge) and go with it.

    Returns:
        ``(rgb, core, band)`` cropped to the box of ``core | band``, or None for an empty mask.
    """
    if not mask.any():
        return None
    band = ignore & ~mask & ndimage.binary_dilation(mask, iterations=2)
    alpha = mask | band
    rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return image[box], mask[box], band[box]


def _resize_bool(mask: np.ndarray, size_hw: tuple[int, int], any_pixel: bool) -> np.ndarray:
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    area = torch.nn.functional.interpolate(t, size=size_hw, mode="area")[0, 0].numpy()
    return area > 0 if any_pixel else area >= 0.5


def paste_objects(
    image: np.ndarray,
    masks: np.ndarray,
    ignore: np.ndarray,
    pieces: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    side_range: tuple[float, float] = (0.15, 0.6),
    gen: torch.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste ``pieces`` (from :func:`cut_out`) onto ``image`` as new objects.

    Each piece is scaled so that its longer side is a random fraction (``side_range``) of the
    image's shorter side, flipped half of the time and put at a random place inside the
    image. It occludes what it covers: those pixels leave the other objects and the ignore
    mask; its own band becomes ignored.

    Args:
        image: (H, W, 3) uint8.
        masks: (K, H, W) bool objects.
        ignore: (H, W) bool.
        pieces: ``(rgb, core, band)`` cut-outs of any size.
        side_range: Range of the pasted piece's longer side over the image's shorter side.
        gen: Random generator (torch's global one when None).

    Returns:
        ``(image, masks, ignore)`` with K + len(pieces) masks (pasted ones last; a piece too
        small to keep a pixel of its object adds an empty mask).
    """
    h, w = ignore.shape
    masks = np.array(masks, dtype=bool, copy=True).reshape(-1, h, w)
    ignore = np.array(ignore, dtype=bool, copy=True)
    lo, hi = side_range
    for rgb, core, band in pieces:
        ph, pw = core.shape
        side = (lo + (hi - lo) * float(torch.rand((), generator=gen))) * min(h, w)
        scale = min(side / max(ph, pw), h / ph, w / pw)
        size = (max(1, min(h, round(ph * scale))), max(1, min(w, round(pw * scale))))
        rgb_r = resize_rgb(rgb, size)
        core_r = _resize_bool(core, size, any_pixel=False)
        alpha_r = _resize_bool(core | band, size, any_pixel=True) | core_r
        if float(torch.rand((), generator=gen)) < 0.5:
            rgb_r, core_r, alpha_r = rgb_r[:, ::-1], core_r[:, ::-1], alpha_r[:, ::-1]
        y = int(torch.randint(h - size[0] + 1, (), generator=gen))
        x = int(torch.randint(w - size[1] + 1, (), generator=gen))
        where = (slice(y, y + size[0]), slice(x, x + size[1]))
        alpha = np.zeros((h, w), bool)
        alpha[where] = alpha_r
        new = np.zeros((h, w), bool)
        new[where] = core_r
        layer = np.zeros_like(image)
        layer[where] = rgb_r
        image = paste(layer, alpha, image)
        masks &= ~alpha[None]
        ignore = (ignore & ~alpha) | (alpha & ~new)
        masks = np.concatenate([masks, new[None]])
    return image, masks, ignore


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
