"""Robust image loading and the rule that turns any image into canonical RGB uint8.

Conversion rule (applied to every image that is not already an 8-bit RGB JPEG):

1. The real format is sniffed from the file's bytes, never taken from its extension; a GIF or
   PNG named ``.jpg`` is decoded as what it is (first frame of animations and multi-page files).
   TIFF files are read with tifffile, everything else with Pillow.
2. Channels: (H, W) and (H, W, 1) are greyscale and replicated to RGB; (H, W, 2) is greyscale
   plus alpha; (H, W, 4) is RGBA; palette images are expanded first; CMYK, YCbCr, LAB and HSV
   are converted to RGB by Pillow (no ICC colour management).
3. Values: ``bool`` becomes 0/255; ``uint8`` is kept; floats in [0, 1] are scaled by 255; any
   other dtype (16-bit, 32-bit, floats outside [0, 1]) is stretched linearly from the image's
   own min..max to 0..255 (a constant image becomes 0). NaNs count as 0.
4. Alpha is composited over black: ``rgb * alpha / max_alpha``.
5. The canonical JPEG is the source's own bytes when the source is an 8-bit RGB JPEG without an
   EXIF rotation (lossless, fast); otherwise the converted pixels re-encoded at quality 95.
   Pixel order is the stored order: EXIF orientation is never applied (as in SAM 2's loaders).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sam_pets.data.errors import BadInputError

JPEG_QUALITY = 95
_EXIF_ORIENTATION = 0x0112
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass(frozen=True)
class CanonicalImage:
    """A source image ready to be stored in a canonical dataset.

    Attributes:
        jpeg: Bytes of the canonical JPEG.
        size_hw: (H, W) of the image in pixels.
        notes: What was converted, e.g. ``("PNG named .jpg", "alpha composited over black")``.
    """

    jpeg: bytes
    size_hw: tuple[int, int]
    notes: tuple[str, ...] = ()


def sniff_format(data: bytes) -> str:
    """Short format name from the first bytes: ``JPEG``, ``PNG``, ``GIF``, ``TIFF`` or ``?``."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] in _TIFF_MAGIC:
        return "TIFF"
    return "?"


def read_bytes(path: str | os.PathLike) -> bytes:
    """Read a file, turning a missing or unreadable file into :class:`BadInputError`."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise BadInputError(f"image not found: {path}") from None
    except OSError as e:
        raise BadInputError(f"cannot read {path}: {e.strerror or e}") from None


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode image bytes to an array of the file's own dtype and channels.

    Args:
        data: Encoded file contents.
        name: Used in error messages.

    Returns:
        (H, W) or (H, W, C) array.

    Raises:
        BadInputError: Empty, unknown, corrupt or truncated data.
    """
    if not data:
        raise BadInputError(f"{name}: empty file")
    if sniff_format(data) == "TIFF":
        return _decode_tiff(data, name)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return _pil_to_array(img)
    except UnidentifiedImageError:
        raise BadInputError(f"{name}: not a readable image") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadInputError(f"{name}: corrupt or truncated image ({e})") from None


def _decode_tiff(data: bytes, name: str) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            return tif.pages[0].asarray()
    except Exception as e:  # tifffile raises many types for broken files
        raise BadInputError(f"{name}: corrupt TIFF ({e})") from None


def _pil_to_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    elif img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("La", "RGBa", "PA"):
        img = img.convert("RGBA")
    try:
        return np.asarray(img)
    except (TypeError, ValueError):  # a raw mode numpy cannot express
        return np.asarray(img.convert("RGB"))


