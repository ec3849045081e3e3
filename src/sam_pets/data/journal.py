"""The annotation journal: every committed object on disk as it happens (crash-proof sessions).

The Annotator records the label plane of an image after each commit, undo and refine, with
the prompts and the model of each object and time stamps. A record is one small file per
image plane, keyed by the plane's pixel content (so the same photo opened again, from any
path, finds it), written atomically: a crash or a kill leaves the last complete record.
Opening that image again offers to restore its objects exactly. A record is pruned once its
image has been exported, or on request (:meth:`Journal.prune`, ``sam-pets journal prune``).

Layout: ``<root>/<key>.npz`` holding the labels (zlib-compressed) and a JSON header; the
default root is ``journal`` in the per-user data folder (:func:`sam_pets.paths.data_dir`).
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sam_pets._atomic import atomic_write_bytes
from sam_pets.paths import data_dir

VERSION = 1
SUFFIX = ".npz"


def default_root() -> Path:
    """``journal`` in the per-user data folder."""
    return data_dir() / "journal"


@dataclass
class Record:
    """The journaled state of one image plane.

    Attributes:
        key: :func:`~sam_pets.data.fsutil.image_key` of the plane's pixels.
        labels: (H, W) integer label plane as last recorded.
        objects: ``{label id: {"prompts": ..., "model": ..., "time": ..., ...}}`` of the
            objects committed through the Annotator.
        info: About the image: ``name`` (layer), ``source`` (file), ``shape``.
        created: Time stamp of the first record (seconds since the epoch).
        updated: Time stamp of this record.
        events: How many commits, undos and refines led to it.
    """

    key: str
    labels: np.ndarray
    objects: dict[int, dict] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0
    events: int = 0

    @property
    def n_objects(self) -> int:
        """Number of distinct labels (objects) in the plane."""
        return int(len(np.unique(self.labels)) - (1 if (self.labels == 0).any() else 0))


class JournalError(ValueError):
    """A journal file that cannot be read (named in the message)."""


class Journal:
    """Records of annotated image planes in a folder (see the module docstring).

    Args:
        root: The folder (default :func:`default_root`); created on the first record.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self._headers: dict[str, dict] = {}  # key -> header last written or read

    def path(self, key: str) -> Path:
        """The file of ``key``'s record."""
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a journal key: {key!r}")
        return self.root / f"{key}{SUFFIX}"

    def record(
        self,
        key: str,
        labels: np.ndarray,
        objects: dict[int, dict] | None = None,
        info: dict | None = None,
    ) -> Record:
        """Write the state of ``key``'s plane (replacing its earlier record atomically).

        An all-zero plane with no objects removes the record instead (nothing to restore).
        """
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.dtype.kind not in "iu":
            raise ValueError(
                f"labels must be a 2D integer plane, not {labels.dtype} {labels.shape}"
            )
        now = time.time()
        old = self._headers.get(key) or self._header(key)
        rec = Record(
            key,
            labels,
            {int(k): v for k, v in (objects or {}).items()},
            dict(info or {}, shape=list(labels.shape)),
            old.get("created", now) if old else now,
            now,
            (old.get("events", 0) if old else 0) + 1,
        )
        if not labels.any() and not rec.objects:
            self.prune(key)
            return rec
        header = {
            "version": VERSION,
            "key": key,
            "dtype": labels.dtype.str,
            "shape": list(labels.shape),
            "objects": {str(k): v for k, v in rec.objects.items()},
            "info": rec.info,
            "created": rec.created,
            "updated": rec.updated,
            "events": rec.events,
        }
        packed = zlib.compress(np.ascontiguousarray(labels).tobytes(), 1)
        buf = io.BytesIO()
        np.savez(
            buf,
            header=np.frombuffer(json.dumps(header).encode(), np.uint8),
            labels=np.frombuffer(packed, np.uint8),
        )
        atomic_write_bytes(self.path(key), buf.getvalue())
        self._headers[key] = header
        return rec

    def _read(self, path: Path) -> tuple[dict, np.ndarray | None]:
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(z["header"].tobytes().decode())
                packed = z["labels"].tobytes()
        except (OSError, ValueError, KeyError, zlib.error) as e:
            raise JournalError(f"{path}: not a readable journal record ({e})") from None
        if header.get("version") != VERSION:
            raise JournalError(f"{path}: journal version {header.get('version')} not supported")
        return header, packed

    def _header(self, key: str) -> dict | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return self._read(path)[0]
        except JournalError:
            return None

    def load(self, key: str) -> Record | None:
        """The record of ``key`` (None if there is none).

        Raises:
            JournalError: The record's file is damaged (the message names it).
        """
        path = self.path(key)
        if not path.is_file():
            return None
        header, packed = self._read(path)
        try:
            shape, dtype = tuple(header["shape"]), np.dtype(header["dtype"])
            labels = np.frombuffer(zlib.decompress(packed), dtype).reshape(shape).copy()
        except (KeyError, TypeError, ValueError, zlib.error) as e:
            raise JournalError(f"{path}: damaged journal record ({e})") from None
        return Record(
            key,
            labels,
            {int(k): v for k, v in header.get("objects", {}).items()},
            header.get("info", {}),
            float(header.get("created", 0)),
            float(header.get("updated", 0)),
            int(header.get("events", 0)),
        )

    def keys(self) -> list[str]:
        """Keys of all records, oldest update first."""
        if not self.root.is_dir():
            return []
        paths = [p for p in self.root.glob(f"*{SUFFIX}") if not p.name.startswith(".")]
        return [p.stem for p in sorted(paths, key=lambda p: p.stat().st_mtime)]

    def prune(self, key: str) -> bool:
        """Delete ``key``'s record; True if there was one."""
        path = self.path(key)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        self._headers.pop(key, None)
        return existed

    def prune_older(self, days: float) -> list[str]:
        """Delete the records not updated for ``days`` days; returns their keys."""
        cutoff = time.time() - days * 86400
        gone = []
        for key in self.keys():
            if self.path(key).stat().st_mtime < cutoff:
                self.prune(key)
                gone.append(key)
        return gone


