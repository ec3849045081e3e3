"""Torch datasets over the canonical format and over in-memory annotations.

Each sample is a dict:

- ``image``: ``tv_tensors.Image`` (3, H, W) uint8 RGB.
- ``masks``: ``tv_tensors.Mask`` (K, H, W) bool, one per object (crowd objects excluded).
- ``boxes_xyxy``: ``tv_tensors.BoundingBoxes`` (K, 4) float32 XYXY with inclusive pixel
  indices (as :func:`sam_pets.data.prompts.tight_box`; after augmentation, the transformed box).
- ``ignore``: ``tv_tensors.Mask`` (H, W) bool, pixels to leave out of losses and metrics.
- ``object_ids``: (K,) int64 ids (as in the label PNG).
- ``name``, ``species``, ``breed``: str or None.

Decoding is lazy (in ``__getitem__``) and no file handle is kept open between items, so the
datasets are safe with ``DataLoader(num_workers > 0)`` under fork or spawn. Objects that an
augmentation pushes fully out of the frame are dropped. Use :func:`collate_samples` since
sizes and K vary.

Unreadable items: ``CanonicalDataset(..., check=True)`` reads every item once when it is
opened and leaves out those that cannot be read (listed in ``skipped``), so a job knows
before it starts which items it has. Without the check, an item that cannot be read raises
:class:`~sam_pets.data.errors.BadItemError` (naming the item and the file) in
``__getitem__``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from sam_pets.data import copy_paste
from sam_pets.data.augment import AugmentConfig, build_transform
from sam_pets.data.errors import BadItemError
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.imaging import decode_image, read_bytes, to_rgb_uint8
from sam_pets.data.prompts import tight_box
from sam_pets.data.split import inverse_frequency_weights, stratum_key
from sam_pets.data.types import Annotation, FileIssue

BORDER_POLICIES = ("ignore", "foreground", "background")
_EDGE = np.array([0, 0, 1, 1], dtype=np.float32)


@dataclass(frozen=True)
class DatasetConfig:
    """How items become samples.

    Attributes:
        split: "train", "val", "train_tiny", "val_tiny" or "all" (canonical datasets only).
        border: What the ignore region (Oxford trimap border) means: "ignore" keeps it
            ignored, "foreground" adds it to the object, "background" makes it background.
            "foreground" applies to single-object items; with several objects it acts as
            "ignore" (which object owns a border pixel is unknown).
        augment: Training augmentation; None (the default) for evaluation.
    """

    split: str = "train"
    border: str = "ignore"
    augment: AugmentConfig | None = None

    def __post_init__(self) -> None:
        if self.border not in BORDER_POLICIES:
            raise ValueError(f"border must be one of {BORDER_POLICIES}, got {self.border!r}")


class _SampleMixin:
    cfg: DatasetConfig

    def _init_transform(self) -> None:
        self._transform = build_transform(self.cfg.augment)

    def _make_sample(
        self,
        rgb: np.ndarray,
        masks: np.ndarray,
        ignore: np.ndarray,
        objects: Sequence[dict],
        meta: dict,
    ) -> dict:
        keep = [k for k, o in enumerate(objects) if not o.get("iscrowd")]
        crowd = [k for k, o in enumerate(objects) if o.get("iscrowd")]
        masks_kept, ignore = _apply_border(masks[keep], ignore, self.cfg.border)
        for k in crowd:  # crowd regions are always ignored, whatever the border policy
            ignore = ignore | masks[k]
        masks = masks_kept
        ids = torch.tensor([objects[k]["id"] for k in keep], dtype=torch.int64)
        return self._finish(rgb, masks, ignore, ids, meta)

    def _finish(self, rgb, masks, ignore, ids, meta) -> dict:
        h, w = masks.shape[1:]
        boxes = np.stack([tight_box(m) for m in masks]) if len(masks) else np.zeros((0, 4))
        image = tv_tensors.Image(torch.from_numpy(np.array(rgb)).permute(2, 0, 1).contiguous())
        tm = tv_tensors.Mask(torch.from_numpy(masks))
        ti = tv_tensors.Mask(torch.from_numpy(ignore))
        # v2 treats boxes as pixel edges ([x0, x1) ...); ours hold inclusive pixel indices
        tb = tv_tensors.BoundingBoxes(
            torch.as_tensor(boxes + _EDGE, dtype=torch.float32), format="XYXY", canvas_size=(h, w)
        )
        if self._transform is not None:
            image, tm, ti, tb = self._transform(image, tm, ti, tb)
            present = tm.flatten(1).any(1) if len(tm) else torch.zeros(0, dtype=torch.bool)
            tm, tb, ids = tm[present], tb[present], ids[present]
        inclusive = tb.as_subclass(torch.Tensor) - torch.from_numpy(_EDGE).float()
        inclusive[:, 2:] = torch.maximum(inclusive[:, 2:], inclusive[:, :2])
        tb = tv_tensors.BoundingBoxes(inclusive, format="XYXY", canvas_size=tuple(ti.shape[-2:]))
        tm = tv_tensors.Mask(tm)
        return {
            "image": image,
            "masks": tm,
            "boxes_xyxy": tb,
            "ignore": ti,
            "object_ids": ids,
            **meta,
        }


def _apply_border(masks: np.ndarray, ignore: np.ndarray, policy: str):
    if policy == "background" or (policy == "foreground" and len(masks) == 1):
        if policy == "foreground":
            masks = masks | ignore[None]
        return masks, np.zeros_like(ignore)
    return masks, ignore


class CanonicalDataset(_SampleMixin, Dataset):
    """Samples of a canonical dataset folder (see :mod:`sam_pets.data.formats.sam2_folder`).

    Attributes:
        records: Manifest records of the items, in split-list order.
        skipped: Items left out by ``check=True`` because they cannot be read (``source`` is
            the item name, ``reason`` names the file and the problem); empty otherwise.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        cfg: DatasetConfig = DatasetConfig(),
        check: bool = False,
        workers: int = 0,
        max_side: int | None = None,
        backgrounds: Sequence[np.ndarray] = (),
    ) -> None:
        """Read the manifest and the split list (and with ``check``, every item once).

        Args:
            root: Dataset folder.
            cfg: Split, border policy and augmentation.
            check: Read every item now and leave out (into :attr:`skipped`) those that cannot
                be read; otherwise no image is opened here.
            workers: Threads for the check and :meth:`preload` (0: ``min(4, cpu count)``).
            max_side: Shrink items whose longer side exceeds this many pixels as they are
                read (image antialiased; a mask pixel is the object's when half of its area
                is, ignored when any of it is), before augmentation: a training sample at
                S x S needs no 12 MP photo. None keeps the files' size.
            backgrounds: Extra backgrounds for copy-paste augmentation (RGB uint8 images;
                ``cfg.augment.copy_paste_prob``), used half of the time; the other half,
                and always without them, a strip of another item beside its objects.
        """
        self.root = Path(root)
        self.cfg = cfg
        self.max_side = max_side
        self.backgrounds = list(backgrounds)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._memory: dict[int, tuple] = {}
        records = canon.items_by_name(canon.load_manifest(self.root))
        names = sorted(records) if cfg.split == "all" else canon.read_list(self.root, cfg.split)
        self.records = [records[n] for n in names if n in records]
        self.skipped: tuple[FileIssue, ...] = ()
        if check:
            self._drop_unreadable(self.workers)
        self._init_transform()

    def _drop_unreadable(self, workers: int) -> None:
        def problem(rec: dict) -> FileIssue | None:
            try:
                canon.read_annotation(self.root, rec)
            except BadItemError as e:
                return FileIssue(e.item, e.reason)
            return None

        with ThreadPoolExecutor(max_workers=workers) as pool:
            problems = list(pool.map(problem, self.records))
        self.skipped = tuple(p for p in problems if p is not None)
        self.records = [r for r, p in zip(self.records, problems, strict=True) if p is None]

    def __len__(self) -> int:
        return len(self.records)

    def sample_weights(self) -> torch.Tensor:
        """(N,) weights for ``WeightedRandomSampler`` balancing breeds (or species/category)."""
        keys = [stratum_key(r) for r in self.records]
        return torch.from_numpy(inverse_frequency_weights(keys))

    def item_key(self, index: int) -> str:
        """Content key of item ``index`` as a sample: what ``self[index]`` is computed from.

        A hash of the item's image and annotation files (labels, ignore, objects), its object
        list and this dataset's config (split aside: border policy, augmentation, size), so
        any change to the item or to how it is read gives another key (for caches on disk).
        """
        rec = self.records[index]
        h = hashlib.blake2b(digest_size=16)
        cfg = DatasetConfig(border=self.cfg.border, augment=self.cfg.augment)
        h.update(repr(cfg).encode())
        if self.max_side:
            h.update(f"|max_side={self.max_side}".encode())
        layout = {
            "objects": [[o["id"], bool(o.get("iscrowd"))] for o in rec["objects"]],
            "ignore": bool(rec.get("ignore")),
            "overlaps": bool(rec.get("overlaps")),
        }
        h.update(json.dumps(layout).encode())
        paths = canon.item_paths(self.root, rec["name"])
        for path in (paths.image, paths.labels, paths.ignore, paths.objects):
            data = path.read_bytes() if path.is_file() else b""
            h.update(f"|{path.parent.parent.name}:{len(data)}|".encode())
            h.update(data)
        return h.hexdigest()

    def preload(self, budget_mb: float) -> int:
        """Decode (and shrink, see ``max_side``) items into memory, up to ``budget_mb``.

        Later reads of those items cost no file access nor decoding; DataLoader workers
        started afterwards share them. Items that cannot be read are left to
        ``__getitem__`` (which names them). Returns the number of items kept.
        """
        budget = budget_mb * 2**20
        used = sum(_nbytes(v) for v in self._memory.values())
        todo = [i for i in range(len(self.records)) if i not in self._memory]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for start in range(0, len(todo), 64):
                if used >= budget:
                    break
                chunk = todo[start : start + 64]
                for i, arrays in zip(chunk, pool.map(self._try_read, chunk), strict=True):
                    if arrays is not None and used + _nbytes(arrays) <= budget:
                        self._memory[i] = arrays
                        used += _nbytes(arrays)
        return len(self._memory)

    def _try_read(self, index: int) -> tuple | None:
        try:
            return self._read(index)
        except BadItemError:
            return None

    def _read(self, index: int) -> tuple:
        """(image, masks, ignore) of item ``index``, shrunk to ``max_side``."""
        if index in self._memory:
            return self._memory[index]
        ann = canon.read_annotation(self.root, self.records[index])
        ignore = ann.ignore if ann.ignore is not None else np.zeros(ann.size_hw, bool)
        return _shrink(ann.image, ann.masks, ignore, self.max_side)

    def __getitem__(self, index: int) -> dict:
        """The sample of item ``index``; raises BadItemError if it cannot be read."""
        rec = self.records[index]
        image, masks, ignore = self._read(index)
        aug = self.cfg.augment
        if aug is not None and aug.copy_paste_prob > 0 and torch.rand(()) < aug.copy_paste_prob:
            image = self._copy_paste(index, image, masks, ignore)
        objects = rec["objects"]
        if aug is not None and aug.paste_objects_prob > 0:
            if torch.rand(()) < aug.paste_objects_prob:
                image, masks, ignore, objects = self._paste_objects(
                    index, image, masks, ignore, objects
                )
        meta = {"name": rec["name"], "species": rec.get("species"), "breed": rec.get("breed")}
        return self._make_sample(image, masks, ignore, objects, meta)

    def _paste_objects(self, index: int, image, masks, ignore, objects):
        """1 to ``paste_objects_max`` objects of other items pasted on as new objects."""
        n = 1 + int(torch.randint(max(1, self.cfg.augment.paste_objects_max), ()))
        pieces = []
        for _ in range(n if len(self.records) > 1 else 0):
            other = int(torch.randint(len(self.records) - 1, ()))
            other += other >= index
            try:
                o_img, o_masks, o_ign = self._read(other)
            except BadItemError:
                continue
            usable = [
                k
                for k, o in enumerate(self.records[other]["objects"])
                if not o.get("iscrowd") and k < len(o_masks) and o_masks[k].any()
            ]
            if usable:
                k = usable[int(torch.randint(len(usable), ()))]
                pieces.append(copy_paste.cut_out(o_img, o_masks[k], o_ign))
        if not pieces:
            return image, masks, ignore, objects
        image, masks, ignore = copy_paste.paste_objects(image, masks, ignore, pieces)
        top = max((int(o["id"]) for o in objects), default=0)
        objects = [*objects, *({"id": top + 1 + j} for j in range(len(pieces)))]
        # an object hidden by a pasted one, or a piece too small to keep a pixel, is dropped
        kept = [k for k in range(len(masks)) if masks[k].any()]
        return image, masks[kept], ignore, [objects[k] for k in kept]

    def _copy_paste(self, index: int, image, masks, ignore) -> np.ndarray:
        """``image``'s objects on a background drawn with torch's RNG.

        The objects keep the first pixels of their ignored band (fur at a pet's edge);
        the rest of the band takes the background, so no halo of the old one is left.
        """
        core = masks.any(0) if len(masks) else np.zeros_like(ignore)
        alpha = core | (ignore & ndimage.binary_dilation(core, iterations=2))
        background = None
        if len(self.records) > 1 and (not self.backgrounds or torch.rand(()) < 0.5):
            other = int(torch.randint(len(self.records) - 1, ()))
            other += other >= index
            try:
                o_img, o_masks, o_ign = self._read(other)
            except BadItemError:
                o_img = None
            if o_img is not None:
                o_obj = o_ign | (o_masks.any(0) if len(o_masks) else np.zeros_like(o_ign))
                background = copy_paste.free_strip(o_img, o_obj)
        if background is None and self.backgrounds:
            background = self.backgrounds[int(torch.randint(len(self.backgrounds), ()))]
        if background is None:
            return image
        h, w = alpha.shape
        return copy_paste.paste(image, alpha, copy_paste.random_crop(background, w / h))


