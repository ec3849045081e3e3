"""File-system helpers: safe item names, content hashes (atomic writes: :mod:`sam_pets._atomic`)."""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def image_key(image: np.ndarray) -> str:
    """Content hash of an array (bytes, shape and dtype; BLAKE2b, 32 hex digits).

    Keys the embedding caches and the annotation journal: equal pixels give equal keys,
    whatever the array's memory layout.
    """
    a = np.ascontiguousarray(image)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.shape}|{a.dtype.str}|".encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def safe_name(name: str) -> str:
    """An ASCII item name that is safe as a folder name and in list files.

    Accents are stripped (NFKD) and anything outside ``[A-Za-z0-9_-]`` becomes ``_``; dots
    go too, because SAM 2's trainer strips an "extension" from each list-file line. A name
    that ends up empty is replaced by a hash of the original.

    Args:
        name: Any source name, e.g. a file stem with spaces or non-ASCII characters.

    Returns:
        The sanitised name (unchanged when it was already safe).
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    clean = _UNSAFE.sub("_", ascii_name).strip("_")
    if not clean:
        clean = "item_" + sha256_bytes(name.encode("utf-8"))[:12]
    return clean


def unique_name(name: str, taken: set[str]) -> str:
    """``name`` or ``name_2``, ``name_3``... whichever is not in ``taken``."""
    if name not in taken:
        return name
    k = 2
    while f"{name}_{k}" in taken:
        k += 1
    return f"{name}_{k}"
