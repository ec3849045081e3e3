"""COCO run-length encoding helpers (pycocotools), JSON-ready."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def encode_rle(mask: np.ndarray) -> dict:
    """Compressed RLE of a (H, W) bool mask, with ``counts`` as a str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict) -> np.ndarray:
    """(H, W) bool mask of a compressed (str/bytes counts) or uncompressed (list) RLE."""
    h, w = (int(s) for s in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    elif isinstance(counts, str):
        rle = {"size": [h, w], "counts": counts.encode("ascii")}
    return np.ascontiguousarray(mask_utils.decode(rle).view(bool))


def _bytes_rle(rle: dict) -> dict:
    counts = rle["counts"]
    if isinstance(counts, str):
        return {"size": rle["size"], "counts": counts.encode("ascii")}
    return rle


def rle_area(rle: dict) -> int:
    """Pixel count of a compressed RLE."""
    return int(mask_utils.area(_bytes_rle(rle)))


def rle_bbox(rle: dict) -> list[float]:
    """COCO ``[x, y, width, height]`` of a compressed RLE."""
    return [float(v) for v in mask_utils.toBbox(_bytes_rle(rle))]


def bbox_xywh(mask: np.ndarray) -> list[float]:
    """COCO ``[x, y, width, height]`` of a (H, W) bool mask (zeros if empty)."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return [0.0, 0.0, 0.0, 0.0]
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)]
