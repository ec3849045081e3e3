"""Scoring segment-everything proposals: best IoU per object, COCO mask AP, the eval protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam_pets.eval.everything import EverythingScores, best_ious
from sam_pets.predict.everything import AutoMask

HW = (40, 50)


def proposal(mask: np.ndarray, score: float = 0.9) -> AutoMask:
    ys, xs = np.nonzero(mask)
    box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    return AutoMask((0, 0, HW[1], HW[0]), mask, box, score, 1.0, (0.0, 0.0), (0, 0, 50, 40))


def rect(y0, x0, y1, x1) -> np.ndarray:
    m = np.zeros(HW, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_best_iou_per_object_and_ignore():
    a, b = rect(0, 0, 10, 10), rect(20, 20, 30, 40)
    props = [proposal(rect(0, 0, 10, 20)), proposal(b)]  # a half-covered, b exact
    np.testing.assert_allclose(best_ious(props, np.stack([a, b])), [0.5, 1.0])
    ignore = rect(0, 10, 10, 20)  # the proposal's extra half is ignored
    np.testing.assert_allclose(best_ious(props, np.stack([a, b]), ignore), [1.0, 1.0])
    assert best_ious([], np.stack([a])).tolist() == [0.0]


def test_coco_ap_perfect_and_missing():
    gts = np.stack([rect(0, 0, 10, 10), rect(20, 20, 30, 40)])
    perfect = EverythingScores()
    perfect.add([proposal(g) for g in gts], gts)
    s = perfect.summary()
    assert s["ap"] == pytest.approx(1.0) and s["ar"] == pytest.approx(1.0)
    assert s["found75"] == 1.0 and s["proposals_per_image"] == 2
    half = EverythingScores()
    half.add([proposal(gts[0])], gts)  # one object found, one missed
    s = half.summary()
    assert s["ar"] == pytest.approx(0.5) and s["found50"] == 0.5
    assert s["best_iou_mean"] == pytest.approx(0.5)
    none = EverythingScores()
    none.add([], gts)
    assert none.summary()["ap"] == 0.0


def test_eval_protocol_everything_on_the_sample(tmp_path):
    from PIL import Image
    from tests.eval.conftest import write_dataset

    from sam_pets.eval.evaluate import EvalConfig, NamedModel, iter_evaluate
    from sam_pets.eval.report import write_eval_report
    from sam_pets.model import resolve_model
    from sam_pets.predict import ImagePredictor
    from sam_pets.predict.images import read_image
    from sam_pets.progress import run_job
    from sam_pets.samples import sample_path, trimap_path

    image = read_image(sample_path())
    trimap = np.asarray(Image.open(trimap_path()))
    write_dataset(
        tmp_path / "ds",
        [
            {
                "name": "cat",
                "masks": (trimap == 1)[None],
                "ignore": trimap == 3,
                "species": "cat",
                "image": image,
            }
        ],
    )
    predictor = ImagePredictor(resolve_model("pets"), device="cpu", precision="fp32")
    cfg = EvalConfig(
        protocols=("everything", "box"),
        everything={"points_per_side": 8, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.5},
    )
    res = run_job(iter_evaluate([NamedModel("pets", predictor)], tmp_path / "ds", cfg), False)
    s = res.summary()["results"]["pets"]
    e = s["everything"]
    assert e["n_objects"] == 1 and e["best_iou_mean"] > 0.7 and e["found50"] == 1.0
    assert e["ap50"] > 0 and e["proposals_per_image"] >= 1
    assert s["box"]["miou"] > 0.7  # the image was set back after the generator's crops
    index = write_eval_report(res, tmp_path / "report")
    assert "Segment everything" in index.read_text()
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["results"]
    with pytest.raises(ValueError, match="unknown"):
        EvalConfig(protocols=("everything",), everything={"grid": 3})
