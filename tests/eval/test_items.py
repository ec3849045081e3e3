"""Reading evaluation items; broken datasets give errors that name the item and file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sam_pets.data.errors import BadInputError, BadItemError
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.eval.items import item_names, iter_items

from .conftest import square, write_dataset


def test_items_read_back(synthetic_dataset):
    names = item_names(synthetic_dataset)
    assert names == ["cat_a", "cat_b", "dog_a"]
    items = list(iter_items(synthetic_dataset, names))
    assert items[2].masks.shape == (2, 32, 40) and items[2].object_ids == (1, 2)
    assert items[1].ignore[:, :2].all() and not items[0].ignore.any()
    assert items[0].species == "cat" and items[0].breed == "Bengal"
    assert item_names(synthetic_dataset, limit=2) == ["cat_a", "cat_b"]
    assert item_names(synthetic_dataset, "val") == names
    assert items[0].seed_key == list(iter_items(synthetic_dataset, ["cat_a"]))[0].seed_key


def test_missing_image_named(tmp_path, synthetic_dataset):
    ds = tmp_path / "ds"
    shutil.copytree(synthetic_dataset, ds)
    (canon.item_paths(ds, "cat_b").image).unlink()
    with pytest.raises(BadInputError, match="'cat_b': image file missing"):
        list(iter_items(ds, item_names(ds)))
    got = list(iter_items(ds, item_names(ds), yield_errors=True))
    assert [g.name for g in (got[0], got[2])] == ["cat_a", "dog_a"]
    assert isinstance(got[1], BadItemError) and got[1].item == "cat_b"


def test_mask_image_size_mismatch(tmp_path):
    ds = tmp_path / "ds"
    write_dataset(
        ds,
        [
            {
                "name": "odd",
                "masks": [square(2, 2, 5)],
                "species": "cat",
                "image": np.zeros((20, 20, 3), np.uint8),
            }
        ],
    )
    with pytest.raises(BadInputError, match="differs from image size"):
        list(iter_items(ds, ["odd"]))


def test_bad_split_and_empty(tmp_path, synthetic_dataset):
    with pytest.raises(BadInputError, match="split"):
        item_names(synthetic_dataset, "test")
    with pytest.raises(BadInputError, match="no items"):
        item_names(synthetic_dataset, "train")
    ds = tmp_path / "ds"
    shutil.copytree(synthetic_dataset, ds)
    (ds / "val_list.txt").unlink()
    with pytest.raises(BadInputError, match="val_list.txt"):
        item_names(ds, "val")
    (ds / "dataset.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(BadInputError, match="manifest"):
        item_names(ds)
