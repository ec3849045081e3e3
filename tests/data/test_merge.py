"""Merging canonical datasets keeps every item, its files and its split."""

from __future__ import annotations

import numpy as np
import pytest

from sam_pets.cli import main
from sam_pets.data.export import export_annotation
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.merge import merge_datasets


def _dataset(root, names, split):
    rng = np.random.default_rng(len(names))
    for n in names:
        image = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
        labels = np.zeros((24, 32), np.uint8)
        labels[4:12, 5:20] = 1
        export_annotation(root, image, labels, n, {"split": split})
    return root


def test_merge_keeps_items_splits_and_refuses_clashes(tmp_path, capsys):
    a = _dataset(tmp_path / "a", ["cat1", "cat2"], "train")
    b = _dataset(tmp_path / "b", ["dog1"], "val")
    assert main(["merge", str(tmp_path / "ab"), str(a), str(b)]) == 0
    assert "train 2, val 1" in capsys.readouterr().out
    out = tmp_path / "ab"
    assert canon.read_list(out, "train") == ["cat1", "cat2"]
    assert canon.read_list(out, "val") == ["dog1"]
    for name in ("cat1", "dog1"):
        masks, _ = canon.read_masks(out, canon.items_by_name(canon.load_manifest(out))[name])
        assert masks.sum() == 8 * 15
    with pytest.raises(ValueError, match="'cat1' is in both"):
        merge_datasets([a, a], tmp_path / "twice")
    with pytest.raises(FileExistsError):
        merge_datasets([a], out)  # an existing dataset needs overwrite
    with pytest.raises(ValueError, match="one of the sources"):
        merge_datasets([a], a, overwrite=True)


def test_merge_keeps_one_category_id_per_name(labelme_canonical, coco_tiny_canonical, tmp_path):
    """LabelMe's bottle/car/chair ids are COCO's other categories: names decide, not ids."""
    from sam_pets.data.export import dataset_to_coco

    lm, coco = labelme_canonical[0], coco_tiny_canonical[0]
    out = tmp_path / "mg"
    merge_datasets([lm, coco], out)
    manifest = canon.load_manifest(out)
    pairs = {(o["category_id"], o["category"]) for r in manifest["items"] for o in r["objects"]}
    ids = [cid for cid, _ in pairs]
    names = [name for _, name in pairs]
    assert len(set(ids)) == len(ids) and len(set(names)) == len(names), sorted(pairs)
    table = {c["id"]: c["name"] for c in manifest["categories"]}
    assert len(set(table.values())) == len(table)
    assert all(table[cid] == name for cid, name in pairs)
    exported = dataset_to_coco(out)
    cat_name = {c["id"]: c["name"] for c in exported["categories"]}
    assert len(set(cat_name.values())) == len(cat_name)
    by_name = {}
    for src in (lm, coco):  # every object keeps its name through merge and export
        for r in canon.load_manifest(src)["items"]:
            by_name[r["name"]] = [o["category"] for o in r["objects"]]
    entries = {img["id"]: img["sam_pets_name"] for img in exported["images"]}
    got = {}
    for a in exported["annotations"]:
        got.setdefault(entries[a["image_id"]], []).append(cat_name[a["category_id"]])
    assert got == by_name
