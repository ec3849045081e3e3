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
