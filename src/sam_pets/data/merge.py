"""Merge canonical datasets into a new one (e.g. a public dataset plus one's own exports).

Category ids are per source (COCO ids, a LabelMe ``labels.txt`` order...), so the same id
can name different things in two sources. The merged dataset gets one category table keyed
by name, and every object's ``category_id`` is remapped to it.
"""

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
    manifests = [(src, canon.load_manifest(src)) for src in map(Path, sources)]
    for src, manifest in manifests:
        for rec in manifest["items"]:
            if rec["name"] in owner:
                raise ValueError(
                    f"item {rec['name']!r} is in both {owner[rec['name']]} and {src}; "
                    "rename one before merging"
                )
            owner[rec["name"]] = src
    out = Path(out)
    if out.resolve() in {s.resolve() for s, _ in manifests}:
        raise ValueError(f"{out} is one of the sources; merge into a new folder")
    categories, records = merge_categories([m for _, m in manifests])
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
        if categories:
            manifest["categories"] = categories
        manifest["items"] = records
        canon.save_manifest(tmp, manifest)
        counts = canon.write_lists(tmp, manifest)
    return counts


def merge_categories(manifests: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """One category table keyed by name, and the item records remapped to it.

    A name keeps the id it has in the first source that uses it, unless an earlier name
    took that id; then it gets the next free id. Ids that objects use are claimed before
    unused declared entries, and a declared entry whose name is already in the table is
    dropped (one id per name). An object without a name takes its source's declared name
    for its id; an object with neither keeps ``category_id: None``.

    Args:
        manifests: Source manifests (not modified).

    Returns:
        The category list (sorted by id) and copies of every item record with
        ``category``/``category_id`` rewritten.
    """
    table: dict[str, dict] = {}
    taken: set = set()

    def claim(name: str, cid, entry: dict | None = None) -> None:
        if name in table:
            return
        if cid is None or cid in taken:
            cid = max([c for c in taken if isinstance(c, int)] + [0]) + 1
        extra = entry or {"supercategory": ""}
        rest = {k: v for k, v in extra.items() if k not in ("id", "name")}
        table[name] = {"id": cid, "name": name, **rest}
        taken.add(cid)

    records = []
    for manifest in manifests:
        declared = [c for c in manifest.get("categories") or [] if _is_category(c)]
        name_of = {}
        for c in declared:
            name_of.setdefault(c["id"], c["name"])
        source_records = [_copy_record(r) for r in manifest["items"]]
        for o in (o for r in source_records for o in r["objects"]):
            cid = o.get("category_id")
            name = o.get("category") or name_of.get(cid)
            if name is None and cid is not None:
                name = f"category_{cid}"
            o["category"] = name
            if name is not None:
                claim(name, cid, _declared(declared, name))
        for c in declared:
            claim(c["name"], c["id"], c)
        records += source_records
    for o in (o for r in records for o in r["objects"]):
        o["category_id"] = table[o["category"]]["id"] if o["category"] is not None else None
    return sorted(table.values(), key=lambda c: (str(type(c["id"])), c["id"])), records


def _is_category(c) -> bool:
    return isinstance(c, dict) and isinstance(c.get("id"), (int, str)) and "name" in c


def _declared(declared: list[dict], name: str) -> dict | None:
    return next((c for c in declared if c["name"] == name), None)


def _copy_record(rec: dict) -> dict:
    return dict(rec, objects=[dict(o) for o in rec["objects"]])
