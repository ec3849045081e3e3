"""Frames of a video, a folder of images or a multi-page TIFF, read lazily.

Every source is a sequence: ``len(src)`` frames, ``src[t]`` an (H, W[, C]) array in the
file's own dtype (16-bit and float TIFF pages stay as they are). Videos are decoded with
PyAV (FFmpeg); nothing is re-encoded or written to disk.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np

from sam_pets.predict.images import IMAGE_SUFFIXES, ImageReadError, read_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")
TIFF_SUFFIXES = (".tif", ".tiff")


class FrameReadError(ValueError):
    """A frame source that cannot be opened or read; the message names the file."""


def _natural_key(name: str):
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


class ImageFolderFrames:
    """The images of a folder in natural name order (frame_2 before frame_10)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.paths = sorted(
            (
                p
                for p in self.folder.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            ),
            key=lambda p: _natural_key(p.name),
        )
        if not self.paths:
            raise FrameReadError(f"{self.folder}: no images in the folder")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, t: int) -> np.ndarray:
        try:
            return read_image(self.paths[t])
        except ImageReadError as e:
            raise FrameReadError(str(e)) from None


class TiffFrames:
    """The pages (or the first axis) of a multi-page TIFF, one at a time."""

    def __init__(self, path: str | os.PathLike) -> None:
        import tifffile

        self.path = Path(path)
        try:
            self._tif = tifffile.TiffFile(self.path)
            series = self._tif.series[0]
        except Exception as e:  # noqa: BLE001 - any parser error is a bad file
            raise FrameReadError(f"{self.path}: not a readable TIFF ({e})") from None
        shape = tuple(series.shape)
        rgb = shape[-1] in (3, 4) and len(shape) >= 3
        plane_dims = 3 if rgb else 2
        if len(shape) < plane_dims + 1:
            raise FrameReadError(f"{self.path}: one image of shape {shape}, not a stack")
        self.shape = shape
        self._n = int(np.prod(shape[: len(shape) - plane_dims]))
        self._pages = series.pages if len(series.pages) == self._n else None
        self._data = (
            None if self._pages is not None else series.asarray().reshape(-1, *shape[-plane_dims:])
        )

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, t: int) -> np.ndarray:
        if not -self._n <= t < self._n:
            raise IndexError(t)
        if self._data is not None:
            return self._data[t]
        try:
            return self._pages[t].asarray()
        except Exception as e:  # noqa: BLE001
            raise FrameReadError(f"{self.path}: page {t} cannot be read ({e})") from None


class VideoFrames:
    """A video file decoded with PyAV; sequential reads decode each frame once.

    A few recent frames are cached; going back reopens the file and decodes forward again
    (backward propagation of a long video reads it once per cached stretch).
    """

    def __init__(self, path: str | os.PathLike, cache: int = 16) -> None:
        try:
            import av
        except ImportError:  # pragma: no cover - a dependency
            raise FrameReadError("reading videos needs PyAV: pip install av") from None
        self.path = Path(path)
        self._av = av
        try:
            with av.open(str(self.path)) as c:
                stream = c.streams.video[0]
                n = stream.frames
                if not n:
                    n = sum(1 for _ in c.decode(stream))
        except Exception as e:  # noqa: BLE001 - FFmpeg errors come in many types
            raise FrameReadError(f"{self.path}: not a readable video ({e})") from None
        if not n:
            raise FrameReadError(f"{self.path}: the video has no frames")
        self._n = int(n)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_n = max(2, cache)
        self._container = None
        self._iter = None
        self._next = 0

    def __len__(self) -> int:
        return self._n

    def _restart(self) -> None:
        self.close()
        self._container = self._av.open(str(self.path))
        self._iter = self._container.decode(self._container.streams.video[0])
        self._next = 0

    def __getitem__(self, t: int) -> np.ndarray:
        if t < 0:
            t += self._n
        if not 0 <= t < self._n:
            raise IndexError(t)
        if t in self._cache:
            self._cache.move_to_end(t)
            return self._cache[t]
        if self._iter is None or t < self._next:
            self._restart()
        try:
            while self._next <= t:
                frame = next(self._iter).to_ndarray(format="rgb24")
                self._cache[self._next] = frame
                self._next += 1
                while len(self._cache) > self._cache_n:
                    self._cache.popitem(last=False)
        except StopIteration:
            raise FrameReadError(f"{self.path}: frame {t} is past the end of the stream") from None
        return self._cache[t]

    def close(self) -> None:
        """Close the open file (reads reopen it)."""
        if self._container is not None:
            self._container.close()
        self._container = self._iter = None


def open_frames(path: str | os.PathLike):
    """A lazy frame sequence for a video file, a folder of images or a multi-page TIFF.

    Raises:
        FrameReadError: missing path, unknown type, or a file that cannot be read.
    """
    p = Path(path)
    if p.is_dir():
        return ImageFolderFrames(p)
    if not p.exists():
        raise FrameReadError(f"{p}: not found")
    suffix = p.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return TiffFrames(p)
    if suffix in VIDEO_SUFFIXES:
        return VideoFrames(p)
    raise FrameReadError(
        f"{p}: unknown kind of frames (a video {', '.join(VIDEO_SUFFIXES)}, a multi-page TIFF "
        "or a folder of images)"
    )
