"""COCO instances: read (polygons, RLE, iscrowd) and write (lossless compressed RLE).

Reading keeps each annotation as its own mask, so overlapping instances survive. Category
entries are kept as they are, including unused ones (a Roboflow export has an unused
placeholder category 0 whose name repeats a real one); objects refer to categories by id.
Nothing is dropped silently: an annotation whose ``category_id`` is not in ``categories`` is
skipped with a note, and a repeated image ``id`` keeps its first entry and reports the rest.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from sam_pets.data.errors import BadInputError
from sam_pets.data.formats.rle import decode_rle, rle_area, rle_bbox
from sam_pets.data.types import Annotation, ObjectInfo

NAME_KEY = "sam_pets_name"  # image entry: the canonical item name (written by export)
IGNORE_KEY = "sam_pets_ignore"  # image entry: ignore region as compressed RLE


@dataclass(frozen=True)
class CocoImage:
    """One COCO image entry and its annotations."""

    entry: dict
    annotations: tuple[dict, ...]


def parse_coco(text: str | bytes, name: str = "annotations") -> dict:
    """Parse and validate a COCO instances JSON document.

    Returns:
        The document with ``images``, ``annotations`` and ``categories`` lists.

    Raises:
        BadInputError: Not JSON, or the structure is not COCO instances.
    """
    try:
        coco = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInputError(f"{name}: malformed JSON ({e})") from None
    if not isinstance(coco, dict):
        raise BadInputError(f"{name}: top level must be an object")
    for key in ("images", "annotations"):
        if not isinstance(coco.get(key), list):
            raise BadInputError(f"{name}: '{key}' must be a list")
    coco.setdefault("categories", [])
    if not isinstance(coco["categories"], list):
        raise BadInputError(f"{name}: 'categories' must be a list")
    for img in coco["images"]:
        if (
            not isinstance(img, dict)
            or "id" not in img
            or not isinstance(img.get("file_name"), str)
        ):
            raise BadInputError(f"{name}: every image needs an 'id' and a 'file_name'")
    return coco


def load_coco(path: str | os.PathLike) -> dict:
    """Read and validate a COCO JSON file (see :func:`parse_coco`)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"COCO file not found: {path}") from None
    return parse_coco(data, Path(path).name)


def group_images(coco: dict) -> tuple[list[CocoImage], list[str]]:
    """Annotations grouped by image, plus messages for what cannot be used.

    An image entry whose ``id`` repeats an earlier entry's is skipped (its annotations
    cannot be told apart from the first one's), as are annotations of unknown images; each
    gets one message.
    """
    by_image: dict = defaultdict(list)
    for ann in coco["annotations"]:
        if isinstance(ann, dict):
            by_image[_hashable(ann.get("image_id"))].append(ann)
    entries: dict = {}
    issues = []
    for img in coco["images"]:
        key = _hashable(img["id"])
        if key in entries:
            issues.append(
                f"duplicate image id {key} ({img['file_name']!r}; first used by "
                f"{entries[key]['file_name']!r}): this entry skipped"
            )
        else:
            entries[key] = img
    issues += [
        f"annotation {a.get('id')} refers to unknown image {k}"
        for k, anns in by_image.items()
        if k not in entries
        for a in anns
    ]
    items = [CocoImage(img, tuple(by_image.get(k, ()))) for k, img in entries.items()]
    return items, issues


def _hashable(v):
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def decode_segmentation(seg, h: int, w: int) -> np.ndarray:
    """(H, W) bool mask of a COCO ``segmentation`` (polygons, compressed or list RLE).

    Raises:
        BadInputError: Empty or malformed segmentation, or a polygon with < 3 points.
    """
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            raise BadInputError("RLE segmentation needs 'counts' and 'size'")
        if [int(s) for s in seg["size"]] != [h, w]:
            raise BadInputError(f"RLE size {seg['size']} differs from image size {[h, w]}")
        try:
            return decode_rle(seg)
        except (TypeError, ValueError) as e:
            raise BadInputError(f"malformed RLE ({e})") from None
    if not isinstance(seg, list) or not seg:
        raise BadInputError("empty or malformed segmentation")
    polys = []
    for poly in seg:
        if not isinstance(poly, list) or not all(isinstance(v, (int, float)) for v in poly):
            raise BadInputError("polygon must be a flat list of numbers")
        if len(poly) < 6 or len(poly) % 2:
            raise BadInputError(f"polygon with {len(poly) // 2} points (needs >= 3)")
        polys.append(_checked_polygon(poly, h, w))
    rles = mask_utils.frPyObjects(polys, h, w)
    return np.ascontiguousarray(mask_utils.decode(mask_utils.merge(rles)).view(bool))


