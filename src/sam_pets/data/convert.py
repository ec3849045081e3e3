"""Conversion jobs: Oxford-IIIT Pet, COCO, LabelMe, label images, SAM 2 folders -> canonical.

Each job is a generator function yielding :class:`~sam_pets.progress.Progress` and returning a
:class:`~sam_pets.data.types.ConvertSummary`; drive it with ``sam_pets.progress.run_job`` (or
napari's ``thread_worker``). Calling a job does no work: scanning, checks and errors such as
``FileNotFoundError`` happen on the first ``next()``, in the thread that drives it.
A file that cannot be used is skipped with its reason and the rest converts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from dataclasses import replace
from pathlib import Path

from sam_pets.data.errors import BadInputError
from sam_pets.data.formats import coco as coco_fmt
from sam_pets.data.formats import labelme as labelme_fmt
from sam_pets.data.formats import oxford_pets as oxford
from sam_pets.data.formats import sam2_frames
from sam_pets.data.imaging import CanonicalImage, load_canonical_image
from sam_pets.data.pipeline import DEFAULT_CONFIG, ConvertConfig, Loaded, Task, run_conversion
from sam_pets.data.types import Annotation, ConvertSummary, FileIssue, ObjectInfo
from sam_pets.progress import Progress


def convert_oxford_pets(
    src: str | os.PathLike, out: str | os.PathLike, cfg: ConvertConfig = DEFAULT_CONFIG
) -> Generator[Progress, None, ConvertSummary]:
    """Convert an Oxford-IIIT Pet folder (official or flat layout) to the canonical format."""
    pairs = oxford.find_pairs(src)
    has_list = oxford.find_layout(src).list_txt is not None
    tasks = [
        Task(
            str(p.image or p.trimap or p.name),
            p.name,
            p.info.breed if p.info else oxford.breed_from_name(p.name),
            _oxford_loader(p, has_list),
        )
        for p in pairs
    ]
    return (yield from run_conversion(tasks, out, cfg, sources=[src]))


def _oxford_loader(pair: oxford.OxfordPair, has_list: bool) -> Callable[[], Loaded]:
    def load() -> Loaded:
        if pair.image is None:
            raise BadInputError(
                "missing image for this trimap"
                if pair.trimap
                else "listed in list.txt but no image or trimap"
            )
        if pair.trimap is None:
            raise BadInputError("no trimap for this image")
        img = load_canonical_image(pair.image)
        ann = oxford.read_pair(pair, img.size_hw)
        extra = {"oxford_split": pair.official_split} if pair.official_split else {}
        notes = (
            ["not in list.txt: species/breed taken from the name"]
            if (has_list and not pair.info)
            else []
        )
        return ann, img, extra, notes

    return load


def convert_coco(
    annotations: str | os.PathLike,
    images_dir: str | os.PathLike,
    out: str | os.PathLike,
    cfg: ConvertConfig = DEFAULT_CONFIG,
) -> Generator[Progress, None, ConvertSummary]:
    """Convert a COCO instances file and its image folder to the canonical format.

    Items are named by ``sam_pets_name`` where present (as ``export coco`` writes), else by
    file stem; a ``sam_pets_ignore`` RLE becomes the item's ignore region.
    """
    coco = coco_fmt.load_coco(annotations)
    if not Path(images_dir).is_dir():
        raise FileNotFoundError(f"image folder not found: {images_dir}")
    if not any(not p.name.startswith(".") for p in Path(images_dir).iterdir()):
        raise BadInputError(f"image folder is empty: {images_dir}")
    if not coco["images"]:
        raise BadInputError(f"{annotations}: no images listed")
    items, orphans = coco_fmt.group_images(coco)
    cats = {c.get("id"): c for c in coco["categories"] if isinstance(c, dict)}
    tasks = [
        Task(
            it.entry["file_name"],
            coco_fmt.coco_item_name(it.entry),
            _coco_key(it, cats),
            _coco_loader(it, Path(images_dir), cats),
        )
        for it in items
    ]
    meta = {"categories": [c for c in coco["categories"] if isinstance(c, dict)]}
    return (
        yield from run_conversion(
            tasks,
            out,
            cfg,
            meta,
            [FileIssue(str(annotations), m) for m in orphans],
            sources=[annotations, images_dir],
        )
    )


def _coco_key(item: coco_fmt.CocoImage, cats: dict) -> str:
    if not item.annotations:
        return ""
    cid = item.annotations[0].get("category_id")
    return str(cats.get(cid, {}).get("name", "")) if isinstance(cid, (int, str)) else ""


def _coco_loader(item: coco_fmt.CocoImage, images_dir: Path, cats: dict):
    def load() -> Loaded:
        img = load_canonical_image(images_dir / item.entry["file_name"])
        ann, notes = coco_fmt.read_coco_image(item, img.size_hw, cats)
        extra = {"coco_image_id": item.entry["id"]}
        return replace(ann, source=str(images_dir / item.entry["file_name"])), img, extra, notes

    return load


def convert_labelme(
    src_dir: str | os.PathLike, out: str | os.PathLike, cfg: ConvertConfig = DEFAULT_CONFIG
) -> Generator[Progress, None, ConvertSummary]:
    """Convert a folder of LabelMe JSON files (searched recursively) to the canonical format."""
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"LabelMe folder not found: {src_dir}")
    labels_txt = src_dir / "labels.txt"
    ids = labelme_fmt.read_label_names(labels_txt) if labels_txt.is_file() else None
    files = sorted(p for p in src_dir.rglob("*.json") if not p.name.startswith("."))
    if not files:
        raise BadInputError(f"no LabelMe .json files in {src_dir}")
    tasks = [Task(str(p), p.stem, "", _labelme_loader(p, ids)) for p in files]
    return (yield from run_conversion(tasks, out, cfg, sources=[src_dir]))


def _labelme_loader(path: Path, ids: dict | None):
    def load() -> Loaded:
        doc = labelme_fmt.parse_labelme(path.read_bytes(), path.name)
        src = labelme_fmt.image_source(doc, path)
        img = load_canonical_image(src) if isinstance(src, Path) else _from_bytes(src)
        ann, notes = labelme_fmt.read_labelme(doc, img.size_hw, path.stem, ids)
        return replace(ann, source=str(path)), img, {}, notes

    return load


def convert_sam2_folder(
    src: str | os.PathLike, out: str | os.PathLike, cfg: ConvertConfig = DEFAULT_CONFIG
) -> Generator[Progress, None, ConvertSummary]:
    """Convert a plain SAM 2 folder (``JPEGImages/``, ``Annotations/``) to the canonical format.

    Each annotated frame becomes one item; frames without a PNG are skipped with a reason.
    """
    frames = sam2_frames.find_frames(src)
    tasks = [Task(str(f.image), f.name, "", _sam2_loader(f)) for f in frames]
    return (yield from run_conversion(tasks, out, cfg, sources=[src]))


def _sam2_loader(frame: sam2_frames.FramePair):
    def load() -> Loaded:
        img = load_canonical_image(frame.image)
        return sam2_frames.read_frame(frame, img.size_hw), img, {}, []

    return load


def convert_label_images(
    images_dir: str | os.PathLike,
    labels_dir: str | os.PathLike,
    out: str | os.PathLike,
    cfg: ConvertConfig = DEFAULT_CONFIG,
) -> Generator[Progress, None, ConvertSummary]:
    """Convert label images (PNG/TIFF, matched to images by file stem) to the canonical format.

    A label file ``labels_dir/x.png`` (or ``.tif``) pairs with ``images_dir/x.<any image
    suffix>``; each non-zero id is one object. Stacks with more than one plane are skipped.
    """
    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    for d in (images_dir, labels_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"folder not found: {d}")
    images = {p.stem: p for p in images_dir.iterdir() if p.is_file() and not p.name[:1] == "."}
    labels = sorted(
        p for p in labels_dir.iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff")
    )
    if not labels:
        raise BadInputError(f"no label images (.png, .tif) in {labels_dir}")
    if not images:
        raise BadInputError(f"no images in {images_dir}")
    tasks = [Task(str(p), p.stem, "", _label_image_loader(p, images.get(p.stem))) for p in labels]
    return (yield from run_conversion(tasks, out, cfg, sources=[images_dir, labels_dir]))


def _label_image_loader(label_path: Path, image_path: Path | None):
    def load() -> Loaded:
        from sam_pets.data.formats.label_images import labels_to_masks, read_label_image

        if image_path is None:
            raise BadInputError("no image with the same name")
        lab = read_label_image(label_path)
        if lab.ndim == 3 and lab.shape[0] == 1:
            lab = lab[0]
        if lab.ndim != 2:
            raise BadInputError(f"label stack of shape {lab.shape}: only 2-D labels convert")
        img = load_canonical_image(image_path)
        if lab.shape != tuple(img.size_hw):
            raise BadInputError(
                f"label size {lab.shape[1]}x{lab.shape[0]} (WxH) differs from image size "
                f"{img.size_hw[1]}x{img.size_hw[0]}"
            )
        ids, masks = labels_to_masks(lab)
        if not len(ids):
            raise BadInputError("label image is empty (no object)")
        objects = tuple(ObjectInfo(int(i)) for i in ids)
        ann = Annotation(label_path.stem, masks, objects, source=str(image_path))
        return ann, img, {}, []

    return load


def _from_bytes(data: bytes) -> CanonicalImage:
    from sam_pets.data.imaging import decode_image, encode_jpeg, to_rgb_uint8

    rgb, notes = to_rgb_uint8(decode_image(data, "imageData"))
    return CanonicalImage(encode_jpeg(rgb), rgb.shape[:2], ("image from imageData", *notes))
