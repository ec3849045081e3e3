"""Items of a dataset folder or a COCO JSON file, for browsing and correcting."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sam_pets.data.errors import BadInputError, BadItemError
from sam_pets.data.export import export_annotation
from sam_pets.data.sources import CocoItems, DatasetItems, is_coco_file, open_items


def _photo(seed: int, hw=(40, 60)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (*hw, 3)).astype(np.uint8)


def _labels(hw=(40, 60)) -> np.ndarray:
    lab = np.zeros(hw, np.uint16)
    lab[5:20, 5:25] = 3
    lab[22:35, 30:55] = 7
    return lab


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ds"
    ignore = np.zeros((40, 60), bool)
    ignore[0] = True
    meta = {"species": "cat", "breed": "Bengal", "categories": {3: "cat", 7: "toy"}}
    export_annotation(root, _photo(0), _labels(), "b_item", dict(meta, ignore=ignore))
    export_annotation(root, _photo(1), _labels() // 3, "a_item", {"source": "/x/a.jpg"})
    return root


def test_a_dataset_folder_gives_items_with_their_ids_and_metadata(dataset):
    src = open_items(dataset)
    assert isinstance(src, DatasetItems) and src.kind == "dataset"
    assert src.names == ["a_item", "b_item"] and src.objects("b_item") == 2
    it = src.load("b_item")
    np.testing.assert_array_equal(it.labels, _labels())
    assert it.image.shape == (40, 60, 3)
    assert it.meta["species"] == "cat" and it.meta["breed"] == "Bengal"
    assert it.meta["categories"] == {3: "cat", 7: "toy"}
    assert it.meta["ignore"][0].all() and not it.meta["ignore"][1:].any()
    assert open_items(dataset / "dataset.json").names == src.names
    assert src.load("a_item").meta["source"] == "/x/a.jpg"


def _coco(tmp_path, in_images: bool):
    folder = tmp_path / "coco"
    img_dir = folder / "images" if in_images else folder
    img_dir.mkdir(parents=True)
    Image.fromarray(_photo(2)).save(img_dir / "p.png")
    data = {
        "images": [{"id": 5, "file_name": "p.png", "height": 40, "width": 60}],
        "annotations": [
            {
                "id": 90000,
                "image_id": 5,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": [[5, 5, 25, 5, 25, 20, 5, 20]],
                "bbox": [5, 5, 20, 15],
                "area": 300,
            },
            {
                "id": 90001,
                "image_id": 5,
                "category_id": 2,
                "iscrowd": 0,
                "segmentation": [[30, 22, 55, 22, 55, 35, 30, 35]],
                "bbox": [30, 22, 25, 13],
                "area": 325,
            },
        ],
        "categories": [{"id": 1, "name": "window"}, {"id": 2, "name": "car"}],
    }
    path = folder / "annotations.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("in_images", [False, True])
def test_a_coco_file_gives_its_images_with_objects_numbered_in_order(tmp_path, in_images):
    path = _coco(tmp_path, in_images)
    assert is_coco_file(path)
    src = open_items(path)
    assert isinstance(src, CocoItems) and src.names == ["p"] and src.objects("p") == 2
    it = src.load("p")
    assert set(np.unique(it.labels)) == {0, 1, 2}
    assert (it.labels[10, 10], it.labels[28, 40]) == (1, 2)
    assert it.meta["categories"] == {1: "window", 2: "car"}
    assert it.meta["source"].endswith("p.png")


def test_a_missing_coco_image_is_named(tmp_path):
    path = _coco(tmp_path, False)
    (path.parent / "p.png").unlink()
    with pytest.raises(BadItemError, match="p.png"):
        open_items(path).load("p")


def test_other_paths_are_refused_with_a_reason(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    for p in (tmp_path, tmp_path / "x.json", tmp_path / "list.json", tmp_path / "nope"):
        assert not is_coco_file(p)
        with pytest.raises(BadInputError, match="not a sam-pets dataset folder nor a COCO"):
            open_items(p)