def to_rgb_uint8(image: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Apply the module's conversion rule to an image array.

    Args:
        image: (H, W) or (H, W, C) with C in 1..4, any numeric or bool dtype.

    Returns:
        (H, W, 3) uint8 RGB array and notes on what was changed (empty if nothing was).

    Raises:
        BadInputError: Unsupported shape.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise BadInputError(f"unsupported image shape {arr.shape}; expected (H, W[, 1-4])")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise BadInputError(f"empty image of shape {arr.shape}")
    notes: list[str] = []
    colour, alpha = _split_alpha(arr)
    rgb = _scale_to_uint8(colour, notes)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
        notes.append("greyscale replicated to RGB")
    if alpha is not None:
        a = _alpha_fraction(alpha)
        rgb = np.rint(rgb.astype(np.float32) * a[..., None]).astype(np.uint8)
        notes.append("alpha composited over black")
    return np.ascontiguousarray(rgb), tuple(notes)


def _split_alpha(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if arr.ndim == 3 and arr.shape[2] == 2:
        return arr[..., 0], arr[..., 1]
    if arr.ndim == 3 and arr.shape[2] == 4:
        return arr[..., :3], arr[..., 3]
    return arr, None


def _scale_to_uint8(arr: np.ndarray, notes: list[str]) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        notes.append("binary image scaled to 0/255")
        return arr.astype(np.uint8) * 255
    values = np.nan_to_num(arr.astype(np.float64))
    lo, hi = float(values.min()), float(values.max())
    if np.issubdtype(arr.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        notes.append("float image in [0, 1] scaled by 255")
        return np.rint(values * 255).astype(np.uint8)
    notes.append(f"{arr.dtype} image stretched from [{lo:g}, {hi:g}] to 8-bit")
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8)
    return np.rint((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _alpha_fraction(alpha: np.ndarray) -> np.ndarray:
    if alpha.dtype == bool:
        return alpha.astype(np.float32)
    if np.issubdtype(alpha.dtype, np.integer):
        return alpha.astype(np.float32) / float(np.iinfo(alpha.dtype).max)
    return np.clip(np.nan_to_num(alpha.astype(np.float32)), 0.0, 1.0)


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Encode an (H, W, 3) uint8 array as JPEG bytes."""
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def load_canonical_image(path: str | os.PathLike) -> CanonicalImage:
    """Read a source image file and produce its canonical JPEG (see the module rule).

    Args:
        path: Any image file (JPEG, PNG, GIF, TIFF, BMP, ...).

    Returns:
        The canonical image; ``notes`` explains any conversion.

    Raises:
        BadInputError: Missing, corrupt, truncated or unsupported image.
    """
    data = read_bytes(path)
    fmt = sniff_format(data)
    name = Path(path).name
    notes: list[str] = []
    suffix = Path(path).suffix.lower()
    if suffix in (".jpg", ".jpeg") and fmt not in ("JPEG", "?"):
        notes.append(f"{fmt} named {suffix}")
    if fmt == "JPEG":
        direct, why = _jpeg_as_is(data, name)
        if direct is not None:
            return CanonicalImage(data, direct, tuple(notes))
        notes.append(why)
    rgb, conv_notes = to_rgb_uint8(decode_image(data, name))
    notes.extend(conv_notes)
    return CanonicalImage(encode_jpeg(rgb), rgb.shape[:2], tuple(notes))


def _jpeg_as_is(data: bytes, name: str) -> tuple[tuple[int, int] | None, str]:
    """(H, W) if ``data`` is a decodable RGB JPEG usable byte for byte, else None and why."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.mode != "RGB":
                return None, f"{img.mode} JPEG re-encoded as RGB"
            if img.getexif().get(_EXIF_ORIENTATION, 1) in range(2, 9):
                return None, "re-encoded without its EXIF rotation (pixels kept in stored order)"
            img.load()
            return (img.height, img.width), ""
    except UnidentifiedImageError:
        raise BadInputError(f"{name}: not a readable image") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadInputError(f"{name}: corrupt or truncated image ({e})") from None


def image_size_hw(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of an image file from its header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except FileNotFoundError:
        raise BadInputError(f"image not found: {path}") from None
    except (OSError, UnidentifiedImageError) as e:
        raise BadInputError(f"{Path(path).name}: not a readable image ({e})") from None
