"""Reading images from disk for the predictor and the CLI (PNG, JPEG, TIFF, ...)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# Image file types read from folders (segment everything, frames of a stack).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file and the reason."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as an array: (H, W) or (H, W, C), dtype as stored (uint8, uint16...).

    TIFF goes through tifffile (first page / first plane of a stack), everything else
    through Pillow (format detected from the content, not the extension).

    Pillow's decompression-bomb guard stays on: an image of more than twice
    ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (about 179 MP by default) is refused; the model sees
    it at 1024 px anyway.  A caller that really needs bigger images raises that limit itself.

    Raises:
        ImageReadError: missing file, a folder, unreadable content or an oversized image.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            a = tifffile.imread(path)
        except Exception as e:  # tifffile raises many types for corrupt files
            raise ImageReadError(f"{path}: not a readable TIFF: {e}") from None
        while a.ndim > 3 or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
            a = a[0]
        return a
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(im, dtype=np.uint16)
            if im.mode not in ("L", "RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
            return np.asarray(im)
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: image too large to read safely ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: not a readable image ({e})") from None
