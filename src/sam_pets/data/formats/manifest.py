"""The ``dataset.json`` manifest of a canonical dataset: one record per item.

A record holds the item's name, source path, image SHA-256, (H, W), objects (id, category,
category id, iscrowd, area), species/breed where known, split, flags for the optional ignore
and overlap files, notes and the time it was written (see ``sam2_folder.item_record``).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from sam_pets._atomic import atomic_write_text
from sam_pets.data.errors import BadInputError

FORMAT_NAME = "sam-pets/sam2-folder"
FORMAT_VERSION = 1
MANIFEST = "dataset.json"


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def is_dataset(root: str | os.PathLike) -> bool:
    """True if ``root`` holds a canonical dataset (has a ``dataset.json``)."""
    return (Path(root) / MANIFEST).is_file()


def new_manifest() -> dict:
    """An empty manifest."""
    t = now_iso()
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created": t,
        "updated": t,
        "items": [],
    }


def load_manifest(root: str | os.PathLike) -> dict:
    """Read ``dataset.json``; raises :class:`BadInputError` if missing or malformed."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not Path(root).exists():
            raise BadInputError(f"dataset folder not found: {root}") from None
        raise BadInputError(f"not a sam-pets dataset (no {MANIFEST}): {root}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInputError(f"malformed {path}: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise BadInputError(f"{path} is not a {FORMAT_NAME} manifest")
    if not isinstance(manifest.get("items"), list):
        raise BadInputError(f"{path}: 'items' must be a list")
    return manifest


def save_manifest(root: str | os.PathLike, manifest: dict) -> None:
    """Write ``dataset.json`` atomically, items sorted by name."""
    manifest = dict(manifest, updated=now_iso())
    manifest["items"] = sorted(manifest["items"], key=lambda r: r["name"])
    atomic_write_text(Path(root) / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))


def items_by_name(manifest: dict) -> dict[str, dict]:
    """The manifest's item records keyed by name."""
    return {r["name"]: r for r in manifest["items"]}
