"""The canonical on-disk dataset: SAM 2's folder layout plus a manifest.

Layout (one frame per item, so SAM 2's video trainer reads it as one-frame videos)::

    OUT/JPEGImages/<name>/00000.jpg   image (see sam_pets.data.imaging for the RGB rule)
    OUT/Annotations/<name>/00000.png  palette PNG: one id per object, 0 = background (16-bit
                                      greyscale if an item has ids > 255, which SAM 2's
                                      palette loader cannot read)
    OUT/Ignore/<name>/00000.png       1-bit PNG of the ignore region (only if non-empty)
    OUT/Objects/<name>/00000.json     per-object COCO RLE (only if objects overlap, so the
                                      flattened PNG alone would lose pixels)
    OUT/train_list.txt, val_list.txt  item names, one per line
    OUT/train_tiny_list.txt, val_tiny_list.txt   small stratified subsets for smoke runs
    OUT/dataset.json                  manifest: one record per item (see :func:`item_record`)

Every file is written atomically (temp file + rename). The item readers (:func:`read_masks`,
:func:`read_image`, :func:`read_annotation`, :func:`read_object_rles`) are the one place that
turns a missing, corrupt or inconsistent item file into
:class:`~sam_pets.data.errors.BadItemError`, which batch jobs catch to skip that item.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sam_pets._atomic import atomic_write_bytes, atomic_write_text
from sam_pets.data.errors import BadItemError
from sam_pets.data.formats.label_images import (
    decode_label_png,
    encode_label_png,
    masks_to_labels,
)
from sam_pets.data.formats.manifest import MANIFEST as MANIFEST
from sam_pets.data.formats.manifest import is_dataset as is_dataset
from sam_pets.data.formats.manifest import items_by_name as items_by_name
from sam_pets.data.formats.manifest import load_manifest as load_manifest
from sam_pets.data.formats.manifest import new_manifest as new_manifest
from sam_pets.data.formats.manifest import now_iso as now_iso
from sam_pets.data.formats.manifest import save_manifest as save_manifest
from sam_pets.data.formats.rle import decode_rle, encode_rle
from sam_pets.data.fsutil import sha256_bytes
from sam_pets.data.types import Annotation, ObjectInfo, as_metadata

FRAME = "00000"
ITEM_DIRS = ("JPEGImages", "Annotations", "Ignore", "Objects")
SPLITS = ("train", "val")
LIST_FILES = tuple(f"{s}_list.txt" for s in SPLITS) + tuple(f"{s}_tiny_list.txt" for s in SPLITS)
OWN_ENTRIES = frozenset((*ITEM_DIRS, *LIST_FILES, MANIFEST, "coco.json"))  # all else: not ours


@dataclass(frozen=True)
class ItemPaths:
    """Files of one item (``ignore`` and ``objects`` exist only when needed)."""

    image: Path
    labels: Path
    ignore: Path
    objects: Path


def item_paths(root: str | os.PathLike, name: str) -> ItemPaths:
    """Paths of item ``name`` under dataset ``root``."""
    root = Path(root)
    return ItemPaths(
        image=root / "JPEGImages" / name / f"{FRAME}.jpg",
        labels=root / "Annotations" / name / f"{FRAME}.png",
        ignore=root / "Ignore" / name / f"{FRAME}.png",
        objects=root / "Objects" / name / f"{FRAME}.json",
    )


def check_output(root: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse an output folder that a new dataset must not replace; changes nothing.

    An absent or empty folder is fine. An existing dataset may be replaced only with
    ``overwrite`` (see :func:`sam_pets.data.staging.staged_dataset`, which keeps files that
    are not in :data:`OWN_ENTRIES`). Any other non-empty folder is refused, whatever
    ``overwrite`` says.

    Raises:
        FileExistsError: ``root`` holds other data, or a dataset and ``overwrite`` is False.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a folder")
    if not root.exists() or not any(root.iterdir()):
        return
    if not is_dataset(root):
        raise FileExistsError(
            f"{root} is not empty and is not a sam-pets dataset; refusing to "
            "write into it (choose a new or empty folder)"
        )
    if not overwrite:
        raise FileExistsError(f"{root} already holds a dataset; use --overwrite to replace it")


def write_item(
    root: str | os.PathLike, ann: Annotation, jpeg: bytes, split: str, extra: dict | None = None
) -> dict:
    """Write one item's files and return its manifest record (the manifest is not touched).

    Args:
        root: Dataset folder.
        ann: The annotation; ``ann.masks`` is (K, H, W) bool with K >= 1.
        jpeg: Canonical JPEG bytes (same H, W as the masks).
        split: "train" or "val".
        extra: More JSON-ready fields for the record (``notes``, ``oxford_split``...).

    Returns:
        The manifest record (see :func:`item_record`).
    """
    paths = item_paths(root, ann.name)
    areas = ann.masks.reshape(len(ann.masks), -1).sum(axis=1)
    labels = masks_to_labels(ann.masks, ann.object_ids, areas)
    overlaps = int(areas.sum()) > int(np.count_nonzero(labels))
    atomic_write_bytes(paths.image, jpeg)
    atomic_write_bytes(paths.labels, encode_label_png(labels))
    _write_or_remove_ignore(paths.ignore, ann.ignore)
    _write_or_remove_objects(paths.objects, ann, overlaps)
    return item_record(ann, sha256_bytes(jpeg), split, overlaps, extra, areas)


def _write_or_remove_ignore(path: Path, ignore: np.ndarray | None) -> None:
    if ignore is not None and ignore.any():
        import io

        buf = io.BytesIO()
        Image.fromarray(ignore.astype(bool)).save(buf, format="PNG")
        atomic_write_bytes(path, buf.getvalue())
    else:
        path.unlink(missing_ok=True)


def _write_or_remove_objects(path: Path, ann: Annotation, overlaps: bool) -> None:
    if not overlaps:
        path.unlink(missing_ok=True)
        return
    objs = [{"id": o.id, "rle": encode_rle(m)} for o, m in zip(ann.objects, ann.masks, strict=True)]
    atomic_write_text(path, json.dumps({"size": list(ann.size_hw), "objects": objs}))


def item_record(
    ann: Annotation,
    image_sha256: str,
    split: str,
    overlaps: bool,
    extra: dict | None = None,
    areas: np.ndarray | None = None,
) -> dict:
    """Manifest record of an item: name, source, hash, size, objects, labels, split, time."""
    if areas is None:
        areas = ann.masks.reshape(len(ann.masks), -1).sum(axis=1)
    objects = [
        {
            "id": o.id,
            "category": o.category,
            "category_id": o.category_id,
            "iscrowd": int(o.iscrowd),
            "area": int(a),
        }
        for o, a in zip(ann.objects, areas, strict=True)
    ]
    rec = {
        "name": ann.name,
        "source": ann.source,
        "image_sha256": image_sha256,
        "size_hw": list(ann.size_hw),
        "objects": objects,
        "species": ann.species,
        "breed": ann.breed,
        "split": split,
        "ignore": bool(ann.ignore is not None and ann.ignore.any()),
        "overlaps": overlaps,
        "time": now_iso(),
    }
    rec.update(as_metadata(extra or {}))
    return rec


def remove_item(root: str | os.PathLike, name: str) -> None:
    """Delete an item's files (and its now-empty folders)."""
    paths = item_paths(root, name)
    for p in (paths.image, paths.labels, paths.ignore, paths.objects):
        p.unlink(missing_ok=True)
        if p.parent.is_dir() and not any(p.parent.iterdir()):
            p.parent.rmdir()


