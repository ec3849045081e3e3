"""Label images: PNG (palette or 16-bit) and TIFF (2-D or stacks), and mask/label conversion.

A label image holds one integer id per pixel, 0 = background. Up to 255 ids are written as a
palette PNG with the VOC/DAVIS colour map (what SAM 2's trainer reads); more as a 16-bit PNG.
TIFF goes through tifffile (zlib-compressed) and also holds (Z, H, W) stacks.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sam_pets._atomic import atomic_write_bytes
from sam_pets.data.errors import BadInputError

_TIFF_SUFFIXES = (".tif", ".tiff")


def voc_palette() -> list[int]:
    """The 256-entry VOC/DAVIS colour map as a flat ``[r0, g0, b0, r1, ...]`` list."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


_PALETTE = voc_palette()


def labels_to_masks(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a label map into per-object masks.

    Args:
        labels: (H, W) integer label map, 0 = background.

    Returns:
        ids: (K,) int64 sorted non-zero ids.
        masks: (K, H, W) bool, ``masks[k] == (labels == ids[k])``.
    """
    labels = np.asarray(labels)
    ids = np.unique(labels)
    ids = ids[ids != 0].astype(np.int64)
    masks = np.zeros((len(ids), *labels.shape), dtype=bool)
    for k, i in enumerate(ids):
        np.equal(labels, i, out=masks[k])
    return ids, masks


def masks_to_labels(
    masks: np.ndarray, ids: np.ndarray | list[int], areas: np.ndarray | None = None
) -> np.ndarray:
    """Flatten per-object masks into one label map.

    Where masks overlap the smaller object wins (larger objects are painted first), so small
    objects on top of large ones (a window on a facade) stay visible.

    Args:
        masks: (K, H, W) bool.
        ids: (K,) ids, each in 1..65535.
        areas: (K,) pixel counts of the masks if already known (computed otherwise).

    Returns:
        (H, W) uint8 label map if every id is <= 255, else uint16.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) and (ids.min() < 1 or ids.max() > 65535):
        raise ValueError(f"object ids must be in 1..65535, got {ids.min()}..{ids.max()}")
    dtype = np.uint8 if not len(ids) or ids.max() <= 255 else np.uint16
    labels = np.zeros(masks.shape[1:], dtype=dtype)
    if areas is None:
        areas = masks.reshape(len(ids), -1).sum(axis=1)
    order = np.argsort(-np.asarray(areas), kind="stable")
    for k in order:
        labels[masks[k]] = ids[k]
    return labels


def encode_label_png(labels: np.ndarray) -> bytes:
    """PNG bytes of a (H, W) label map: palette PNG if ids <= 255, else 16-bit greyscale."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a PNG label image must be 2-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise ValueError("PNG label ids must be in 0..65535")
    buf = io.BytesIO()
    if not labels.size or labels.max() <= 255:
        img = Image.fromarray(labels.astype(np.uint8), mode="P")
        img.putpalette(_PALETTE)
    else:
        img = Image.fromarray(labels.astype(np.uint16))
    img.save(buf, format="PNG", optimize=False, compress_level=3)
    return buf.getvalue()


def decode_label_png(data: bytes, name: str = "labels") -> np.ndarray:
    """Decode a label PNG (palette, 8-bit or 16-bit greyscale) to an (H, W) integer array."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode not in ("P", "L", "1", "I", "I;16", "I;16B", "I;16L"):
                raise BadInputError(f"{name}: label image must be single-channel, got {img.mode}")
            arr = np.asarray(img)
    except UnidentifiedImageError:
        raise BadInputError(f"{name}: not a readable image") from None
    except (OSError, SyntaxError) as e:
        raise BadInputError(f"{name}: corrupt or truncated label image ({e})") from None
    return arr.astype(np.uint8) if arr.dtype == bool else arr


def read_label_image(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG or TIFF label image.

    Args:
        path: ``.png`` (2-D) or ``.tif``/``.tiff`` (2-D or a (Z, H, W) stack).

    Returns:
        (H, W) or (Z, H, W) integer array.
    """
    path = Path(path)
    if path.suffix.lower() in _TIFF_SUFFIXES:
        import tifffile

        try:
            arr = tifffile.imread(path)
        except FileNotFoundError:
            raise BadInputError(f"label image not found: {path}") from None
        except Exception as e:
            raise BadInputError(f"{path.name}: corrupt TIFF ({e})") from None
        if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != bool:
            raise BadInputError(f"{path.name}: label TIFF must be integer, got {arr.dtype}")
        return arr
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInputError(f"label image not found: {path}") from None
    return decode_label_png(data, path.name)


def write_label_image(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Atomically write a label image; the format follows the suffix.

    Args:
        path: ``.png`` for a (H, W) map; ``.tif``/``.tiff`` for (H, W) or (Z, H, W).
        labels: Integer (or bool) array, 0 = background.
    """
    path = Path(path)
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer, got {labels.dtype}")
    if path.suffix.lower() in _TIFF_SUFFIXES:
        import tifffile

        if labels.ndim not in (2, 3):
            raise ValueError(f"a TIFF label image must be 2-D or 3-D, got shape {labels.shape}")
        buf = io.BytesIO()
        # minisblack: a 3- or 4-slice stack is otherwise stored as RGB(A) planes
        tifffile.imwrite(buf, labels, compression="zlib", photometric="minisblack")
        atomic_write_bytes(path, buf.getvalue())
    elif path.suffix.lower() == ".png":
        atomic_write_bytes(path, encode_label_png(labels))
    else:
        raise ValueError(f"unsupported label image suffix {path.suffix!r} (use .png or .tif)")
