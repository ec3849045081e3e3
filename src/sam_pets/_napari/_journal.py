"""The Annotator's link to the annotation journal (:mod:`sam_pets.data.journal`).

Every commit, undo and refine writes the image plane's labels, with the prompts and model of
each object, on the journal's own thread; opening an image plane that has a record whose
labels the target layer does not show offers to restore them; exporting a plane prunes its
record.
"""

from __future__ import annotations

import time

import numpy as np

from sam_pets._napari import _layers as L
from sam_pets._napari._targets import layer_id
from sam_pets.data.fsutil import image_key
from sam_pets.data.journal import Journal, JournalError, JournalWriter, Record

_WRITERS: dict[str, JournalWriter] = {}  # one writer thread per journal folder, per process


class SessionJournal:
    """Journal records of the planes annotated in one dock.

    The docks of a process share one writer thread per journal folder; it holds no reference
    to a dock, so a closed dock is freed.

    Args:
        journal: Where records go (default: the per-user journal).
    """

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal or Journal()
        root = str(self.journal.root)
        if root not in _WRITERS:
            _WRITERS[root] = JournalWriter(Journal(self.journal.root))
        self.writer = _WRITERS[root]
        self._keys: dict[tuple, str] = {}  # (image layer id, plane, id of its data) -> key
        self._objects: dict[str, dict[int, dict]] = {}  # key -> {label: object metadata}

    def errors(self) -> list[str]:
        """Writes that failed since the last call (any dock's: they share the writer)."""
        return self.writer.take_errors()

    def key(self, image, plane: tuple) -> str:
        """The journal key of ``image``'s plane (its pixels' hash, computed once per data)."""
        cache = (layer_id(image), tuple(plane), id(image.data))
        key = self._keys.get(cache)
        if key is None:
            key = self._keys[cache] = image_key(L.plane_data(image, tuple(plane)))
        return key

    def _plane(self, target, plane: tuple) -> np.ndarray:
        data = target.data
        return np.asarray(data[plane] if plane else data)

    def _submit(self, image, target, plane: tuple, key: str) -> None:
        source = getattr(getattr(image, "source", None), "path", None)
        info = {"name": image.name, "source": str(source) if source else None}
        if plane:
            info["plane"] = list(plane)
        self.writer.submit(key, self._plane(target, plane), self._objects.get(key, {}), info)

    def committed(self, image, target, plane: tuple, label: int, meta: dict) -> None:
        """Record ``label`` just committed (or refined) into ``target``'s plane."""
        key = self.key(image, plane)
        objects = self._objects.setdefault(key, {})
        old = objects.get(int(label))
        entry = dict(meta, time=time.time())
        if old is not None:  # refined: keep how it was first made
            entry["history"] = [*old.pop("history", []), old]
        objects[int(label)] = entry
        self._submit(image, target, plane, key)

    def changed(self, image, target, plane: tuple) -> None:
        """Record ``target``'s plane after an undo (objects no longer there are dropped)."""
        key = self.key(image, plane)
        present = set(np.unique(self._plane(target, plane)).tolist())
        objects = self._objects.get(key, {})
        for label in [k for k in objects if k not in present]:
            del objects[label]
        self._submit(image, target, plane, key)

    def pending(self, image, target, plane: tuple) -> Record | None:
        """A record of this plane that ``target`` does not show (None: nothing to offer).

        Raises:
            JournalError: The record's file is damaged.
        """
        key = self.key(image, plane)
        if self.writer.busy_with(key):  # this session's own newer state is on its way
            return None
        rec = self.journal.load(key)
        if rec is None:
            return None
        shown = None if target is None else self._plane(target, plane)
        if shown is not None and shown.shape == rec.labels.shape:
            if np.array_equal(shown, rec.labels):
                self._objects.setdefault(key, rec.objects)
                return None
        return rec

    def restore(self, image, target, plane: tuple, rec: Record) -> None:
        """Write ``rec``'s labels into ``target``'s plane (widening its dtype if needed)."""
        top, dtype = int(rec.labels.max(initial=0)), target.data.dtype
        if dtype.kind not in "iu" or top > np.iinfo(dtype).max:
            target.data = target.data.astype(np.int32 if top < 2**31 else np.int64)
        if plane:
            target.data[plane] = rec.labels
        else:
            target.data[...] = rec.labels
        self._objects[rec.key] = dict(rec.objects)
        target.refresh()

    def exported(self, planes) -> None:
        """Prune the records of exported planes, given as ``(key, labels exported)``.

        A record whose labels changed since (objects committed while the export ran) stays.
        The check and the removal run on the journal's thread.
        """
        for key, labels in planes:
            self.writer.prune_if_unchanged(key, labels)


__all__ = ["JournalError", "SessionJournal"]
