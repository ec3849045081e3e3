"""Evaluation items of a canonical dataset: image, object masks, ignore region, labels.

Items are read one at a time (numpy in, numpy out) and checked on the way. An item that
cannot be read gives a :class:`~sam_pets.data.errors.BadItemError` naming the item and the
file; :func:`iter_items` can hand it over instead of raising, so a job skips that item and
goes on with the rest.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam_pets.data.errors import BadInputError, BadItemError
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.types import FileIssue

SPLITS = ("all", "train", "val", "train_tiny", "val_tiny")


@dataclass(frozen=True)
class EvalItem:
    """One image with its objects.

    Attributes:
        name: Item name in the dataset.
        image: (H, W, 3) uint8 RGB.
        masks: (K, H, W) bool object masks, crowd objects excluded.
        ignore: (H, W) bool pixels left out of every metric (trimap border, crowd regions).
        species: "cat", "dog" or None.
        breed: Breed name or None.
        categories: (K,) category names (None where unknown).
        object_ids: (K,) object ids as in the label PNG.
    """

    name: str
    image: np.ndarray
    masks: np.ndarray
    ignore: np.ndarray
    species: str | None
    breed: str | None
    categories: tuple[str | None, ...]
    object_ids: tuple[int, ...]

    @property
    def seed_key(self) -> int:
        """A stable 32-bit number from the item name (seeds per-item random prompts)."""
        return zlib.crc32(self.name.encode("utf-8"))


def item_names(root: str | os.PathLike, split: str = "all", limit: int | None = None) -> list[str]:
    """Names of the items to evaluate, sorted, at most ``limit``.

    Raises:
        BadInputError: ``root`` is not a dataset, the split list is missing, or it is empty.
    """
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"dataset folder not found: {root}")
    if split not in SPLITS:
        raise BadInputError(f"split must be one of {SPLITS}, got {split!r}")
    records = canon.items_by_name(canon.load_manifest(root))
    if split == "all":
        names = sorted(records)
    else:
        try:
            names = [n for n in canon.read_list(root, split) if n in records]
        except FileNotFoundError:
            raise BadInputError(f"{root} has no {split}_list.txt") from None
    names = names[:limit] if limit is not None else names
    if not names:
        raise BadInputError(f"{root}: no items to evaluate in split {split!r}")
    return names


def load_item(root: str | os.PathLike, record: dict) -> EvalItem:
    """Read and check one item.

    Raises:
        BadItemError: The image or mask file is missing or unreadable, or their sizes
            disagree.
    """
    ann = canon.read_annotation(root, record)
    masks, ignore, objects = ann.masks, ann.ignore, record["objects"]
    keep = [k for k, o in enumerate(objects) if not o.get("iscrowd")]
    for k, o in enumerate(objects):
        if o.get("iscrowd"):
            ignore = ignore | masks[k]
    return EvalItem(
        name=ann.name,
        image=ann.image,
        masks=masks[keep],
        ignore=ignore,
        species=record.get("species"),
        breed=record.get("breed"),
        categories=tuple(objects[k].get("category") for k in keep),
        object_ids=tuple(int(objects[k]["id"]) for k in keep),
    )


def iter_items(
    root: str | os.PathLike, names: list[str], yield_errors: bool = False
) -> Iterator[EvalItem | BadItemError]:
    """Load the named items in order (see :func:`load_item`).

    Args:
        root: Dataset folder.
        names: Item names (from :func:`item_names`).
        yield_errors: For an item that cannot be read, yield its :class:`BadItemError`
            instead of raising it, so the caller can record it as skipped and go on.

    Yields:
        The items (and with ``yield_errors``, the errors of unreadable ones), in order.

    Raises:
        BadItemError: An item cannot be read (only without ``yield_errors``).
    """
    records = canon.items_by_name(canon.load_manifest(root))
    for name in names:
        try:
            item = load_item(root, records[name])
        except BadItemError as e:
            if not yield_errors:
                raise
            item = e
        yield item


def skipped_json(skipped: Sequence[FileIssue]) -> list[dict]:
    """Skipped items as JSON-ready ``{"item": ..., "reason": ...}`` records."""
    return [{"item": i.source, "reason": i.reason} for i in skipped]
