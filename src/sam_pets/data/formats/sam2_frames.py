"""Plain SAM 2 folders as Meta's trainer reads them: no manifest, videos of several frames.

``JPEGImages/<video>/<frame>.jpg`` with ``Annotations/<video>/<frame>.png`` (palette PNG, one
id per object); an ``Ignore/`` folder is read too when present (sam-pets' own addition).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sam_pets.data.errors import BadInputError
from sam_pets.data.formats.label_images import decode_label_png, labels_to_masks
from sam_pets.data.types import Annotation, ObjectInfo


@dataclass(frozen=True)
class FramePair:
    """One frame of a plain SAM 2 folder (as Meta's trainer reads it, no manifest needed)."""

    name: str
    image: Path
    labels: Path | None
    ignore: Path | None


def find_frames(root: str | os.PathLike) -> list[FramePair]:
    """Every ``JPEGImages/<video>/<frame>.jpg`` with its ``Annotations/`` PNG, if any.

    An item is named after its video, or ``<video>_<frame>`` when the video has several frames.

    Raises:
        FileNotFoundError: No ``JPEGImages/`` folder.
    """
    root = Path(root)
    if not (root / "JPEGImages").is_dir():
        raise FileNotFoundError(f"no JPEGImages/ folder under {root}")
    pairs = []
    for video in sorted(p for p in (root / "JPEGImages").iterdir() if p.is_dir()):
        frames = sorted(f for f in video.iterdir() if f.suffix.lower() in (".jpg", ".jpeg"))
        for f in frames:
            name = video.name if len(frames) == 1 else f"{video.name}_{f.stem}"
            png = root / "Annotations" / video.name / f"{f.stem}.png"
            ign = root / "Ignore" / video.name / f"{f.stem}.png"
            pairs.append(
                FramePair(name, f, png if png.is_file() else None, ign if ign.is_file() else None)
            )
    return pairs


def read_frame(pair: FramePair, size_hw: tuple[int, int]) -> Annotation:
    """Objects of one frame from its label PNG (and ignore PNG when present).

    Args:
        pair: The frame.
        size_hw: (H, W) of the decoded image, checked against the PNG.

    Raises:
        BadInputError: Missing, unreadable, empty or wrongly sized annotation.
    """
    if pair.labels is None:
        raise BadInputError("no annotation PNG for this frame")
    labels = decode_label_png(pair.labels.read_bytes(), pair.labels.name)
    if labels.shape != tuple(size_hw):
        raise BadInputError(
            f"annotation size {labels.shape[1]}x{labels.shape[0]} (WxH) differs from image "
            f"size {size_hw[1]}x{size_hw[0]}"
        )
    ids, masks = labels_to_masks(labels)
    if not len(ids):
        raise BadInputError("annotation PNG has no object")
    ignore = None
    if pair.ignore is not None:
        with Image.open(pair.ignore) as img:
            ignore = np.asarray(img.convert("L")) > 0
    objects = tuple(ObjectInfo(int(i)) for i in ids)
    return Annotation(
        pair.name, masks, objects, ignore, image_path=pair.image, source=str(pair.image)
    )
