"""Merge canonical datasets into a new one (e.g. a public dataset plus one's own exports)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.staging import staged_dataset


def merge_datasets(
    sources: Sequence[str | os.PathLike], out: str | os.PathLike, overwrite: bool = False
) -> dict[str, int]:
    """Copy every item of ``sources`` into the new dataset ``out``, keeping each item's split.

    Args:
        sources: Canonical dataset folders (two or more, or one to copy).
        out: New or empty folder (an existing dataset only with ``overwrite``).
        overwrite: Replace a dataset already in ``out``.

    Returns:
        Items per split in ``out``.

    Raises:
        ValueError: An item name occurs in two sources (names the item and both folders).
        FileExistsError: ``out`` holds other data (see ``staged_dataset``).
        BadInputError: ``out`` contains or lies inside a source.
    """
    if not sources:
        raise ValueError("nothing to merge: give at least one dataset")
    owner: dict[str, Path] = {}
    records = []
    for src in map(Path, sources):
        for rec in canon.load_manifest(src)["items"]:
            if rec["name"] in owner:
                raise ValueError(
                    f"item {rec['name']!r} is in both {owner[rec['name']]} and {src}; "
                    "rename one before merging"
                )
            owner[rec["name"]] = src
            records.append(rec)
    out = Path(out)
    if out.resolve() in {s.resolve() for s in owner.values()}:
        raise ValueError(f"{out} is one of the sources; merge into a new folder")
    with staged_dataset(out, overwrite, sources) as tmp:
        for rec in records:
            src, dst = (
                canon.item_paths(owner[rec["name"]], rec["name"]),
                canon.item_paths(tmp, rec["name"]),
            )
            for field in ("image", "labels", "ignore", "objects"):
                path = getattr(src, field)
                if path.is_file():
                    getattr(dst, field).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, getattr(dst, field))
        manifest = canon.new_manifest()
        manifest["items"] = records
        canon.save_manifest(tmp, manifest)
        counts = canon.write_lists(tmp, manifest)
    return counts
