"""Segment every object of each image of a folder, resumably, into label images, COCO or a dataset.

Layout of the output folder ``OUT``:

- ``segment.json``: the run (model, parameters, formats); a second run into ``OUT`` with
  other settings is refused, with the same settings it resumes;
- ``parts/<name>.json``: one image's masks (COCO RLE with predicted IoU and stability score),
  written last, so an image with a part is done;
- ``labels/<name>.png`` (or ``.tif``): label image, one id per instance, 0 background;
  overlapping masks are painted largest first, so a part stays visible on its whole;
- ``coco.json``: COCO instances of all images (``score`` = predicted IoU), assembled from
  the parts at the end of every run;
- ``dataset/``: a sam-pets dataset (one item per image), to open in the Annotator, correct,
  export and train on.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sam_pets._atomic import atomic_write_text
from sam_pets.data.fsutil import safe_name
from sam_pets.predict.everything import AutoMask, Cancelled, EverythingParams, iter_everything
from sam_pets.predict.images import IMAGE_SUFFIXES, ImageReadError, read_image
from sam_pets.predict.predictor import ImagePredictor
from sam_pets.progress import Progress

FORMATS = ("labels", "coco", "dataset")
RUN_FILE = "segment.json"


class RunMismatch(ValueError):
    """The output folder holds a run with other settings."""


@dataclass
class SegmentSummary:
    """What a folder run did.

    Attributes:
        done: Names of the images segmented in this run.
        resumed: Names found done by an earlier run (skipped).
        skipped: ``(file, reason)`` of each unreadable input.
        masks: Masks per image name (this run and earlier ones).
        coco: Path of ``coco.json`` when written.
    """

    done: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    masks: dict[str, int] = field(default_factory=dict)
    coco: str | None = None


def list_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Image files named by ``inputs`` (files as given, folders' images sorted by name).

    A file named twice (directly, or also through its folder) is listed once.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            found = sorted(
                f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            found = [p]
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def labels_from_masks(masks: Sequence[AutoMask], hw: tuple[int, int]) -> np.ndarray:
    """One id per mask (1, 2, ... in ``masks`` order), painted largest first; uint16/uint32.

    A mask that smaller masks cover completely keeps no pixel.
    """
    dtype = np.uint16 if len(masks) < 65536 else np.uint32
    labels = np.zeros(hw, dtype=dtype)
    for i in sorted(range(len(masks)), key=lambda k: -masks[k].area):
        x0, y0, x1, y1 = masks[i].window
        labels[y0:y1, x0:x1][masks[i].mask] = i + 1
    return labels


def coco_annotations(masks: Sequence[AutoMask], hw: tuple[int, int], image_id: int) -> list:
    """COCO annotations of ``masks`` (RLE, bbox, area, score = predicted IoU)."""
    anns = []
    for m in masks:
        anns.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "segmentation": m.rle(hw),
                "area": m.area,
                "bbox": m.bbox_xywh(),
                "iscrowd": 0,
                "score": round(m.predicted_iou, 6),
                "predicted_iou": round(m.predicted_iou, 6),
                "stability_score": round(m.stability_score, 6),
                "point_coords": [[round(m.point[0], 2), round(m.point[1], 2)]],
                "crop_box": [  # XYWH, as Meta's records
                    int(m.crop_box[0]),
                    int(m.crop_box[1]),
                    int(m.crop_box[2] - m.crop_box[0]),
                    int(m.crop_box[3] - m.crop_box[1]),
                ],
            }
        )
    return anns


def iter_segment_folder(
    predictor: ImagePredictor,
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    params: EverythingParams | None = None,
    formats: Sequence[str] = ("labels", "coco"),
    label_suffix: str = ".png",
    model_name: str = "",
    overwrite: bool = False,
    cancel: threading.Event | None = None,
) -> Generator[Progress, None, SegmentSummary]:
    """Segment every image of ``inputs`` into ``out``; yields progress per point batch.

    A run into a folder holding an earlier run with the same model, parameters and formats
    resumes it: images already done are skipped. ``overwrite`` starts over instead.
    An unreadable image is skipped with a notice naming the file; the rest goes on.

    Raises:
        RunMismatch: ``out`` holds a run with other settings (and not ``overwrite``).
        FileExistsError: ``out`` is a file, or a folder of other data.
        ValueError: unknown format or label suffix.
    """
    params = params or EverythingParams()
    formats = tuple(dict.fromkeys(formats))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}, got {list(formats)}")
    if label_suffix not in (".png", ".tif", ".tiff"):
        raise ValueError(f"label images are .png or .tif, not {label_suffix!r}")
    root = Path(out)
    files = list_images(inputs)
    from sam_pets.model.fingerprint import weights_fingerprint

    run = {
        "model": model_name,
        "weights": weights_fingerprint(predictor.model),
        "params": params.to_dict(),
        "formats": list(formats),
        "label_suffix": label_suffix,
    }
    _open_run(root, run, overwrite)
    names = _names(files)
    parts = root / "parts"
    per_image = _batches_per_image(params)
    total = per_image * len(files)
    summary = SegmentSummary()
    for k, (path, name) in enumerate(zip(files, names, strict=True)):
        base = k * per_image
        part = parts / f"{name}.json"
        source = _source_record(path)
        done = _read_part(part)
        if done is not None and done.get("source") == source:
            summary.resumed.append(name)
            summary.masks[name] = len(done.get("annotations", ()))
            yield Progress(base + per_image, total, f"{path.name}: done earlier")
            continue
        try:
            image = read_image(path)
            if image.shape[0] == 0 or image.shape[1] == 0:
                raise ImageReadError(f"{path}: empty image ({image.shape[1]}x{image.shape[0]})")
            job = iter_everything(predictor, image, params, cancel)
            while True:
                try:
                    rec = next(job)
                except StopIteration as stop:
                    masks = stop.value
                    break
                step = base + round(rec.step / max(rec.total or 1, 1) * per_image)
                yield Progress(
                    min(step, base + per_image - 1),
                    total,
                    f"image {k + 1}/{len(files)} {path.name}: {rec.message}",
                )
            hw = image.shape[:2]
            notice = _write_outputs(root, path, name, image, masks, formats, label_suffix)
            record = {
                "file_name": str(path),
                "source": source,
                "name": name,
                "height": int(hw[0]),
                "width": int(hw[1]),
                "annotations": coco_annotations(masks, hw, 0),
            }
            atomic_write_text(part, json.dumps(record))
        except Cancelled:
            raise
        except (ImageReadError, ValueError, OSError, RuntimeError) as e:
            reason = str(e) if str(path) in str(e) else f"{path}: {e}"
            summary.skipped.append((str(path), reason))
            yield Progress(base + per_image, total, f"skipped {path.name}", notice=reason)
            continue
        summary.done.append(name)
        summary.masks[name] = len(masks)
        yield Progress(base + per_image, total, f"{path.name}: {len(masks)} masks", notice=notice)
    if "coco" in formats:
        summary.coco = str(_assemble_coco(root, names))
    return summary


def _batches_per_image(p: EverythingParams) -> int:
    grids = p.grids()
    n = -(-len(grids[0]) // p.points_per_batch)
    for layer in range(1, p.crop_n_layers + 1):
        n += 4**layer * -(-len(grids[layer]) // p.points_per_batch)
    return n


def _names(files: Sequence[Path]) -> list[str]:
    """Unique safe names, from each file's stem; unique regardless of case (file systems)."""
    taken: set[str] = set()
    names = []
    for f in files:
        name = safe_name(f.stem)
        k = 2
        candidate = name
        while candidate.lower() in taken:
            candidate = f"{name}_{k}"
            k += 1
        taken.add(candidate.lower())
        names.append(candidate)
    return names


