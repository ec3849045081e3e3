import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools import mask as mask_utils

from sam_pets.data.errors import BadInputError
from sam_pets.data.export import EmptyLabelsError, export_annotation
from sam_pets.data.formats import sam2_folder as canon


@pytest.fixture
def pet(pet_mask_and_trimap, oxford_dev):
    from PIL import Image

    mask, trimap = pet_mask_and_trimap
    with Image.open(oxford_dev / "images" / "Bengal_63.jpg") as im:
        image = np.asarray(im)
    return image, mask.astype(np.uint16), trimap


def test_export_creates_then_replaces_one_item(tmp_path, pet):
    image, labels, trimap = pet
    ds = tmp_path / "ds"
    r1 = export_annotation(
        ds,
        image,
        labels,
        "Bengal 63",
        {"species": "cat", "breed": "Bengal", "source": tmp_path / "b.jpg", "ignore": trimap == 3},
    )
    assert r1.name == "Bengal_63" and not r1.replaced
    export_annotation(ds, image, labels * 2, "other", {"split": "val"})
    relabel = labels.copy()
    relabel[:10, :10] = 3
    r2 = export_annotation(ds, image, relabel, "Bengal 63", {"categories": {3: "toy"}})
    assert r2.replaced
    items = canon.load_manifest(ds)["items"]
    assert [r["name"] for r in items] == ["Bengal_63", "other"]
    rec = canon.items_by_name(canon.load_manifest(ds))["Bengal_63"]
    assert [o["id"] for o in rec["objects"]] == [1, 3] and rec["objects"][1]["category"] == "toy"
    assert rec["split"] == r1.record["split"]  # a re-export keeps the item's split
    masks, ignore = canon.read_masks(ds, rec)
    assert np.array_equal(masks[0], relabel == 1) and not ignore.any()
    assert canon.read_list(ds, "val") == ["other"]
    assert len(list((ds / "JPEGImages").iterdir())) == 2
    assert not [p for p in ds.rglob("*.tmp")]


def test_export_metadata_and_pixels(tmp_path, pet):
    image, labels, trimap = pet
    r = export_annotation(tmp_path, image, labels, "p", {"ignore": trimap == 3, "species": "cat"})
    assert r.record["species"] == "cat" and r.record["ignore"]
    masks, ignore = canon.read_masks(tmp_path, r.record)
    assert np.array_equal(masks[0], trimap == 1) and np.array_equal(ignore, trimap == 3)
    stored = canon.read_image(tmp_path, "p")
    assert stored.shape == image.shape and np.abs(stored.astype(int) - image).mean() < 3


def test_empty_labels_are_refused(tmp_path, pet):
    image, labels, _ = pet
    with pytest.raises(EmptyLabelsError, match="empty"):
        export_annotation(tmp_path / "ds", image, np.zeros_like(labels), "x")
    assert not (tmp_path / "ds").exists()


def test_size_mismatch_names_both_sizes(tmp_path, pet):
    image, labels, _ = pet
    with pytest.raises(ValueError, match=r"500x375.*499x375"):
        export_annotation(tmp_path, image, labels[:, :499], "x")
    with pytest.raises(ValueError, match="2-D"):
        export_annotation(tmp_path, image, labels[None], "x")


def test_never_writes_into_foreign_folders(tmp_path, pet):
    image, labels, _ = pet
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a sam-pets dataset"):
        export_annotation(tmp_path, image, labels, "x")
    ds = tmp_path / "ds"
    export_annotation(ds, image, labels, "a")
    stray = canon.item_paths(ds, "b").image
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"user file")
    with pytest.raises(FileExistsError, match="not in the dataset manifest"):
        export_annotation(ds, image, labels, "b")
    assert stray.read_bytes() == b"user file"
    (ds / "dataset.json").write_text("{broken")
    with pytest.raises(BadInputError):
        export_annotation(ds, image, labels, "c")


def test_export_writes_coco_alongside(tmp_path, pet):
    image, labels, _ = pet
    grey16 = image[..., 0].astype(np.uint16) * 100
    r = export_annotation(tmp_path, grey16, labels, "g", write_coco=True)
    assert any("stretched" in n for n in r.notes)
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert len(coco["images"]) == 1 and len(coco["annotations"]) == 1
    mask = mask_utils.decode(coco["annotations"][0]["segmentation"]).astype(bool)
    assert np.array_equal(mask, labels == 1)
    export_annotation(tmp_path, grey16, labels, "g2", write_coco=True)
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert len(coco["images"]) == 2


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    labels=hnp.arrays(
        np.uint16,
        st.tuples(st.integers(1, 12), st.integers(1, 12)),
        elements=st.sampled_from([0, 0, 1, 2, 7, 300]),
    ),
)
def test_export_round_trips_any_label_array(tmp_path_factory, labels):
    from sam_pets.data.formats.label_images import labels_to_masks

    ds = tmp_path_factory.mktemp("prop")
    image = np.zeros((*labels.shape, 3), np.uint8)
    if not labels.any():
        with pytest.raises(EmptyLabelsError):
            export_annotation(ds, image, labels, "x")
        return
    r = export_annotation(ds, image, labels, "x")
    r = export_annotation(ds, image, labels, "x")  # re-export: replaced, not duplicated
    assert r.replaced and len(canon.load_manifest(ds)["items"]) == 1
    masks, _ = canon.read_masks(ds, r.record)
    ids, want = labels_to_masks(labels)
    assert [o["id"] for o in r.record["objects"]] == ids.tolist()
    assert np.array_equal(masks, want)


def test_same_name_for_another_image_is_refused(tmp_path, pet):
    image, labels, _ = pet
    export_annotation(tmp_path, image, labels, "a", {"source": "/x/a.jpg"})
    other = image[::-1].copy()
    with pytest.raises(FileExistsError, match="another image"):
        export_annotation(tmp_path, other, labels, "a")
    # the same source path (e.g. the image was edited) or replace=True may replace it
    assert export_annotation(tmp_path, other, labels, "a", {"source": "/x/a.jpg"}).replaced
    assert export_annotation(tmp_path, image, labels, "a", replace=True).replaced
    with pytest.raises(ValueError, match="split"):
        export_annotation(tmp_path, image, labels, "b", {"split": "test"})


def test_coco_export_never_replaces_a_folder(tmp_path):
    from sam_pets.data.export import export_coco

    folder = tmp_path / "ds"
    (folder / "JPEGImages").mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match="ds is a folder"):
        next(export_coco(folder, folder, overwrite=True))
    assert (folder / "JPEGImages").is_dir()
