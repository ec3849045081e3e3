"""Annotated images to browse and correct: a sam-pets dataset folder or a COCO JSON file.

:func:`open_items` turns either into an :class:`ItemSource`: the item names and, one at a
time, an item's image with its objects as one label image (object ids of the dataset; for
COCO, 1..K in the file's order) and the metadata that a re-export must keep (species, breed,
categories, ignore region, source). Qt-free; the napari reader and its item browser use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sam_pets.data.errors import BadInputError
from sam_pets.data.formats import coco as coco_fmt
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.types import masks_to_labels


@dataclass
class SourceItem:
    """One image with its objects.

    Attributes:
        name: Item name (the dataset's, or the COCO image's file stem).
        image: (H, W, 3) uint8 RGB.
        labels: (H, W) integer labels, 0 = background.
        meta: What a re-export keeps: ``source``, ``species``, ``breed``, ``categories``
            ({label id: name}), ``ignore`` ((H, W) bool), ``split``.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    meta: dict = field(default_factory=dict)


class ItemSource:
    """Items of a dataset folder or COCO file (see :func:`open_items`)."""

    kind = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names: list[str] = []

    def objects(self, name: str) -> int:
        """Number of objects of item ``name`` (no file read)."""
        raise NotImplementedError

    def load(self, name: str) -> SourceItem:
        """Read item ``name``.

        Raises:
            BadItemError: Its image or masks cannot be read (the message names the file).
            KeyError: No such item.
        """
        raise NotImplementedError


class DatasetItems(ItemSource):
    """The items of a sam-pets (canonical) dataset folder."""

    kind = "dataset"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._records = canon.items_by_name(canon.load_manifest(path))
        self.names = sorted(self._records)

    @property
    def root(self) -> Path:
        """The dataset folder (where a corrected item is exported back to)."""
        return self.path

    def objects(self, name: str) -> int:  # noqa: D102 - see ItemSource
        return len(self._records[name].get("objects", []))

    def load(self, name: str) -> SourceItem:  # noqa: D102 - see ItemSource
        rec = self._records[name]
        ann = canon.read_annotation(self.path, rec)
        ids = [o.id for o in ann.objects]
        labels = masks_to_labels(ann.masks, ids, ann.image.shape[:2])
        meta = {
            k: rec[k] for k in ("source", "species", "breed", "split") if rec.get(k) is not None
        }
        cats = {o.id: o.category for o in ann.objects if o.category}
        if cats:
            meta["categories"] = cats
        if ann.ignore is not None and ann.ignore.any():
            meta["ignore"] = ann.ignore
        return SourceItem(name, ann.image, labels, meta)


class CocoItems(ItemSource):
    """The images of a COCO instances file (relative to its folder or its ``images/``)."""

    kind = "coco"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        coco = coco_fmt.load_coco(path)
        items, _ = coco_fmt.group_images(coco)
        self._cats = {c.get("id"): c for c in coco["categories"] if isinstance(c, dict)}
        self._items = {coco_fmt.coco_item_name(it.entry): it for it in items}
        self.names = sorted(self._items)

    def objects(self, name: str) -> int:  # noqa: D102 - see ItemSource
        return len(self._items[name].annotations)

    def image_path(self, name: str) -> Path:
        """Where item ``name``'s image file is (next to the JSON, or in ``images/``)."""
        file_name = self._items[name].entry["file_name"]
        for folder in (self.path.parent, self.path.parent / "images"):
            if (folder / file_name).is_file():
                return folder / file_name
        return self.path.parent / file_name

    def load(self, name: str) -> SourceItem:  # noqa: D102 - see ItemSource
        from sam_pets.data.errors import BadItemError
        from sam_pets.data.imaging import decode_image, read_bytes, to_rgb_uint8

        it = self._items[name]
        path = self.image_path(name)
        try:
            image, _ = to_rgb_uint8(decode_image(read_bytes(path), path.name))
        except BadInputError as e:
            raise BadItemError(name, str(e)) from None
        ann, _ = coco_fmt.read_coco_image(it, image.shape[:2], self._cats)
        ids = list(range(1, len(ann.masks) + 1))
        labels = masks_to_labels(ann.masks, ids, image.shape[:2])
        meta = {"source": str(self.image_path(name))}
        cats = {i: o.category for i, o in zip(ids, ann.objects, strict=True) if o.category}
        if cats:
            meta["categories"] = cats
        if ann.ignore is not None and ann.ignore.any():
            meta["ignore"] = ann.ignore
        return SourceItem(name, image, labels, meta)


def is_coco_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a COCO instances file (a cheap sniff, no parse).

    A ``.json`` file whose first megabyte is an object naming an ``images`` or
    ``annotations`` list; :class:`CocoItems` parses and validates it.
    """
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and (b'"images"' in head or b'"annotations"' in head)


def open_items(path: str | os.PathLike) -> ItemSource:
    """A dataset folder (with ``dataset.json``) or a COCO JSON file as an :class:`ItemSource`.

    Raises:
        BadInputError: ``path`` is neither, or holds no item (the message says which).
    """
    path = Path(path)
    if path.is_dir() and (path / canon.MANIFEST).is_file():
        src: ItemSource = DatasetItems(path)
    elif path.is_file() and path.name == canon.MANIFEST:
        src = DatasetItems(path.parent)
    elif is_coco_file(path):
        src = CocoItems(path)  # parses and validates it once
    else:
        raise BadInputError(f"{path}: not a sam-pets dataset folder nor a COCO JSON file")
    if not src.names:
        raise BadInputError(f"{path}: no items")
    return src
