"""Caches of image features: an in-memory LRU and an optional on-disk store.

Keys combine the image content (a hash of its bytes, shape and dtype) with the identity of
the model (a fingerprint of its weights), so a second ``set_image`` of the same picture with
the same model costs a dictionary lookup.
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from pathlib import Path

import torch

from sam_pets._atomic import atomic_write_bytes
from sam_pets.model.sam2 import ImageFeatures


class FeatureCache:
    """LRU of :class:`ImageFeatures` in memory, optionally backed by a directory on disk.

    Args:
        max_items: Entries kept in memory (each ~ 6 MB for 1024-input models).
        directory: Optional folder for the on-disk cache; files are ``<key>.pt``.
    """

    def __init__(self, max_items: int = 8, directory: str | os.PathLike | None = None) -> None:
        self.max_items = max_items
        self.directory = Path(directory) if directory else None
        self._mem: OrderedDict[str, ImageFeatures] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> ImageFeatures | None:
        """Return cached features or ``None``."""
        if key in self._mem:
            self._mem.move_to_end(key)
            self.hits += 1
            return self._mem[key]
        feats = self._read_disk(key)
        if feats is not None:
            self.hits += 1
            self._put_mem(key, feats)
            return feats
        self.misses += 1
        return None

    def put(self, key: str, feats: ImageFeatures) -> None:
        """Store features (in memory, and on disk when a directory is set)."""
        self._put_mem(key, feats)
        if self.directory is not None:
            buf = io.BytesIO()
            torch.save(
                {k: t.cpu() for k, t in zip(("e", "s0", "s1"), feats.tensors(), strict=False)}, buf
            )
            atomic_write_bytes(self.directory / f"{key}.pt", buf.getvalue())

    def clear(self) -> None:
        """Forget the in-memory entries (the disk store is left alone)."""
        self._mem.clear()

    def __len__(self) -> int:
        return len(self._mem)

    def _put_mem(self, key: str, feats: ImageFeatures) -> None:
        self._mem[key] = feats
        self._mem.move_to_end(key)
        while len(self._mem) > self.max_items:
            self._mem.popitem(last=False)

    def _read_disk(self, key: str) -> ImageFeatures | None:
        if self.directory is None:
            return None
        path = self.directory / f"{key}.pt"
        if not path.is_file():
            return None
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
            return ImageFeatures(d["e"], d["s0"], d["s1"])
        except Exception:  # a corrupt cache entry is a miss, never an error
            return None
