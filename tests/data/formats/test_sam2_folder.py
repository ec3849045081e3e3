import json

import numpy as np
import pytest

from sam_pets.data.errors import BadInputError
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.types import Annotation, ObjectInfo


def _ann(name="a", overlap=False, ignore=True):
    masks = np.zeros((2, 8, 9), bool)
    masks[0, 1:5, 1:5] = True
    masks[1, 4:7, 4:8] = True if overlap else False
    if not overlap:
        masks[1, 6:8, 6:9] = True
    ign = np.zeros((8, 9), bool)
    ign[0, :] = ignore
    return Annotation(name, masks, (ObjectInfo(1, "x"), ObjectInfo(2, "y")), ign)


def test_write_and_read_item(tmp_path):
    jpeg = b"\xff\xd8\xff fake"
    rec = canon.write_item(tmp_path, _ann(), jpeg, "train", {"notes": ["n"]})
    paths = canon.item_paths(tmp_path, "a")
    assert paths.image.read_bytes() == jpeg and paths.ignore.is_file()
    assert not paths.objects.exists() and not rec["overlaps"]
    assert rec["objects"][0] == {
        "id": 1,
        "category": "x",
        "category_id": None,
        "iscrowd": 0,
        "area": 16,
    }
    masks, ignore = canon.read_masks(tmp_path, rec)
    assert np.array_equal(masks, _ann().masks) and np.array_equal(ignore, _ann().ignore)
    assert rec["notes"] == ["n"] and len(rec["image_sha256"]) == 64


def test_overlap_uses_objects_file_and_stale_files_are_removed(tmp_path):
    rec = canon.write_item(tmp_path, _ann(overlap=True), b"j", "val")
    paths = canon.item_paths(tmp_path, "a")
    assert rec["overlaps"] and paths.objects.is_file()
    masks, _ = canon.read_masks(tmp_path, rec)
    assert np.array_equal(masks, _ann(overlap=True).masks)
    rec = canon.write_item(tmp_path, _ann(ignore=False), b"j", "val")
    assert not paths.objects.exists() and not paths.ignore.exists()
    canon.remove_item(tmp_path, "a")
    assert not paths.image.parent.exists()


def test_no_temp_files_left(tmp_path):
    canon.write_item(tmp_path, _ann(), b"j", "train")
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_manifest_and_lists(tmp_path):
    m = canon.new_manifest()
    m["items"] = [
        {"name": n, "split": s, "breed": b, "objects": []}
        for n, s, b in [("b", "train", "x"), ("a", "val", "y"), ("c", "train", "y")]
    ]
    canon.save_manifest(tmp_path, m)
    assert canon.is_dataset(tmp_path)
    assert [r["name"] for r in canon.load_manifest(tmp_path)["items"]] == ["a", "b", "c"]
    assert canon.write_lists(tmp_path, m, tiny_size=1) == {"train": 2, "val": 1}
    assert canon.read_list(tmp_path, "train") == ["b", "c"]
    assert len(canon.read_list(tmp_path, "train_tiny")) == 1


def test_bad_manifests(tmp_path):
    with pytest.raises(BadInputError, match="no dataset.json"):
        canon.load_manifest(tmp_path)
    (tmp_path / "dataset.json").write_text("{oops")
    with pytest.raises(BadInputError, match="malformed"):
        canon.load_manifest(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(BadInputError):
        canon.load_manifest(tmp_path)


def test_check_output(tmp_path):
    canon.check_output(tmp_path / "new")
    assert not (tmp_path / "new").exists()  # checking creates nothing
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        canon.check_output(tmp_path / "file")
    ds = tmp_path / "ds"
    canon.save_manifest(ds, canon.new_manifest())
    canon.write_item(ds, _ann(), b"j", "train")
    with pytest.raises(FileExistsError, match="--overwrite"):
        canon.check_output(ds)
    canon.check_output(ds, overwrite=True)
    (tmp_path / "other" / "x").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a sam-pets dataset"):
        canon.check_output(tmp_path / "other", overwrite=True)


def _item_with_image(root, name="a", overlap=False, hw=(8, 9)):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((*hw, 3), np.uint8)).save(buf, format="JPEG")
    return canon.write_item(root, _ann(name, overlap), buf.getvalue(), "train")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: p.labels.write_text("text"), "cannot read its files: .*not a readable image"),
        (lambda p: p.image.unlink(), "image file missing: .*00000.jpg"),
        (lambda p: p.image.write_bytes(b"\xff\xd8\xff truncated"), "cannot read its files"),
        (lambda p: p.ignore.unlink(), "ignore file missing"),
    ],
)
def test_unreadable_item_raises_bad_item_error(tmp_path, damage, reason):
    from sam_pets.data.errors import BadItemError

    rec = _item_with_image(tmp_path)
    damage(canon.item_paths(tmp_path, "a"))
    with pytest.raises(BadItemError, match=reason) as e:
        canon.read_annotation(tmp_path, rec)
    assert e.value.item == "a" and str(e.value).startswith("item 'a': ")
    assert isinstance(e.value, BadInputError)
    with pytest.raises(BadItemError, match=reason):
        canon.read_object_rles(tmp_path, rec)  # the export path checks the same files


def test_bad_objects_file_and_size_mismatch_are_item_errors(tmp_path):
    import pickle

    from sam_pets.data.errors import BadItemError

    rec = _item_with_image(tmp_path, "o", overlap=True)
    canon.item_paths(tmp_path, "o").objects.write_text("{")
    with pytest.raises(BadItemError, match="item 'o': cannot read its files: .*00000.json"):
        canon.read_masks(tmp_path, rec)
    rec = _item_with_image(tmp_path, "s", hw=(5, 5))
    with pytest.raises(BadItemError, match=r"mask size \(8, 9\) differs from image size") as e:
        canon.read_annotation(tmp_path, rec)
    with pytest.raises(BadItemError, match="differs from image size"):
        canon.read_object_rles(tmp_path, rec)
    again = pickle.loads(pickle.dumps(e.value))  # crosses DataLoader worker processes
    assert (again.item, again.reason, str(again)) == (e.value.item, e.value.reason, str(e.value))
