import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from sam_pets.data.convert import ConvertConfig, convert_coco
from sam_pets.data.errors import BadInputError
from sam_pets.data.export import dataset_to_coco, export_coco
from sam_pets.data.formats import coco as coco_fmt
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.progress import run_job


def _source_masks(coco: dict, file_name: str) -> list[np.ndarray]:
    img = next(i for i in coco["images"] if i["file_name"] == file_name)
    out = []
    for a in coco["annotations"]:
        if a["image_id"] == img["id"]:
            rles = mask_utils.frPyObjects(a["segmentation"], img["height"], img["width"])
            out.append(mask_utils.decode(mask_utils.merge(rles)).astype(bool))
    return out


def _assert_round_trip(src_json, out_dir):
    src = json.loads(src_json.read_text())
    exported = dataset_to_coco(out_dir)
    manifest = canon.items_by_name(canon.load_manifest(out_dir))
    assert {c["id"] for c in exported["categories"]} == {c["id"] for c in src["categories"]}
    for img in exported["images"]:
        rec = manifest[img["sam_pets_name"]]
        file_name = rec["source"].split("/")[-1]
        want = _source_masks(src, file_name)
        got = [
            mask_utils.decode(a["segmentation"]).astype(bool)
            for a in exported["annotations"]
            if a["image_id"] == img["id"]
        ]
        cats_src = [
            a["category_id"]
            for a in src["annotations"]
            if a["image_id"] == next(i["id"] for i in src["images"] if i["file_name"] == file_name)
        ]
        cats_got = [a["category_id"] for a in exported["annotations"] if a["image_id"] == img["id"]]
        assert len(got) == len(want) and cats_got == cats_src
        for g, w in zip(got, want, strict=True):
            assert np.array_equal(g, w)


def test_coco_subset_round_trip_is_lossless(coco_tiny_canonical, coco_sample):
    out, summary = coco_tiny_canonical
    assert summary.converted == 6 and not summary.skipped
    _assert_round_trip(coco_sample / "annotations.json", out)


def test_overlapping_objects_are_kept_losslessly(coco_tiny_canonical):
    out, _ = coco_tiny_canonical
    rec = canon.load_manifest(out)["items"][0]
    assert rec["overlaps"] and canon.item_paths(out, rec["name"]).objects.is_file()
    masks, _ = canon.read_masks(out, rec)
    assert (masks.sum(axis=0) > 1).any()
    labels = np.asarray(Image.open(canon.item_paths(out, rec["name"]).labels))
    assert Image.open(canon.item_paths(out, rec["name"]).labels).mode == "P"
    assert set(np.unique(labels)) - {0} <= {o["id"] for o in rec["objects"]}


@pytest.mark.slow
def test_coco_full_round_trip_is_lossless(tmp_path, coco_sample):
    out = tmp_path / "ds"
    summary = run_job(
        convert_coco(coco_sample / "annotations.json", coco_sample / "images", out), show=False
    )
    assert summary.converted == 83
    _assert_round_trip(coco_sample / "annotations.json", out)
    canon_total = sum(len(r["objects"]) for r in canon.load_manifest(out)["items"])
    assert canon_total == 2842


def test_unused_category_zero_is_kept(coco_tiny_canonical):
    out, _ = coco_tiny_canonical
    cats = canon.load_manifest(out)["categories"]
    assert {"id": 0, "name": "facade", "supercategory": "none"} in cats


def test_export_job_refuses_to_overwrite(coco_tiny_canonical, tmp_path):
    out, _ = coco_tiny_canonical
    target = tmp_path / "x.json"
    target.write_text("{}")
    with pytest.raises(FileExistsError):
        run_job(export_coco(out, target), show=False)
    summary = run_job(export_coco(out, target, overwrite=True), show=False)
    assert summary.converted == 6
    assert len(json.loads(target.read_text())["images"]) == 6


def _write_image(path, h=20, w=30):
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)


