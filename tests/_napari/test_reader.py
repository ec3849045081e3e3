"""Reopening a dataset folder (or a COCO file) in napari, correcting an item, exporting it back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam_pets.data.export import export_annotation
from sam_pets.data.formats import sam2_folder as canon

pytestmark = pytest.mark.gui


@pytest.fixture
def dataset(tmp_path, pet_image, pet_trimap):
    root = tmp_path / "ds"
    pet = np.where(pet_trimap == 1, 1, 0).astype(np.uint16)
    meta = {
        "species": "cat",
        "breed": "Bengal",
        "categories": {1: "cat"},
        "ignore": pet_trimap == 3,
        "source": "/photos/Bengal_63.jpg",
    }
    export_annotation(root, pet_image, pet, "Bengal_63", meta)
    other = np.zeros((30, 40), np.uint16)
    other[5:20, 5:30] = 1
    export_annotation(root, np.full((30, 40, 3), 90, np.uint8), other, "grey", {})
    return root


def _browser(viewer):
    from sam_pets._napari._reader import ItemBrowser

    docks = [w for w in viewer.window._dock_widgets.values() if isinstance(w.widget(), ItemBrowser)]
    assert len(docks) == 1
    return docks[0].widget()


def test_open_a_dataset_folder_browse_correct_and_export_it_back(
    make_napari_viewer, qtbot, dataset
):
    viewer = make_napari_viewer()
    viewer.open(str(dataset), plugin="sam-pets")
    assert [ly.name for ly in viewer.layers] == ["Bengal_63", "Bengal_63 labels"]
    labels = viewer.layers["Bengal_63 labels"]
    assert labels.data.max() == 1 and labels.data.shape == (375, 500)
    browser = _browser(viewer)
    assert browser.list.count() == 2 and "(1 objects)" in browser.list.item(0).text()

    # browsing: an unedited item's layers make room for the next one
    browser.list.setCurrentRow(1)
    assert [ly.name for ly in viewer.layers] == ["grey", "grey labels"]
    browser.list.setCurrentRow(0)
    assert [ly.name for ly in viewer.layers] == ["Bengal_63", "Bengal_63 labels"]

    # correct it in the Annotator: its labels layer is the target, export goes back home
    _, annot = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    assert annot.export_dir.text() == str(dataset)
    labels = viewer.layers["Bengal_63 labels"]
    fixed = labels.data.copy()
    fixed[:20, :20] = 2  # a second object drawn by hand
    labels.data = fixed
    annot.export(all_images=False)
    qtbot.waitUntil(lambda: "replaced" in annot.export_status.text(), timeout=30000)

    manifest = canon.load_manifest(dataset)
    records = canon.items_by_name(manifest)
    assert sorted(records) == ["Bengal_63", "grey"]  # no duplicate, same name
    rec = records["Bengal_63"]
    assert rec["species"] == "cat" and rec["breed"] == "Bengal"
    assert rec["source"] == "/photos/Bengal_63.jpg"
    ann = canon.read_annotation(dataset, rec)
    assert len(ann.masks) == 2 and ann.masks[1][:20, :20].all()
    assert ann.ignore is not None and ann.ignore.any()  # the trimap border kept
    json.loads((dataset / "dataset.json").read_text())  # still whole

    # an edited item stays open when another one is chosen
    browser.list.setCurrentRow(1)
    names = [ly.name for ly in viewer.layers if not ly.name.startswith("sam-pets")]
    assert "Bengal_63 labels" in names and "grey labels" in names


def test_open_a_coco_file(make_napari_viewer, tmp_path):
    from PIL import Image

    folder = tmp_path / "c"
    (folder / "images").mkdir(parents=True)
    Image.fromarray(np.full((30, 40, 3), 120, np.uint8)).save(folder / "images" / "f.jpg")
    coco = {
        "images": [{"id": 1, "file_name": "f.jpg", "height": 30, "width": 40}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "area": 100,
                "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]],
                "bbox": [2, 2, 10, 10],
            },
        ],
        "categories": [{"id": 1, "name": "window"}],
    }
    (folder / "annotations.json").write_text(json.dumps(coco))
    viewer = make_napari_viewer()
    viewer.open(str(folder / "annotations.json"), plugin="sam-pets")
    assert [ly.name for ly in viewer.layers] == ["f", "f labels"]
    assert viewer.layers["f labels"].data[5, 5] == 1
    assert _browser(viewer).source.kind == "coco"