@contextmanager
def _reading(name: str, what: str, path: Path) -> Iterator[None]:
    """Turn any failure to read ``path``, one of item ``name``'s files, into BadItemError."""
    try:
        yield
    except BadItemError:
        raise
    except FileNotFoundError:
        raise BadItemError(name, f"{what} file missing: {path}") from None
    except Exception as e:  # PIL, json and numpy raise many types for broken files
        detail = str(e) if str(path) in str(e) else f"{path}: {type(e).__name__}: {e}"
        raise BadItemError(name, f"cannot read its files: {detail}") from None


def read_masks(root: str | os.PathLike, record: dict) -> tuple[np.ndarray, np.ndarray]:
    """Instance masks and ignore region of an item.

    Args:
        root: Dataset folder.
        record: The item's manifest record.

    Returns:
        masks: (K, H, W) bool in the order of ``record["objects"]`` (lossless when objects
            overlap: read from ``Objects/``).
        ignore: (H, W) bool.

    Raises:
        BadItemError: A file is missing or unreadable, or an object is missing from it.
    """
    name = record["name"]
    paths = item_paths(root, name)
    ids = [o["id"] for o in record["objects"]]
    if record.get("overlaps"):
        with _reading(name, "objects", paths.objects):
            data = json.loads(paths.objects.read_text(encoding="utf-8"))
            by_id = {o["id"]: o["rle"] for o in data["objects"]}
            masks = np.stack([decode_rle(by_id[i]) for i in ids])
    else:
        with _reading(name, "mask", paths.labels):
            labels = decode_label_png(paths.labels.read_bytes(), str(paths.labels))
            if labels.ndim != 2:
                raise ValueError(f"labels of shape {labels.shape}, expected (H, W)")
        masks = np.stack([labels == i for i in ids]) if ids else np.zeros((0, *labels.shape), bool)
    ignore = np.zeros(masks.shape[1:], bool)
    if record.get("ignore"):
        with _reading(name, "ignore", paths.ignore), Image.open(paths.ignore) as img:
            ignore = np.asarray(img.convert("L")) > 0
        _check_size(name, "ignore", ignore.shape, masks.shape[1:])
    return masks, ignore


