"""The folder job of segment everything: outputs, bad input, resume, and the CLI around it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from sam_pets.predict import ImagePredictor
from sam_pets.predict import segment_job as S
from sam_pets.predict.everything import EverythingParams
from sam_pets.progress import run_job

LOOSE = dict(points_per_side=8, pred_iou_thresh=0.5, stability_score_thresh=0.5)


@pytest.fixture(scope="module")
def pets_predictor():
    from sam_pets.model import resolve_model

    return ImagePredictor(resolve_model("pets"), device="cpu", precision="fp32")


@pytest.fixture
def folder(tmp_path):
    from sam_pets.samples import sample_path

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(sample_path(), src / "cat.jpg")
    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(src / "grey.png")
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    import tifffile

    nan = np.zeros((40, 50), np.float32)
    nan[3, 4] = np.nan
    tifffile.imwrite(src / "nan.tif", nan)  # reads, but no model can take it
    (src / "notes.txt").write_text("not an image")
    return src


def _run(predictor, inputs, out, **kw):
    inputs = inputs if isinstance(inputs, list) else [inputs]
    job = S.iter_segment_folder(predictor, inputs, out, EverythingParams(**LOOSE), **kw)
    notices = []
    while True:
        try:
            rec = next(job)
        except StopIteration as stop:
            return stop.value, notices
        if rec.notice:
            notices.append(rec.notice)


def test_folder_run_writes_every_format(pets_predictor, folder, tmp_path):
    out = tmp_path / "out"
    summary, notices = _run(
        pets_predictor, folder, out, formats=("labels", "coco", "dataset"), model_name="pets"
    )
    assert summary.done == ["cat", "grey"]
    assert [f for f, _ in summary.skipped] == [str(folder / n) for n in ("broken.jpg", "nan.tif")]
    assert any("broken.jpg" in n for n in notices)  # one line names each bad file
    assert any("nan.tif" in n and "NaN" in n for n in notices)
    assert any("grey.png: no object found" in n for n in notices)
    n_cat = summary.masks["cat"]
    assert n_cat > 0
    labels = np.asarray(Image.open(out / "labels" / "cat.png"))
    assert labels.shape == (375, 500) and 0 < labels.max() <= n_cat
    assert not np.asarray(Image.open(out / "labels" / "grey.png")).any()
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["images"]) == 2
    cat_id = next(i["id"] for i in coco["images"] if i["file_name"].endswith("cat.jpg"))
    anns = [a for a in coco["annotations"] if a["image_id"] == cat_id]
    assert len(anns) == n_cat
    from pycocotools import mask as mask_utils

    a = anns[0]
    m = mask_utils.decode({**a["segmentation"], "counts": a["segmentation"]["counts"].encode()})
    assert m.sum() == a["area"] and {"predicted_iou", "stability_score", "score"} <= set(a)
    # the dataset holds the cat (the grey image has no object) and opens as a dataset
    from sam_pets.data.sources import open_items

    items = open_items(out / "dataset")
    assert items.names == ["cat"] and items.objects("cat") == len(np.unique(labels)) - 1


def test_rerun_resumes_and_other_settings_are_refused(pets_predictor, folder, tmp_path):
    out = tmp_path / "out"
    _run(pets_predictor, folder, out)
    (out / "parts" / "grey.json").unlink()  # as if stopped before the last image
    summary, _ = _run(pets_predictor, folder, out)
    assert summary.resumed == ["cat"] and summary.done == ["grey"]
    # a changed file (or another file under a done name) is segmented again
    import os

    os.utime(folder / "grey.png", ns=(1, 1))
    summary, _ = _run(pets_predictor, [folder / "grey.png", folder / "grey.png"], out)
    assert summary.done == ["grey"] and not summary.resumed  # listed twice, done once
    job = S.iter_segment_folder(pets_predictor, [folder], out, EverythingParams(points_per_side=4))
    with pytest.raises(S.RunMismatch, match="params"):
        next(job)
    job = S.iter_segment_folder(
        pets_predictor, [folder], out, EverythingParams(points_per_side=4), overwrite=True
    )
    summary = run_job(job, show=False)
    assert sorted(summary.done) == ["cat", "grey"] and not summary.resumed


def test_a_folder_of_other_data_is_refused(pets_predictor, folder, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        next(S.iter_segment_folder(pets_predictor, [folder], out))
    assert (out / "thesis.docx").read_text() == "precious"


def test_labels_paint_largest_first():
    from sam_pets.predict.everything import AutoMask

    big = np.ones((10, 10), bool)
    small = np.ones((2, 2), bool)
    masks = [
        AutoMask((2, 2, 4, 4), small, (2, 2, 3, 3), 0.9, 1.0, (3, 3), (0, 0, 10, 10)),
        AutoMask((0, 0, 10, 10), big, (0, 0, 9, 9), 0.8, 1.0, (5, 5), (0, 0, 10, 10)),
    ]
    labels = S.labels_from_masks(masks, (10, 10))
    assert (labels[2:4, 2:4] == 1).all() and labels[0, 0] == 2
