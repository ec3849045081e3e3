import base64
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sam_pets.data.convert import convert_labelme
from sam_pets.data.errors import BadInputError
from sam_pets.data.formats import labelme
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.progress import run_job


def test_sample_instance_counts_with_group_merging(labelme_canonical):
    out, summary = labelme_canonical
    assert summary.converted == 3 and not summary.skipped
    recs = canon.items_by_name(canon.load_manifest(out))
    # 2011_000003: person + person(2 parts, group 0) + bottle; __ignore__ is not an object
    assert [o["category"] for o in recs["2011_000003"]["objects"]] == ["person", "person", "bottle"]
    # 2011_000006: 4 persons, a chair and one sofa drawn as 4 parts
    cats = [o["category"] for o in recs["2011_000006"]["objects"]]
    assert cats.count("person") == 4 and cats.count("sofa") == 1 and len(cats) == 6
    assert len(recs["2011_000025"]["objects"]) == 3
    assert recs["2011_000003"]["ignore"] and recs["2011_000006"]["ignore"]
    assert not recs["2011_000025"]["ignore"]


def test_category_ids_from_labels_txt(labelme_canonical):
    out, _ = labelme_canonical
    rec = canon.items_by_name(canon.load_manifest(out))["2011_000025"]
    assert {o["category"]: o["category_id"] for o in rec["objects"]} == {"bus": 6, "car": 7}


def test_masks_match_rasterised_shapes(labelme_canonical, labelme_sample):
    out, _ = labelme_canonical
    doc = json.loads((labelme_sample / "2011_000006.json").read_text())
    sofa_parts = [s for s in doc["shapes"] if s["label"] == "sofa"]
    want = np.zeros((doc["imageHeight"], doc["imageWidth"]), bool)
    for s in sofa_parts:
        want |= labelme.shape_to_mask(s, want.shape)
    rec = canon.items_by_name(canon.load_manifest(out))["2011_000006"]
    masks, ignore = canon.read_masks(out, rec)
    k = [o["category"] for o in rec["objects"]].index("sofa")
    assert np.array_equal(masks[k], want) and ignore.any()


def _doc(shapes, h=20, w=30, **kw):
    return {"shapes": shapes, "imagePath": "img.png", "imageHeight": h, "imageWidth": w, **kw}


def test_rectangle_circle_and_bad_shapes():
    shapes = [
        {"label": "box", "points": [[20, 15], [5, 2]], "shape_type": "rectangle"},
        {"label": "disc", "points": [[10, 10], [13, 14]], "shape_type": "circle"},
        {"label": "tiny", "points": [[1, 1], [2, 2]], "shape_type": "polygon"},
        {"label": "line", "points": [[1, 1], [9, 9]], "shape_type": "line"},
        {"label": "nan", "points": [[1, float("nan")], [2, 2], [3, 1]]},
    ]
    ann, notes = labelme.read_labelme(_doc(shapes), (20, 30), "x")
    assert [o.category for o in ann.objects] == ["box", "disc"]
    assert ann.masks[0].sum() == 16 * 14 and ann.masks[0][2, 5] and ann.masks[0][15, 20]
    assert ann.masks[1][10, 10] and ann.masks[1].sum() == pytest.approx(np.pi * 25, rel=0.35)
    assert any("polygon with 2 points" in n for n in notes)
    assert any("'line' has no area" in n for n in notes)
    assert len(notes) == 3


def test_size_mismatch_and_no_shapes():
    with pytest.raises(BadInputError, match="30x20"):
        labelme.read_labelme(_doc([]), (21, 30), "x")
    with pytest.raises(BadInputError, match="no usable shapes"):
        labelme.read_labelme(_doc([]), (20, 30), "x")


def test_image_data_is_used_when_file_is_absent(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((20, 30), np.uint16) + 7).save(buf, format="PNG")
    shape = {"label": "a", "points": [[1, 1], [10, 1], [10, 10]], "group_id": None}
    doc = _doc([shape], imageData=base64.b64encode(buf.getvalue()).decode())
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x ü.json").write_text(json.dumps(doc))
    (tmp_path / "src" / "broken.json").write_text('{"shapes": [')
    (tmp_path / "src" / "other.json").write_text('{"foo": 1}')
    summary = run_job(convert_labelme(tmp_path / "src", tmp_path / "out"), show=False)
    assert summary.converted == 1
    reasons = sorted(i.reason for i in summary.skipped)
    assert "malformed JSON" in reasons[0] and "not a LabelMe file" in reasons[1]
    assert "image from imageData" in summary.notes[0].reason


_point = st.lists(
    st.floats(-5, 40, allow_nan=False) | st.integers(-3, 40) | st.text(max_size=2),
    min_size=0,
    max_size=3,
)
_shape = st.fixed_dictionaries(
    {
        "label": st.sampled_from(["a", "b", "__ignore__", "_background_"]) | st.none(),
        "points": st.lists(_point, max_size=5) | st.none() | st.text(max_size=3),
        "shape_type": st.sampled_from(["polygon", "rectangle", "circle", "line", "point", "mask"])
        | st.none(),
        "group_id": st.none() | st.integers(0, 2) | st.text(max_size=2),
    }
)


@settings(max_examples=200, deadline=None)
@given(
    shapes=st.lists(_shape | st.integers() | st.none(), max_size=6),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
)
def test_fuzz_labelme_reader_only_raises_bad_input(shapes, h, w):
    doc = _doc(shapes, h, w)
    try:
        ann, _ = labelme.read_labelme(labelme.parse_labelme(json.dumps(doc)), (h, w), "f")
    except BadInputError:
        return
    assert ann.masks.shape[1:] == (h, w) and len(ann.objects) == len(ann.masks) >= 1


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_fuzz_labelme_parse_garbage(data):
    try:
        labelme.parse_labelme(data)
    except BadInputError:
        pass


def test_labelme5_mask_shape():
    crop = np.zeros((3, 4), np.uint8)
    crop[1:, 1:] = 255
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, format="PNG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    shape = {"label": "m", "points": [[2, 5], [5, 7]], "shape_type": "mask", "mask": b64}
    ann, notes = labelme.read_labelme(_doc([shape]), (20, 30), "x")
    want = np.zeros((20, 30), bool)
    want[6:8, 3:6] = True
    assert notes == [] and np.array_equal(ann.masks[0], want)
    bad = dict(shape, points=[[2, 5], [9, 9]])
    with pytest.raises(BadInputError, match="does not fit"):
        labelme.shape_to_mask(bad, (20, 30))
    with pytest.raises(BadInputError, match="unreadable"):
        labelme.shape_to_mask(dict(shape, mask="aGVsbG8="), (20, 30))