def _check_size(name: str, what: str, hw: tuple, mask_hw: tuple) -> None:
    if tuple(hw) != tuple(mask_hw):
        raise BadItemError(name, f"mask size {tuple(mask_hw)} differs from {what} size {tuple(hw)}")


def read_object_rles(root: str | os.PathLike, record: dict) -> list[dict]:
    """Compressed COCO RLE of each object of an item, in record order (lossless).

    The image is checked too (present, readable header, same size as the masks), since an
    export refers to it, but it is not decoded.

    Raises:
        BadItemError: A file is missing or unreadable, or the sizes disagree.
    """
    name = record["name"]
    masks, _ = read_masks(root, record)
    path = item_paths(root, name).image
    with _reading(name, "image", path), Image.open(path) as img:
        hw = (img.height, img.width)
    _check_size(name, "image", hw, masks.shape[1:])
    return [encode_rle(m) for m in masks]


def read_image(root: str | os.PathLike, name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of an item.

    Raises:
        BadItemError: The file is missing, corrupt or truncated.
    """
    path = item_paths(root, name).image
    with _reading(name, "image", path), Image.open(path) as img:
        return np.array(img.convert("RGB"))


def read_annotation(root: str | os.PathLike, record: dict, with_image: bool = True) -> Annotation:
    """Load an item as an :class:`Annotation` (image decoded only if ``with_image``).

    Raises:
        BadItemError: A file is missing or unreadable, or the image and mask sizes differ.
    """
    masks, ignore = read_masks(root, record)
    objects = tuple(
        ObjectInfo(o["id"], o.get("category"), o.get("category_id"), bool(o.get("iscrowd")))
        for o in record["objects"]
    )
    image = read_image(root, record["name"]) if with_image else None
    if image is not None:
        _check_size(record["name"], "image", image.shape[:2], masks.shape[1:])
    return Annotation(
        name=record["name"],
        masks=masks,
        objects=objects,
        ignore=ignore,
        image=image,
        image_path=item_paths(root, record["name"]).image,
        species=record.get("species"),
        breed=record.get("breed"),
        source=record.get("source"),
    )


def write_lists(root: str | os.PathLike, manifest: dict, tiny_size: int = 8) -> dict[str, int]:
    """Write the split lists from the records' ``split`` fields; returns items per split."""
    from sam_pets.data.split import stratum_key, tiny_subset

    counts = {}
    for split in SPLITS:
        recs = sorted(
            (r for r in manifest["items"] if r.get("split") == split), key=lambda r: r["name"]
        )
        names = [r["name"] for r in recs]
        atomic_write_text(Path(root) / f"{split}_list.txt", "".join(n + "\n" for n in names))
        tiny = tiny_subset(names, [stratum_key(r) for r in recs], tiny_size)
        atomic_write_text(Path(root) / f"{split}_tiny_list.txt", "".join(n + "\n" for n in tiny))
        counts[split] = len(names)
    return counts


def read_list(root: str | os.PathLike, split: str) -> list[str]:
    """Item names of a split list (``train``, ``val``, ``train_tiny``, ``val_tiny``)."""
    path = Path(root) / f"{split}_list.txt"
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