def test_rle_crowd_bad_polygons_and_missing_images(tmp_path):
    imgs = tmp_path / "my images"
    imgs.mkdir()
    _write_image(imgs / "a ä.jpg")
    _write_image(imgs / "b.jpg")
    _write_image(imgs / "wrong size.jpg", 10, 10)
    crowd = np.zeros((20, 30), bool)
    crowd[2:8, 3:9] = True
    rle = mask_utils.encode(np.asfortranarray(crowd.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode()
    coco = {
        "images": [
            {"id": 1, "file_name": "a ä.jpg", "height": 20, "width": 30},
            {"id": 2, "file_name": "b.jpg", "height": 20, "width": 30},
            {"id": 3, "file_name": "missing.jpg", "height": 20, "width": 30},
            {"id": 4, "file_name": "wrong size.jpg", "height": 20, "width": 30},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1, "segmentation": rle},
            {
                "id": 2,
                "image_id": 1,
                "category_id": 2,
                "iscrowd": 0,
                "segmentation": [[10, 10, 20, 10, 20, 18]],
            },
            {"id": 3, "image_id": 1, "category_id": 2, "segmentation": [[1, 1, 2, 2]]},
            {"id": 4, "image_id": 2, "category_id": 2, "segmentation": [[1, 1, 5, 5]]},
            {"id": 5, "image_id": 4, "category_id": 2, "segmentation": [[1, 1, 5, 5, 1, 5]]},
            {"id": 6, "image_id": 99, "category_id": 2, "segmentation": [[1, 1, 5, 5, 1, 5]]},
        ],
        "categories": [{"id": 1, "name": "crowd"}, {"id": 2, "name": "thing"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    out = tmp_path / "out"
    summary = run_job(convert_coco(tmp_path / "ann.json", imgs, out), show=False)
    assert summary.converted == 1
    reasons = " | ".join(f"{i.source}: {i.reason}" for i in summary.skipped)
    assert "b.jpg: no usable annotations" in reasons and "2 points" in reasons
    assert "missing.jpg: image not found" in reasons
    assert "wrong size.jpg: JSON says 30x20" in reasons and "10x10" in reasons
    assert "unknown image 99" in reasons
    assert "annotation 3 skipped" in summary.notes[0].reason
    rec = canon.load_manifest(out)["items"][0]
    assert rec["name"] == "a_a" and rec["objects"][0]["iscrowd"] == 1
    masks, _ = canon.read_masks(out, rec)
    assert np.array_equal(masks[0], crowd)
    exported = dataset_to_coco(out)
    assert exported["annotations"][0]["iscrowd"] == 1
    assert np.array_equal(mask_utils.decode(exported["annotations"][0]["segmentation"]), crowd)


def test_malformed_json_is_an_error(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BadInputError, match="malformed JSON"):
        coco_fmt.load_coco(tmp_path / "bad.json")
    with pytest.raises(BadInputError, match="'images' must be a list"):
        coco_fmt.parse_coco(json.dumps({"images": 3, "annotations": []}))
    with pytest.raises(BadInputError):
        coco_fmt.parse_coco(json.dumps([1, 2]))


def test_decode_segmentation_variants():
    poly = coco_fmt.decode_segmentation([[0, 0, 9, 0, 9, 9, 0, 9]], 10, 10)
    assert poly.sum() > 50
    ulist = {"size": [4, 4], "counts": [2, 3, 11]}
    assert coco_fmt.decode_segmentation(ulist, 4, 4).sum() == 3
    with pytest.raises(BadInputError, match="differs"):
        coco_fmt.decode_segmentation({"size": [5, 4], "counts": [20]}, 4, 4)
    with pytest.raises(BadInputError):
        coco_fmt.decode_segmentation([["a", 1, 2, 3, 4, 5]], 4, 4)


def _two_images(tmp_path, ids):
    """a.jpg and b.jpg (30x20) in tmp_path/images, and their COCO image entries with ``ids``."""
    imgs = tmp_path / "images"
    imgs.mkdir()
    entries = []
    for image_id, name in zip(ids, ("a.jpg", "b.jpg"), strict=True):
        _write_image(imgs / name)
        entries.append({"id": image_id, "file_name": name, "height": 20, "width": 30})
    return imgs, entries


def test_far_out_or_non_finite_polygon_is_one_skipped_annotation(tmp_path):
    # pycocotools overflows (segfault) on a point like 1e9; such an annotation must be
    # reported and skipped, and the rest of the batch must convert
    imgs, images = _two_images(tmp_path, ids=(1, 2))
    good = [[2, 2, 25, 2, 25, 15]]
    coco = {
        "images": images,
        "annotations": [
            {
                "id": 7,
                "image_id": 1,
                "category_id": 1,
                "segmentation": [[1e9, 1e9, -1e9, 0, 5, -1e9]],
            },
            {"id": 8, "image_id": 1, "category_id": 1, "segmentation": good},
            {"id": 9, "image_id": 2, "category_id": 1, "segmentation": good},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    summary = run_job(convert_coco(tmp_path / "ann.json", imgs, tmp_path / "out"), show=False)
    assert summary.converted == 2 and not summary.skipped
    assert len(summary.notes) == 1
    assert "annotation 7 skipped" in summary.notes[0].reason
    assert "far outside the 30x20" in summary.notes[0].reason
    for seg in ([[float("nan"), 1, 5, 5, 1, 5]], [[float("inf"), 1, 5, 5, 1, 5]]):
        with pytest.raises(BadInputError, match="finite"):
            coco_fmt.decode_segmentation(seg, 20, 30)
    with pytest.raises(BadInputError, match="too large"):
        coco_fmt.decode_segmentation([[10**400, 1, 5, 5, 1, 5]], 20, 30)
    # a small overshoot of the border is common and still converts (clipped by rasterising)
    assert coco_fmt.decode_segmentation([[-3, -3, 33, -3, 33, 23, -3, 23]], 20, 30).all()


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 50)
    | st.floats(allow_nan=True)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "image_id",
                    "file_name",
                    "segmentation",
                    "counts",
                    "size",
                    "height",
                    "width",
                    "category_id",
                    "iscrowd",
                    "name",
                ]
            ),
            inner,
            max_size=6,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    images=st.lists(_json, max_size=3),
    anns=st.lists(_json, max_size=4),
    cats=st.lists(_json, max_size=3),
)
def test_fuzz_coco_reader_only_raises_bad_input(images, anns, cats):
    doc = json.dumps({"images": images, "annotations": anns, "categories": cats})
    try:
        coco = coco_fmt.parse_coco(doc)
    except BadInputError:
        return
    items, _ = coco_fmt.group_images(coco)
    catmap = {
        c.get("id"): c
        for c in coco["categories"]
        if isinstance(c, dict) and isinstance(c.get("id"), (int, str))
    }
    for item in items:
        try:
            coco_fmt.read_coco_image(item, (8, 8), catmap)
        except BadInputError:
            pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_fuzz_coco_parse_garbage(data):
    try:
        coco_fmt.parse_coco(data)
    except BadInputError:
        pass


def test_tiny_subset_config(coco_sample, tmp_path):
    cfg = ConvertConfig(tiny=2, val_fraction=0.5)
    summary = run_job(
        convert_coco(coco_sample / "annotations.json", coco_sample / "images", tmp_path / "o", cfg),
        show=False,
    )
    assert summary.converted == 2 and summary.splits == {"train": 1, "val": 1}


def test_polygons_are_close_to_real_masks(pet_mask_and_trimap):
    mask, _ = pet_mask_and_trimap
    polys = coco_fmt.mask_to_polygons(mask)
    assert polys and all(len(p) >= 6 and len(p) % 2 == 0 for p in polys)
    back = coco_fmt.decode_segmentation(polys, *mask.shape)
    iou = (back & mask).sum() / (back | mask).sum()
    assert iou > 0.97
    ring = np.zeros((12, 12), bool)
    ring[2:10, 2:10] = True
    ring[5:7, 5:7] = False
    square = coco_fmt.decode_segmentation(coco_fmt.mask_to_polygons(ring), 12, 12)
    assert square[5, 5] and square[2:10, 2:10].sum() >= 60  # hole filled; corners may be cut
    assert coco_fmt.mask_to_polygons(np.zeros((4, 4), bool)) == []


def test_export_polygons(coco_tiny_canonical, tmp_path):
    out, _ = coco_tiny_canonical
    summary = run_job(export_coco(out, tmp_path / "p.json", polygons=True), show=False)
    coco = json.loads((tmp_path / "p.json").read_text())
    assert summary.converted == 6
    assert all(
        isinstance(a["segmentation"], list) or a["iscrowd"] or a["area"] < 4
        for a in coco["annotations"]
    )


def test_export_categories_give_one_id_per_name_when_ids_clash():
    """A manifest whose objects reuse one id for two names (an old merge) exports by name."""
    objs = [
        {"category_id": 5, "category": "bottle"},
        {"category_id": 5, "category": "street"},
        {"category_id": 2, "category": "car"},
        {"category_id": 7, "category": "car"},
        {"category_id": None, "category": None},
    ]
    manifest = {"categories": [{"id": 2, "name": "car"}], "items": [{"objects": objs}]}
    cats = coco_fmt.coco_categories(manifest)
    names = {c["id"]: c["name"] for c in cats}
    assert len(set(names.values())) == len(names) == 4
    got = [names[coco_fmt.object_category_id(o, cats)] for o in objs]
    assert got == ["bottle", "street", "car", "car", "object"]


def test_duplicate_image_ids_and_unknown_categories_are_reported(tmp_path):
    imgs, images = _two_images(tmp_path, ids=(1, 1))
    tri = [[2, 2, 20, 2, 20, 15]]
    coco = {
        "images": images,
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": tri},
            {"id": 2, "image_id": 1, "category_id": 777, "segmentation": tri},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    out = tmp_path / "out"
    summary = run_job(convert_coco(tmp_path / "ann.json", imgs, out), show=False)
    assert summary.converted == 1
    (dup,) = [i for i in summary.skipped if "duplicate image id 1" in i.reason]
    assert dup.source.endswith("ann.json") and "b.jpg" in dup.reason
    assert "annotation 2 skipped: category_id 777 is not in 'categories'" in summary.notes[0].reason
    (rec,) = canon.load_manifest(out)["items"]
    assert rec["name"] == "a"
    assert [(o["category_id"], o["category"]) for o in rec["objects"]] == [(1, "thing")]


def test_export_then_convert_keeps_names_and_ignore_regions(labelme_canonical, tmp_path):
    src, _ = labelme_canonical
    coco_json = tmp_path / "lm.json"
    run_job(export_coco(src, coco_json), show=False)
    out = tmp_path / "back"
    summary = run_job(convert_coco(coco_json, src, out), show=False)
    assert not summary.skipped
    before = canon.items_by_name(canon.load_manifest(src))
    after = canon.items_by_name(canon.load_manifest(out))
    assert sorted(after) == sorted(before)
    assert any(r["ignore"] for r in before.values())
    for name, rec in before.items():
        masks, ignore = canon.read_masks(src, rec)
        masks2, ignore2 = canon.read_masks(out, after[name])
        assert np.array_equal(masks, masks2) and np.array_equal(ignore, ignore2), name
        assert after[name]["ignore"] == rec["ignore"]


def test_export_skips_unreadable_items(coco_tiny_canonical, tmp_path):
    import shutil

    from sam_pets.data.errors import BadInputError

    src, _ = coco_tiny_canonical
    root = tmp_path / "ds"
    shutil.copytree(src, root)
    names = sorted(canon.items_by_name(canon.load_manifest(root)))
    canon.item_paths(root, names[2]).image.unlink()
    records, target = [], tmp_path / "x.json"
    job = export_coco(root, target)
    while True:
        try:
            records.append(next(job))
        except StopIteration as stop:
            summary = stop.value
            break
    assert summary.converted == len(names) - 1
    assert [(i.source, i.reason.split(":")[0]) for i in summary.skipped] == [
        (names[2], "image file missing")
    ]
    assert [r.notice for r in records if r.notice] == [
        f"skipped item {names[2]!r}: {summary.skipped[0].reason}"
    ]
    doc = json.loads(target.read_text())
    assert [im["id"] for im in doc["images"]] == list(range(1, len(names)))
    assert not any(f"/{names[2]}/" in im["file_name"] for im in doc["images"])
    for name in names:
        canon.item_paths(root, name).image.write_text("x")
    with pytest.raises(BadInputError, match="none of the 6 items can be read"):
        run_job(export_coco(root, tmp_path / "y.json"), show=False)
    assert not (tmp_path / "y.json").exists()