def _checked_polygon(poly: list, h: int, w: int) -> list[float]:
    """``poly`` as floats, refusing points pycocotools cannot rasterise safely.

    pycocotools scales points to integers in C without range checks: a coordinate such as
    1e9 overflows and crashes the process. Points may lie up to one image size outside the
    image (annotation tools often overshoot the border a little); anything farther, or not
    finite, is an error.

    Raises:
        BadInputError: A coordinate is not finite or lies far outside the image.
    """
    try:
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)  # (N, 2) x, y
    except OverflowError:
        raise BadInputError("polygon coordinate too large") from None
    if not np.isfinite(xy).all():
        raise BadInputError("polygon has a coordinate that is not a finite number")
    bad = (xy < -np.array([w, h])) | (xy > 2 * np.array([w, h]))
    if bad.any():
        x, y = xy[bad.any(axis=1)][0]
        raise BadInputError(
            f"polygon point ({x:g}, {y:g}) lies far outside the {w}x{h} (WxH) image"
        )
    return xy.ravel().tolist()


def read_coco_image(
    item: CocoImage, size_hw: tuple[int, int], categories: dict
) -> tuple[Annotation, list[str]]:
    """Masks of one COCO image.

    Args:
        item: Image entry and annotations.
        size_hw: (H, W) of the decoded image file, checked against the entry.
        categories: Category id -> category dict.

    Returns:
        The annotation (ids 1..K in annotation order) and notes about skipped annotations
        (bad or empty segmentation, or a ``category_id`` missing from ``categories``).

    Raises:
        BadInputError: Size mismatch, or no usable annotation.
    """
    h, w = size_hw
    entry = item.entry
    if (entry.get("height"), entry.get("width")) not in ((h, w), (None, None)):
        raise BadInputError(
            f"JSON says {entry.get('width')}x{entry.get('height')} (WxH) but "
            f"the image file is {w}x{h}"
        )
    masks, objects, notes = [], [], []
    for ann in item.annotations:
        try:
            mask = decode_segmentation(ann.get("segmentation"), h, w)
        except BadInputError as e:
            notes.append(f"annotation {ann.get('id')} skipped: {e}")
            continue
        if not mask.any():
            notes.append(f"annotation {ann.get('id')} skipped: empty mask")
            continue
        cid = ann.get("category_id")
        if not isinstance(cid, (int, str)) or cid not in categories:
            notes.append(f"annotation {ann.get('id')} skipped: {_unknown_category(cid)}")
            continue
        objects.append(
            ObjectInfo(
                len(objects) + 1,
                categories[cid].get("name"),
                cid if isinstance(cid, int) else None,
                bool(ann.get("iscrowd", 0)),
            )
        )
        masks.append(mask)
    if not masks:
        raise BadInputError("no usable annotations" + (f" ({notes[0]})" if notes else ""))
    ann = Annotation(
        name=coco_item_name(entry),
        masks=np.stack(masks),
        objects=tuple(objects),
        ignore=_read_ignore(entry, h, w, notes),
        source=entry["file_name"],
    )
    return ann, notes


def coco_item_name(entry: dict) -> str:
    """Item name of an image entry: sam-pets' own ``sam_pets_name``, else the file stem."""
    name = entry.get(NAME_KEY)
    return name if isinstance(name, str) and name else Path(entry["file_name"]).stem


def _read_ignore(entry: dict, h: int, w: int, notes: list[str]) -> np.ndarray | None:
    if IGNORE_KEY not in entry:
        return None
    try:
        return decode_segmentation(entry[IGNORE_KEY], h, w)
    except BadInputError as e:
        notes.append(f"{IGNORE_KEY} not used: {e}")
        return None


def _unknown_category(cid) -> str:
    if cid is None:
        return "no category_id"
    return f"category_id {json.dumps(cid)} is not in 'categories'"


def coco_categories(manifest: dict) -> list[dict]:
    """Category list for a dataset: the manifest's own, plus any named only by objects.

    Declared entries are kept as they are. Objects name their category by ``category`` (and
    ``category_id``); a name that no declared entry carries gets one new entry (its
    object's id when that id is free), so each object name maps to one id (see
    :func:`object_category_id`).
    """
    cats = [dict(c) for c in manifest.get("categories") or [] if _is_category(c)]
    name_of, id_of = _category_maps(cats)
    for rec in manifest["items"]:
        for o in rec["objects"]:
            cid, name = o.get("category_id"), o.get("category")
            if _agrees(cid, name, name_of):
                continue
            name = name or "object"
            if name in id_of:
                continue
            if cid is None or cid in name_of:
                cid = max([c for c in name_of if isinstance(c, int)] + [0]) + 1
            cats.append({"id": cid, "name": name, "supercategory": ""})
            name_of.setdefault(cid, name)
            id_of.setdefault(name, cid)
    return sorted(cats, key=lambda c: (str(type(c["id"])), c["id"]))