def _source_record(path: Path) -> dict:
    """What identifies an input file: resolved path, size and modification time."""
    try:
        st = path.stat()
        return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return {"path": str(path.resolve())}


def _read_part(part: Path) -> dict | None:
    """An image's part record, or None when absent or unreadable (then it is done again)."""
    if not part.is_file():
        return None
    try:
        rec = json.loads(part.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("annotations"), list) else None


def _open_run(root: Path, run: dict, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} is a file; --out must be a folder")
    run_file = root / RUN_FILE
    if run_file.is_file():
        try:
            old = json.loads(run_file.read_text())
        except (OSError, ValueError) as e:
            raise RunMismatch(f"{run_file}: unreadable run record ({e})") from None
        if old != run and not overwrite:
            diff = sorted(k for k in run if old.get(k) != run[k])
            raise RunMismatch(
                f"{root} holds a run with other {', '.join(diff)}; use another --out, or "
                "--overwrite to start over"
            )
        if overwrite:
            _clear_run(root)
    elif root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{root} is not empty and holds no segment run; use an empty or new folder"
            )
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_file, json.dumps(run, indent=1))


def _clear_run(root: Path) -> None:
    """Remove what an earlier run wrote (parts, label images, dataset, coco.json)."""
    import shutil

    for sub in ("parts", "labels", "dataset"):
        if (root / sub).is_dir():
            shutil.rmtree(root / sub)
    (root / "coco.json").unlink(missing_ok=True)


def _write_outputs(
    root: Path,
    path: Path,
    name: str,
    image: np.ndarray,
    masks: list[AutoMask],
    formats: Sequence[str],
    label_suffix: str,
) -> str:
    """Label image and dataset item of one image; returns a notice ('' if none)."""
    hw = image.shape[:2]
    notice = "" if masks else f"{path}: no object found"
    labels = labels_from_masks(masks, hw) if ("labels" in formats or "dataset" in formats) else None
    if "labels" in formats:
        from sam_pets.data.formats.label_images import write_label_image

        (root / "labels").mkdir(parents=True, exist_ok=True)
        write_label_image(root / "labels" / f"{name}{label_suffix}", labels)
    if "dataset" in formats and labels is not None and labels.any():
        from sam_pets.data.export import export_annotation

        export_annotation(
            root / "dataset",
            image,
            labels,
            name,
            metadata={"source": str(path.resolve())},
            replace=True,
        )
    elif "dataset" in formats:
        notice = f"{path}: no object found; no dataset item written"
    return notice


def _assemble_coco(root: Path, names: Sequence[str]) -> Path:
    """``coco.json`` from the parts of ``names`` (those done), atomically."""
    images, anns = [], []
    for name in names:
        rec = _read_part(root / "parts" / f"{name}.json")
        if rec is None:
            continue
        image_id = len(images) + 1
        images.append(
            {
                "id": image_id,
                "file_name": rec["file_name"],
                "height": rec["height"],
                "width": rec["width"],
            }
        )
        for a in rec["annotations"]:
            anns.append({**a, "id": len(anns) + 1, "image_id": image_id})
    coco = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "object", "supercategory": "object"}],
    }
    path = root / "coco.json"
    atomic_write_text(path, json.dumps(coco))
    return path