class JournalWriter:
    """Writes records on a background thread, so a commit on the GUI thread never waits.

    :meth:`submit` takes a copy of the plane and returns at once (well under a millisecond
    for a photo); the thread writes the latest state of each key in order, with ``fsync``
    (about 15 ms on a typical disk). :meth:`flush` waits until everything submitted is on
    disk; :meth:`prune_if_unchanged` removes a record on the thread too. A write that fails
    is reported to ``on_error(key, exception)`` if given, and kept for :meth:`take_errors`;
    the next state of that key is tried again.
    """

    def __init__(self, journal: Journal, on_error=None) -> None:
        self.journal = journal
        self.on_error = on_error
        self._errors: list[str] = []
        self._pending: dict[
            str, tuple
        ] = {}  # key -> ("record", labels, objects, info) | ("prune", labels)
        self._cond = threading.Condition()
        self._busy = False
        self._writing: str | None = None  # the key the thread works on
        self._thread = threading.Thread(target=self._run, name="sam-pets journal", daemon=True)
        self._thread.start()

    def submit(self, key: str, labels: np.ndarray, objects: dict, info: dict) -> None:
        """Queue ``key``'s new state (copied now; a newer state of the same key replaces it)."""
        state = ("record", np.array(labels, copy=True), json.loads(json.dumps(objects)), dict(info))
        with self._cond:
            self._pending.pop(key, None)  # keep the queue in submission order
            self._pending[key] = state
            self._cond.notify_all()

    def prune_if_unchanged(self, key: str, labels: np.ndarray) -> None:
        """Remove ``key``'s record on the thread, if it still holds ``labels`` (e.g. exported).

        A newer state queued or on disk (objects committed since) is kept.
        """
        labels = np.array(labels, copy=True)
        with self._cond:
            queued = self._pending.get(key)
            if queued is not None and queued[0] == "record":
                if not np.array_equal(queued[1], labels):
                    return  # a newer state than the exported one: keep it
                del self._pending[key]
            self._pending[key] = ("prune", labels)
            self._cond.notify_all()

    def busy_with(self, key: str) -> bool:
        """Whether a state of ``key`` is queued or being written (its file is not the latest)."""
        with self._cond:
            return key in self._pending or self._writing == key

    def prune(self, key: str) -> None:
        """Drop ``key``'s queued state and its record."""
        with self._cond:
            self._pending.pop(key, None)
            while self._busy:
                self._cond.wait()
            self.journal.prune(key)

    def take_errors(self) -> list[str]:
        """Messages of the writes that failed since the last call (and forget them)."""
        with self._cond:
            errors, self._errors = self._errors, []
        return errors

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every submitted state is written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending)
                key = next(iter(self._pending))
                op = self._pending.pop(key)
                self._busy, self._writing = True, key
            try:
                if op[0] == "record":
                    self.journal.record(key, *op[1:])
                else:
                    rec = self.journal.load(key)
                    if rec is None or np.array_equal(rec.labels, op[1]):
                        self.journal.prune(key)
            except Exception as e:  # noqa: BLE001 - reported, the thread goes on
                with self._cond:
                    self._errors.append(f"cannot journal {key}: {e}")
                if self.on_error is not None:
                    self.on_error(key, e)
            finally:
                with self._cond:
                    self._busy, self._writing = False, None
                    self._cond.notify_all()
