"""In-memory records shared by the format readers, the writers and the datasets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ObjectInfo:
    """One annotated object (instance).

    Attributes:
        id: Instance id, >= 1; the value of the object in the label PNG.
        category: Class name when known ("window", "person", "cat").
        category_id: Class id in the source format when known (COCO ``category_id``).
        iscrowd: COCO crowd region: kept for round trips, treated as ignore when training.
    """

    id: int
    category: str | None = None
    category_id: int | None = None
    iscrowd: bool = False


def masks_to_labels(masks: np.ndarray, ids, hw: tuple[int, int]) -> np.ndarray:
    """One label image from K object masks: object ``ids[k]`` where ``masks[k]`` is set.

    Where objects overlap, the earlier one keeps the pixel (as the Annotator's commits do).
    uint16 when the ids fit, else int32.

    Args:
        masks: (K, H, W) bool.
        ids: K positive integer ids.
        hw: (H, W), for K = 0.
    """
    ids = [int(i) for i in ids]
    top = max([0, *ids])
    labels = np.zeros(hw, np.uint16 if top <= np.iinfo(np.uint16).max else np.int32)
    for oid, m in zip(ids, masks, strict=True):
        labels[m & (labels == 0)] = oid
    return labels


@dataclass(frozen=True)
class Annotation:
    """One annotated image, in memory.

    Masks are a stack so that overlapping instances (COCO) survive; :func:`masks_to_labels`
    makes a single label map of them.

    Attributes:
        name: Item name (a safe folder name in the canonical dataset).
        masks: (K, H, W) bool, one mask per object, in the order of ``objects``.
        objects: K object records.
        ignore: (H, W) bool region to ignore (Oxford border, LabelMe ``__ignore__``), or None.
        image: (H, W, 3) uint8 RGB pixels, or None when only ``image_path`` is known.
        image_path: Source image file, or None for in-memory images.
        species: "cat" / "dog" when known.
        breed: Breed name when known.
        source: Where the annotation came from (a path), for the manifest.
    """

    name: str
    masks: np.ndarray
    objects: tuple[ObjectInfo, ...]
    ignore: np.ndarray | None = None
    image: np.ndarray | None = None
    image_path: Path | None = None
    species: str | None = None
    breed: str | None = None
    source: str | None = None

    @property
    def size_hw(self) -> tuple[int, int]:
        """(H, W) of the masks."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @property
    def object_ids(self) -> tuple[int, ...]:
        """Instance ids in mask order."""
        return tuple(o.id for o in self.objects)


@dataclass(frozen=True)
class FileIssue:
    """A per-file message for a summary.

    Attributes:
        source: The file (or item) concerned.
        reason: Why it was skipped, or what was converted.
    """

    source: str
    reason: str


@dataclass(frozen=True)
class ConvertSummary:
    """Result of a conversion job.

    Attributes:
        out: The written dataset folder or file.
        converted: Number of items written.
        skipped: Items left out, each with its reason.
        notes: Items written after a conversion worth knowing (PNG named .jpg, 16-bit...).
        splits: Items per split name.
    """

    out: str
    converted: int
    skipped: tuple[FileIssue, ...] = ()
    notes: tuple[FileIssue, ...] = ()
    splits: dict[str, int] = field(default_factory=dict)

    def format(self, max_lines: int = 20) -> str:
        """Human-readable multi-line summary.

        Args:
            max_lines: Per-file lines shown for skipped items and for notes, each; the rest
                are counted (every note is also kept in the item's manifest record).
        """
        lines = [f"converted {self.converted}, skipped {len(self.skipped)} -> {self.out}"]
        if not self.converted:
            lines = [f"converted 0, skipped {len(self.skipped)}: no dataset written to {self.out}"]
        if self.splits:
            lines.append("splits: " + ", ".join(f"{k} {v}" for k, v in self.splits.items()))
        for kind, issues in (("skipped", self.skipped), ("note", self.notes)):
            lines += [f"  {kind} {i.source}: {i.reason}" for i in issues[:max_lines]]
            if len(issues) > max_lines:
                lines.append(f"  ... and {len(issues) - max_lines} more {kind} lines")
        return "\n".join(lines)


def as_metadata(value: Any) -> Any:
    """Make ``value`` JSON-serialisable (paths to str, numpy scalars to Python)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): as_metadata(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_metadata(v) for v in value]
    return value