class AnnotationDataset(_SampleMixin, Dataset):
    """Samples of in-memory :class:`~sam_pets.data.types.Annotation` records.

    An annotation without ``image`` is decoded from ``image_path`` in ``__getitem__``.
    """

    def __init__(
        self, annotations: Sequence[Annotation], cfg: DatasetConfig = DatasetConfig()
    ) -> None:
        """Keep the annotations (``cfg.split`` is not used here)."""
        self.annotations = list(annotations)
        self.cfg = cfg
        self._init_transform()

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, index: int) -> dict:
        ann = self.annotations[index]
        rgb = ann.image
        if rgb is None:
            rgb = decode_image(read_bytes(ann.image_path), str(ann.image_path))
        rgb, _ = to_rgb_uint8(rgb)
        ignore = ann.ignore if ann.ignore is not None else np.zeros(ann.size_hw, bool)
        objects = [{"id": o.id, "iscrowd": o.iscrowd} for o in ann.objects]
        meta = {"name": ann.name, "species": ann.species, "breed": ann.breed}
        return self._make_sample(rgb, ann.masks.astype(bool), ignore.astype(bool), objects, meta)


def _nbytes(arrays: tuple) -> int:
    return sum(a.nbytes for a in arrays)


def _shrink(image: np.ndarray, masks: np.ndarray, ignore: np.ndarray, max_side: int | None):
    """Image, masks and ignore region scaled so the longer side is at most ``max_side``."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, masks, ignore
    scale = max_side / max(h, w)
    size = [max(1, round(h * scale)), max(1, round(w * scale))]
    img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    img = TF.resize(img, size, antialias=True).permute(1, 2, 0).contiguous().numpy()
    m = torch.from_numpy(np.ascontiguousarray(masks)).float()[None]  # (1, K, H, W)
    m = F.interpolate(m, size=size, mode="area")[0] >= 0.5 if len(masks) else None
    small = m.numpy() if m is not None else np.zeros((0, *size), bool)
    ign = torch.from_numpy(np.ascontiguousarray(ignore)).float()[None, None]
    ign = (F.interpolate(ign, size=size, mode="area")[0, 0] > 0).numpy()
    return img, small, ign


def collate_samples(batch: list[dict]) -> list[dict]:
    """Collate function for DataLoader: keep samples as a list (sizes and K differ)."""
    return list(batch)
