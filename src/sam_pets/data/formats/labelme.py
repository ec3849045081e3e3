"""LabelMe JSON reader: polygons, rectangles and circles into instance masks.

Shapes are rasterised with Pillow exactly as labelme's ``shape_to_mask`` does (filled, with
the outline included); labelme 5's ``mask`` shapes (a base64 PNG of the box between the two
points) are pasted in place. Shapes with the same ``(label, group_id)`` and a non-null
``group_id`` are parts of one instance; a shape with ``group_id: null`` is its own instance.
Shapes labelled ``__ignore__`` form the ignore region. Lines, points and unknown shape types
carry no area and are skipped with a note.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sam_pets.data.errors import BadInputError
from sam_pets.data.types import Annotation, ObjectInfo

IGNORE_LABEL = "__ignore__"
BACKGROUND_LABEL = "_background_"
_AREA_SHAPES = ("polygon", "rectangle", "circle", "mask")


def parse_labelme(text: str | bytes, name: str = "labelme") -> dict:
    """Parse and validate a LabelMe JSON document.

    Raises:
        BadInputError: Not JSON, or no ``shapes`` list, or neither ``imagePath`` nor
            ``imageData``.
    """
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInputError(f"{name}: malformed JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise BadInputError(f"{name}: not a LabelMe file (no 'shapes' list)")
    if not isinstance(doc.get("imagePath"), str) and not isinstance(doc.get("imageData"), str):
        raise BadInputError(f"{name}: needs 'imagePath' or 'imageData'")
    return doc


def image_source(doc: dict, json_path: str | os.PathLike) -> Path | bytes:
    """The image of a LabelMe file: ``imagePath`` (relative to the JSON) or ``imageData``.

    The embedded ``imageData`` bytes are used only when the ``imagePath`` file is absent.
    """
    rel = doc.get("imagePath")
    if isinstance(rel, str) and rel:
        path = Path(json_path).parent / rel.replace("\\", "/")
        if path.is_file() or not isinstance(doc.get("imageData"), str):
            return path
    try:
        return base64.b64decode(doc["imageData"], validate=True)
    except (ValueError, TypeError):
        raise BadInputError("imageData is not valid base64") from None


def shape_to_mask(shape: dict, size_hw: tuple[int, int]) -> np.ndarray:
    """Rasterise one polygon, rectangle, circle or mask shape to an (H, W) bool mask.

    Raises:
        BadInputError: Unsupported type, or too few / non-numeric points.
    """
    kind = shape.get("shape_type") or "polygon"
    pts = _points(shape.get("points"))
    need = 3 if kind == "polygon" else 2
    if kind not in _AREA_SHAPES:
        raise BadInputError(f"shape type {kind!r} has no area")
    if len(pts) < need:
        raise BadInputError(f"{kind} with {len(pts)} points (needs >= {need})")
    if kind == "mask":
        return _paste_mask(shape.get("mask"), pts, size_hw)
    img = Image.new("1", (size_hw[1], size_hw[0]), 0)
    draw = ImageDraw.Draw(img)
    if kind == "polygon":
        draw.polygon(pts, outline=1, fill=1)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = pts[:2]
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    else:
        (cx, cy), (px, py) = pts[:2]
        r = math.hypot(px - cx, py - cy)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    return np.asarray(img, dtype=bool)


def _paste_mask(b64, pts: list[tuple[float, float]], size_hw: tuple[int, int]) -> np.ndarray:
    if not isinstance(b64, str):
        raise BadInputError("mask shape without a base64 'mask'")
    try:
        with Image.open(io.BytesIO(base64.b64decode(b64, validate=True))) as img:
            crop = np.asarray(img.convert("L")) > 0
    except (ValueError, OSError) as e:
        raise BadInputError(f"mask shape: unreadable mask image ({e})") from None
    (x0, y0), (x1, y1) = ((int(x), int(y)) for x, y in pts[:2])
    if (
        crop.shape != (y1 - y0 + 1, x1 - x0 + 1)
        or min(x0, y0) < 0
        or y1 >= size_hw[0]
        or (x1 >= size_hw[1])
    ):
        raise BadInputError(
            f"mask shape: {crop.shape[1]}x{crop.shape[0]} mask does not fit the "
            f"box ({x0}, {y0})-({x1}, {y1}) in the image"
        )
    out = np.zeros(size_hw, bool)
    out[y0 : y1 + 1, x0 : x1 + 1] = crop
    return out


def _points(raw) -> list[tuple[float, float]]:
    if not isinstance(raw, list):
        raise BadInputError("'points' must be a list of [x, y]")
    out = []
    for p in raw:
        if (
            not isinstance(p, (list, tuple))
            or len(p) != 2
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in p)
        ):
            raise BadInputError("'points' must be a list of finite [x, y]")
        out.append((float(p[0]), float(p[1])))
    return out


def instance_key(shape: dict, index: int) -> tuple:
    """Shapes with equal keys are one instance: ``(label, group_id)``, or unique if null."""
    gid = shape.get("group_id")
    if gid is None:
        return (shape.get("label"), None, index)
    return (shape.get("label"), json.dumps(gid), None)


def read_labelme(
    doc: dict, size_hw: tuple[int, int], name: str, label_ids: dict[str, int] | None = None
) -> tuple[Annotation, list[str]]:
    """Instance masks and ignore region of a parsed LabelMe document.

    Args:
        doc: Output of :func:`parse_labelme`.
        size_hw: (H, W) of the decoded image; checked against ``imageHeight/imageWidth``.
        name: Item name.
        label_ids: Optional label -> category id (from ``labels.txt``).

    Returns:
        The annotation (ids 1..K in order of first appearance) and notes on skipped shapes.

    Raises:
        BadInputError: Size mismatch, or no usable instance.
    """
    h, w = size_hw
    dh, dw = doc.get("imageHeight"), doc.get("imageWidth")
    if dh is not None and dw is not None and (dh, dw) != (h, w):
        raise BadInputError(f"JSON says {dw}x{dh} (WxH) but the image file is {w}x{h}")
    groups: dict[tuple, np.ndarray] = {}
    labels: dict[tuple, str] = {}
    ignore = np.zeros(size_hw, bool)
    notes = []
    for i, shape in enumerate(doc["shapes"]):
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
            notes.append(f"shape {i} skipped: no label")
            continue
        try:
            mask = shape_to_mask(shape, size_hw)
        except BadInputError as e:
            notes.append(f"shape {i} ({shape['label']}) skipped: {e}")
            continue
        if shape["label"] == IGNORE_LABEL:
            ignore |= mask
            continue
        key = instance_key(shape, i)
        groups[key] = groups[key] | mask if key in groups else mask
        labels[key] = shape["label"]
    keys = [k for k in groups if groups[k].any() and labels[k] != BACKGROUND_LABEL]
    if not keys:
        raise BadInputError("no usable shapes" + (f" ({notes[0]})" if notes else ""))
    ids = label_ids or {}
    objects = tuple(
        ObjectInfo(k + 1, labels[key], ids.get(labels[key])) for k, key in enumerate(keys)
    )
    ann = Annotation(
        name=name, masks=np.stack([groups[k] for k in keys]), objects=objects, ignore=ignore
    )
    return ann, notes


def read_label_names(path: str | os.PathLike) -> dict[str, int]:
    """Labelme's ``labels.txt``: ``__ignore__`` is -1, ``_background_`` 0, then 1, 2, ..."""
    names = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    start = -1 if names and names[0] == IGNORE_LABEL else 0
    return {n: start + i for i, n in enumerate(names)}
