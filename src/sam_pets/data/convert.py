"""Conversion jobs: Oxford-IIIT Pet, COCO, LabelMe, label images, SAM 2 folders -> canonical.

Each job is a generator function yielding :class:`~sam_pets.progress.Progress` and returning a
:class:`~sam_pets.data.types.ConvertSummary`; drive it with ``sam_pets.progress.run_job`` (or
napari's ``thread_worker``). Calling a job does no work: scanning, checks and errors such as
``FileNotFoundError`` happen on the first ``next()``, in the thread that drives it.
A file that cannot be used is skipped with its reason and the rest converts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from sam_pets.data.errors import BadInputError
from sam_pets.data.formats import coco as coco_fmt
from sam_pets.data.formats import labelme as labelme_fmt
from sam_pets.data.formats import oxford_pets as oxford
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.formats.sam2_folder import find_frames as sam2_frames
from sam_pets.data.fsutil import safe_name, unique_name
from sam_pets.data.imaging import CanonicalImage, load_canonical_image
from sam_pets.data.split import stratified_split, stratified_subset, stratum_key
from sam_pets.data.types import Annotation, ConvertSummary, FileIssue, ObjectInfo
from sam_pets.progress import Progress


@dataclass(frozen=True)
class ConvertConfig:
    """Options shared by the conversion jobs.

    Attributes:
        val_fraction: Fraction of items in the val split.
        seed: Seed of the split (and of the ``tiny`` subset).
        tiny: Convert only a stratified subset of this many items (None: all).
        tiny_list_size: Items per ``*_tiny_list.txt``.
        workers: Threads for decoding/encoding (0: ``min(4, cpu count)``).
        overwrite: Replace an existing canonical dataset at the output folder.
    """

    val_fraction: float = 0.2
    seed: int = 0
    tiny: int | None = None
    tiny_list_size: int = 8
    workers: int = 0
    overwrite: bool = False


Loaded = tuple[Annotation, CanonicalImage, dict, list[str]]


@dataclass(frozen=True)
class Task:
    """One source item: a label for messages, its stratum, and a loader run in a worker."""

    source: str
    name: str
    key: str
    load: Callable[[], Loaded]


def convert_oxford_pets(
    src: str | os.PathLike, out: str | os.PathLike, cfg: ConvertConfig = ConvertConfig()
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
    return (yield from run_conversion(tasks, out, cfg))


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
    cfg: ConvertConfig = ConvertConfig(),
) -> Generator[Progress, None, ConvertSummary]:
    """Convert a COCO instances file and its image folder to the canonical format."""
    coco = coco_fmt.load_coco(annotations)
    items, orphans = coco_fmt.group_images(coco)
    cats = {c.get("id"): c for c in coco["categories"] if isinstance(c, dict)}
    tasks = [
        Task(
            it.entry["file_name"],
            Path(it.entry["file_name"]).stem,
            _coco_key(it, cats),
            _coco_loader(it, Path(images_dir), cats),
        )
        for it in items
    ]
    meta = {"categories": [c for c in coco["categories"] if isinstance(c, dict)]}
    return (
        yield from run_conversion(
            tasks, out, cfg, meta, [FileIssue(str(annotations), m) for m in orphans]
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
    src_dir: str | os.PathLike, out: str | os.PathLike, cfg: ConvertConfig = ConvertConfig()
) -> Generator[Progress, None, ConvertSummary]:
    """Convert a folder of LabelMe JSON files (searched recursively) to the canonical format."""
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"LabelMe folder not found: {src_dir}")
    labels_txt = src_dir / "labels.txt"
    ids = labelme_fmt.read_label_names(labels_txt) if labels_txt.is_file() else None
    files = sorted(p for p in src_dir.rglob("*.json") if not p.name.startswith("."))
    tasks = [Task(str(p), p.stem, "", _labelme_loader(p, ids)) for p in files]
    return (yield from run_conversion(tasks, out, cfg))


def _labelme_loader(path: Path, ids: dict | None):
    def load() -> Loaded:
        doc = labelme_fmt.parse_labelme(path.read_bytes(), path.name)
        src = labelme_fmt.image_source(doc, path)
        img = load_canonical_image(src) if isinstance(src, Path) else _from_bytes(src)
        ann, notes = labelme_fmt.read_labelme(doc, img.size_hw, path.stem, ids)
        return replace(ann, source=str(path)), img, {}, notes

    return load


def convert_sam2_folder(
    src: str | os.PathLike, out: str | os.PathLike, cfg: ConvertConfig = ConvertConfig()
) -> Generator[Progress, None, ConvertSummary]:
    """Convert a plain SAM 2 folder (``JPEGImages/``, ``Annotations/``) to the canonical format.

    Each annotated frame becomes one item; frames without a PNG are skipped with a reason.
    """
    frames = sam2_frames(src)
    tasks = [Task(str(f.image), f.name, "", _sam2_loader(f)) for f in frames]
    return (yield from run_conversion(tasks, out, cfg))


def _sam2_loader(frame: canon.FramePair):
    def load() -> Loaded:
        img = load_canonical_image(frame.image)
        return canon.read_frame(frame, img.size_hw), img, {}, []

    return load


def convert_label_images(
    images_dir: str | os.PathLike,
    labels_dir: str | os.PathLike,
    out: str | os.PathLike,
    cfg: ConvertConfig = ConvertConfig(),
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
    tasks = [Task(str(p), p.stem, "", _label_image_loader(p, images.get(p.stem))) for p in labels]
    return (yield from run_conversion(tasks, out, cfg))


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


def run_conversion(
    tasks: Sequence[Task],
    out: str | os.PathLike,
    cfg: ConvertConfig,
    manifest_extra: dict | None = None,
    issues: Sequence[FileIssue] = (),
) -> Generator[Progress, None, ConvertSummary]:
    """Load, check and write every task in worker threads, then split and write the manifest.

    Args:
        tasks: Source items.
        out: Output folder (new, empty, or an existing dataset with ``cfg.overwrite``).
        cfg: Options.
        manifest_extra: Top-level manifest fields (``categories``).
        issues: Issues found before conversion (reported as skipped).

    Yields:
        One Progress per item.

    Returns:
        The summary.
    """
    out = Path(out)
    if cfg.tiny is not None:
        tasks = [tasks[i] for i in stratified_subset([t.key for t in tasks], cfg.tiny, cfg.seed)]
    canon.prepare_output(out, cfg.overwrite)
    manifest = dict(canon.new_manifest(), **(manifest_extra or {}))
    canon.save_manifest(out, manifest)
    names = _assign_names(tasks)
    skipped, notes = list(issues), []
    workers = cfg.workers or min(4, os.cpu_count() or 1)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        results = pool.map(
            lambda tn: _convert_one(tn[0], tn[1], out), zip(tasks, names, strict=True)
        )
        for step, (task, (record, messages)) in enumerate(zip(tasks, results, strict=True), 1):
            if record is None:
                skipped.append(FileIssue(task.source, messages[0]))
            else:
                manifest["items"].append(record)
                notes += [FileIssue(task.source, "; ".join(messages))] if messages else []
            yield Progress(step, len(tasks), f"{task.name}", {"skipped": len(skipped)})
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    splits = _finish(out, manifest, cfg)
    return ConvertSummary(str(out), len(manifest["items"]), tuple(skipped), tuple(notes), splits)


def _assign_names(tasks: Sequence[Task]) -> list[str]:
    taken: set[str] = set()
    names = []
    for t in tasks:
        n = unique_name(safe_name(t.name), taken)
        taken.add(n)
        names.append(n)
    return names


def _convert_one(task: Task, name: str, out: Path) -> tuple[dict | None, list[str]]:
    try:
        ann, img, extra, notes = task.load()
        if ann.size_hw != tuple(img.size_hw):
            raise BadInputError(f"mask size {ann.size_hw} differs from image size {img.size_hw}")
        notes = [*img.notes, *notes]
        if name != task.name:
            notes.append(f"stored as {name!r}")
        record = canon.write_item(
            out,
            replace(ann, name=name),
            img.jpeg,
            "train",
            dict(extra, notes=notes) if notes else extra,
        )
        return record, notes
    except BadInputError as e:
        return None, [str(e)]
    except Exception as e:  # one broken file must not stop the rest; report it
        return None, [f"unexpected error: {type(e).__name__}: {e}"]


def _finish(out: Path, manifest: dict, cfg: ConvertConfig) -> dict[str, int]:
    records = sorted(manifest["items"], key=lambda r: r["name"])
    keys = [stratum_key(r) for r in records]
    for rec, split in zip(records, stratified_split(keys, cfg.val_fraction, cfg.seed), strict=True):
        rec["split"] = split
    canon.save_manifest(out, manifest)
    return canon.write_lists(out, manifest, cfg.tiny_list_size)