def object_category_id(obj: dict, categories: list[dict]):
    """COCO category id of a manifest object under ``categories`` (from :func:`coco_categories`).

    The object's own ``category_id`` when the table gives it the object's name (or the object
    has no name), else the table's id for the name: a name always wins over a clashing id.
    """
    name_of, id_of = _category_maps(categories)
    cid, name = obj.get("category_id"), obj.get("category")
    if _agrees(cid, name, name_of):
        return cid
    return id_of.get(name or "object")


def _is_category(c) -> bool:
    return isinstance(c, dict) and isinstance(c.get("id"), (int, str)) and "name" in c


def _category_maps(cats: list[dict]) -> tuple[dict, dict]:
    name_of, id_of = {}, {}
    for c in cats:
        name_of.setdefault(c["id"], c["name"])
        id_of.setdefault(c["name"], c["id"])
    return name_of, id_of


def _agrees(cid, name, name_of: dict) -> bool:
    return cid is not None and cid in name_of and (name is None or name_of[cid] == name)


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.5) -> list[list[float]]:
    """Outer boundaries of a mask as COCO polygons ``[[x0, y0, x1, y1, ...], ...]``.

    Lossy: holes are filled and edges are simplified (``tolerance`` pixels). Coordinates are
    COCO's, where pixel ``i`` spans ``[i, i + 1)``.

    Args:
        mask: (H, W) bool.
        tolerance: Maximum distance of the simplified outline from the traced one, in pixels.

    Returns:
        One polygon per connected outer boundary with >= 3 points (empty for an empty mask).
    """
    from skimage import measure

    polys = []
    for contour in measure.find_contours(np.pad(mask, 1).astype(np.uint8), 0.5):
        c = measure.approximate_polygon(contour, tolerance)
        y, x = c[:, 0] - 0.5, c[:, 1] - 0.5  # remove the pad, move to COCO pixel edges
        signed_area = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
        if signed_area <= 0 or len(c) < 4:  # a hole, or fewer than 3 distinct points
            continue
        polys.append(np.stack([x[:-1], y[:-1]], axis=1).round(2).ravel().tolist())
    return polys


def item_to_coco(
    record: dict,
    rles: list[dict],
    image_id: int,
    first_ann_id: int,
    categories: list[dict],
    polygons: bool = False,
    ignore_rle: dict | None = None,
) -> tuple[dict, list[dict]]:
    """COCO image entry and annotations of one canonical item.

    Masks are compressed RLE (lossless) unless ``polygons``: then non-crowd objects are
    polygons (see :func:`mask_to_polygons`; an object too small for one stays RLE). The
    entry carries the item's name (``sam_pets_name``) and, if given, its ignore region
    (``sam_pets_ignore``, compressed RLE); :func:`read_coco_image` reads both back.

    Args:
        record: Manifest record of the item.
        rles: K compressed RLEs (str counts) in record object order.
        image_id: COCO id for the image.
        first_ann_id: COCO id of the first annotation.
        categories: Output of :func:`coco_categories`.
        polygons: Write polygons instead of RLE for non-crowd objects.
        ignore_rle: Compressed RLE of the item's ignore region, or None.

    Returns:
        The image entry (``file_name`` relative to the dataset folder) and annotations.
    """
    h, w = record["size_hw"]
    entry = {
        "id": image_id,
        "file_name": f"JPEGImages/{record['name']}/00000.jpg",
        "height": h,
        "width": w,
        NAME_KEY: record["name"],
    }
    if ignore_rle is not None:
        entry[IGNORE_KEY] = ignore_rle
    anns = []
    for k, (o, rle) in enumerate(zip(record["objects"], rles, strict=True)):
        cid = object_category_id(o, categories)
        seg = rle
        if polygons and not o.get("iscrowd"):
            seg = mask_to_polygons(decode_rle(rle)) or rle
        anns.append(
            {
                "id": first_ann_id + k,
                "image_id": image_id,
                "category_id": cid,
                "segmentation": seg,
                "area": rle_area(rle),
                "bbox": rle_bbox(rle),
                "iscrowd": int(o.get("iscrowd", 0)),
            }
        )
    return entry, anns
