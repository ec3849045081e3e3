"""Export annotations into a canonical dataset (one item at a time) and a dataset to COCO.

:func:`export_annotation` is what the napari export widget calls: it adds or replaces one
item, so re-exporting a re-annotated image replaces that item and nothing is duplicated.
The dataset is single-writer: do not export into one folder from two processes at once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam_pets._atomic import atomic_write_text
from sam_pets.data.errors import BadItemError, no_readable_items, skip_item
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.formats.coco import coco_categories, item_to_coco
from sam_pets.data.formats.label_images import labels_to_masks
from sam_pets.data.formats.rle import encode_rle
from sam_pets.data.fsutil import safe_name, sha256_bytes
from sam_pets.data.imaging import encode_jpeg, to_rgb_uint8
from sam_pets.data.types import Annotation, ConvertSummary, FileIssue, ObjectInfo
from sam_pets.progress import Progress

COCO_NAME = "coco.json"


class EmptyLabelsError(ValueError):
    """The label array has no object; nothing was exported."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_annotation` did.

    Attributes:
        name: The item name used (sanitised).
        replaced: True if an item of that name existed and was replaced.
        record: The item's manifest record.
        notes: Image conversions applied (see :mod:`sam_pets.data.imaging`).
    """

    name: str
    replaced: bool
    record: dict
    notes: tuple[str, ...] = ()


def export_annotation(
    dataset_dir: str | os.PathLike,
    image: np.ndarray,
    labels: np.ndarray,
    name: str,
    metadata: dict | None = None,
    write_coco: bool = False,
    val_fraction: float = 0.2,
    replace: bool = False,
) -> ExportResult:
    """Add or replace one item of a canonical dataset, creating the dataset if needed.

    Args:
        dataset_dir: Dataset folder: absent, empty, or an existing sam-pets dataset.
        image: (H, W) or (H, W, C) image, any dtype (converted by the imaging rule).
        labels: (H, W) integer label array, 0 = background, ids 1..65535.
        name: Item name (sanitised to a safe ASCII folder name).
        metadata: Optional ``source``, ``species``, ``breed``, ``split`` ("train"/"val"),
            ``categories`` ({id: name} for the label ids) and ``ignore`` ((H, W) bool).
        write_coco: Also rewrite ``coco.json`` for the whole dataset.
        val_fraction: Chance of a new item going to val (a stable hash of its name decides).
        replace: Replace an item of the same name even if it holds a different image. Without
            it an existing item is replaced only when it is the same image (same pixels, or the
            same ``source`` path): a re-export after re-annotating.

    Returns:
        What was written.

    Raises:
        EmptyLabelsError: ``labels`` has no non-zero pixel.
        ValueError: Shapes do not match (the message names both sizes) or bad labels.
        FileExistsError: The folder holds other data, files of this item that the
            manifest does not know about, or an item of this name for another image.
    """
    meta = dict(metadata or {})
    labels = _check_inputs(image, labels)
    root, name = Path(dataset_dir), safe_name(name)
    manifest = _open_dataset(root)
    existing = canon.items_by_name(manifest)
    _refuse_unknown_files(root, name, existing)
    rgb, notes = to_rgb_uint8(np.asarray(image))
    jpeg = encode_jpeg(rgb)
    if name in existing and not replace:
        _refuse_other_image(existing[name], sha256_bytes(jpeg), meta.get("source"))
    ann = _annotation(name, labels, meta)
    split = _split_for(name, meta, existing, val_fraction)
    extra = {"notes": list(notes)} if notes else {}
    record = canon.write_item(root, ann, jpeg, split, extra)
    manifest["items"] = [r for r in manifest["items"] if r["name"] != name] + [record]
    canon.save_manifest(root, manifest)
    canon.write_lists(root, manifest)
    if write_coco:
        atomic_write_text(root / COCO_NAME, json.dumps(dataset_to_coco(root)))
    return ExportResult(name, name in existing, record, notes)


class NameTaken(FileExistsError):
    """The dataset holds an item of that name made from another image."""

    def __init__(self, name: str, source) -> None:
        self.name, self.source = name, source
        super().__init__(
            f"the dataset already has an item {name!r} for another image "
            f"(source {source}); choose another name or pass replace=True"
        )


def _refuse_other_image(old: dict, new_sha: str, source) -> None:
    same_source = source is not None and old.get("source") == str(source)
    if old.get("image_sha256") != new_sha and not same_source:
        raise NameTaken(old["name"], old.get("source"))


def _split_for(name: str, meta: dict, existing: dict, val_fraction: float) -> str:
    split = meta.get("split") or existing.get(name, {}).get("split")
    if split is None:
        return _hash_split(name, val_fraction)
    if split not in canon.SPLITS:
        raise ValueError(f"split must be one of {canon.SPLITS}, got {split!r}")
    return split


def _check_inputs(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D (H, W), got shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    img_hw = tuple(np.shape(image)[:2])
    if img_hw != labels.shape:
        raise ValueError(
            f"image size {img_hw[1]}x{img_hw[0]} (WxH) differs from label size "
            f"{labels.shape[1]}x{labels.shape[0]} (WxH)"
        )
    if not labels.any():
        raise EmptyLabelsError("the label array is empty (no object painted); nothing exported")
    if labels.min() < 0 or labels.max() > 65535:
        raise ValueError("label ids must be in 0..65535")
    return labels


def _open_dataset(root: Path) -> dict:
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a folder")
    if canon.is_dataset(root):
        return canon.load_manifest(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f"{root} is not empty and is not a sam-pets dataset; refusing to write into it"
        )
    root.mkdir(parents=True, exist_ok=True)
    return canon.new_manifest()


def _refuse_unknown_files(root: Path, name: str, existing: dict) -> None:
    if name in existing:
        return
    paths = canon.item_paths(root, name)
    for p in (paths.image, paths.labels, paths.ignore, paths.objects):
        if p.exists():
            raise FileExistsError(
                f"{p} exists but is not in the dataset manifest; refusing to overwrite it"
            )


def _annotation(name: str, labels: np.ndarray, meta: dict) -> Annotation:
    ids, masks = labels_to_masks(labels)
    cats = {int(k): v for k, v in (meta.get("categories") or {}).items()}
    objects = tuple(ObjectInfo(int(i), cats.get(int(i))) for i in ids)
    ignore = meta.get("ignore")
    if ignore is not None:
        ignore = np.asarray(ignore, dtype=bool)
        if ignore.shape != labels.shape:
            raise ValueError(f"ignore mask shape {ignore.shape} differs from labels {labels.shape}")
    return Annotation(
        name=name,
        masks=masks,
        objects=objects,
        ignore=ignore,
        species=meta.get("species"),
        breed=meta.get("breed"),
        source=str(meta["source"]) if meta.get("source") else None,
    )


def _hash_split(name: str, val_fraction: float) -> str:
    """A stable split for one name: val with probability ``val_fraction`` over names."""
    h = int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:8], 16) / 2**32
    return "val" if h < val_fraction else "train"


def iter_dataset_to_coco(
    root: str | os.PathLike, polygons: bool = False, skipped: list[FileIssue] | None = None
) -> Generator[Progress, None, dict]:
    """Build a COCO instances document of a canonical dataset, yielding progress per item.

    Masks are written as compressed RLE (lossless), or as polygons (lossy) with ``polygons``;
    ``file_name`` is relative to ``root``. Each image entry also carries the item name and
    its ignore region (see :func:`~sam_pets.data.formats.coco.item_to_coco`). An item that
    cannot be read (see :func:`~sam_pets.data.formats.sam2_folder.read_object_rles`) is
    left out: its progress record carries a notice naming it and the reason, and it is
    appended to ``skipped``.
    """
    manifest = canon.load_manifest(root)
    cats = coco_categories(manifest)
    images, anns = [], []
    skipped = [] if skipped is None else skipped
    records = sorted(manifest["items"], key=lambda r: r["name"])
    for i, rec in enumerate(records):
        try:
            rles = canon.read_object_rles(root, rec)
            ignore = _ignore_rle(root, rec)
        except BadItemError as e:
            notice = skip_item(e, skipped)
            yield Progress(i + 1, len(records), rec["name"], notice=notice)
            continue
        entry, item_anns = item_to_coco(
            rec, rles, len(images) + 1, len(anns) + 1, cats, polygons, ignore
        )
        images.append(entry)
        anns += item_anns
        yield Progress(i + 1, len(records), rec["name"])
    info = {"description": "exported by sam-pets", "date_created": canon.now_iso()}
    return {"info": info, "images": images, "annotations": anns, "categories": cats}


def _ignore_rle(root: str | os.PathLike, record: dict) -> dict | None:
    if not record.get("ignore"):
        return None
    _, ignore = canon.read_masks(root, record)
    return encode_rle(ignore) if ignore.any() else None


def dataset_to_coco(root: str | os.PathLike) -> dict:
    """COCO instances document of a canonical dataset (see :func:`iter_dataset_to_coco`).

    Unreadable items are left out.
    """
    job = iter_dataset_to_coco(root)
    while True:
        try:
            next(job)
        except StopIteration as stop:
            return stop.value


def export_coco(
    dataset: str | os.PathLike,
    out_json: str | os.PathLike,
    overwrite: bool = False,
    polygons: bool = False,
) -> Generator[Progress, None, ConvertSummary]:
    """Job: write a canonical dataset as one COCO JSON file (RLE, or polygons if asked).

    Unreadable items are left out of the file and listed in the summary's ``skipped``.

    Raises:
        FileExistsError: ``out_json`` exists and ``overwrite`` is False.
        BadInputError: The dataset has items but not one of them can be read (nothing is
            written).
        IsADirectoryError: ``out_json`` is a folder (never replaced, even with ``overwrite``).
    """
    out_json = Path(out_json)
    if out_json.is_dir():
        raise IsADirectoryError(f"{out_json} is a folder; give a .json file to write")
    if out_json.exists() and not overwrite:
        raise FileExistsError(f"{out_json} exists; use --overwrite to replace it")
    skipped: list[FileIssue] = []
    coco = yield from iter_dataset_to_coco(dataset, polygons, skipped)
    if skipped and not coco["images"]:
        raise no_readable_items(dataset, skipped)
    atomic_write_text(out_json, json.dumps(coco))
    return ConvertSummary(str(out_json), len(coco["images"]), tuple(skipped))
