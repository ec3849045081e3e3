"""Tracking job: the prompts file, labels from logits, and a run on a small random model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam_pets.predict.track_job import PromptsError, iter_track, labels_from_logits, read_prompts


def _write(tmp_path, doc):
    p = tmp_path / "prompts.json"
    p.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return p


def test_read_prompts_accepts_clicks_and_boxes(tmp_path):
    p = _write(
        tmp_path,
        {
            "objects": [
                {"id": 1, "frame": 0, "points": [[5, 6]], "labels": [1]},
                {"id": 2, "frame": 2, "box": [1, 1, 9, 7]},
                {"id": 1, "frame": 3, "points": [[4, 4], [2, 2]], "labels": [1, 0]},
            ]
        },
    )
    got = read_prompts(p, 4, (8, 10))
    assert [(g.obj_id, g.frame) for g in got] == [(1, 0), (2, 2), (1, 3)]
    assert got[1].box.tolist() == [1, 1, 9, 7] and got[1].points is None


@pytest.mark.parametrize(
    "doc, match",
    [
        ("{not json", "not valid JSON"),
        ({"objects": []}, "at least one"),
        ({"objects": [{"id": 0, "box": [1, 1, 2, 2]}]}, "'id'"),
        ({"objects": [{"id": 1, "frame": 9, "box": [1, 1, 2, 2]}]}, "'frame'"),
        ({"objects": [{"id": 1, "points": [[1, 1]], "labels": [1, 1]}]}, "1 points but 2"),
        ({"objects": [{"id": 1, "points": [[50, 1]], "labels": [1]}]}, "outside"),
        ({"objects": [{"id": 1, "box": [5, 1, 2, 2]}]}, "x1 > x0"),
        ({"objects": [{"id": 1}]}, "give 'points'"),
        ({"objects": [{"id": 1, "box": [1, 1, 2, 2], "colour": 3}]}, "unknown key"),
        (
            {"objects": [{"id": 1, "box": [1, 1, 2, 2]}, {"id": 1, "box": [1, 1, 3, 3]}]},
            "second entry",
        ),
    ],
)
def test_bad_prompts_name_the_file_and_entry(tmp_path, doc, match):
    p = _write(tmp_path, doc)
    with pytest.raises(PromptsError, match=match) as e:
        read_prompts(p, 4, (8, 10))
    assert "prompts.json" in str(e.value)


def test_labels_from_logits_highest_positive_wins():
    lg = np.array([[[1.0, -1.0, 3.0]], [[2.0, -2.0, -1.0]]])
    np.testing.assert_array_equal(labels_from_logits(lg, [5, 300]), [[300, 0, 5]])
    assert labels_from_logits(lg, [5, 300]).dtype == np.uint16


@pytest.fixture(scope="module")
def video_model():
    """sam2.1-tiny layout at 256 px with random image and video weights."""
    from sam_pets.model import build_model
    from sam_pets.model.config import get_config
    from sam_pets.model.convert import init_video_state

    model = build_model(get_config("sam2.1_hiera_tiny").replace(image_size=256), seed=0)
    model.extra_state = init_video_state("2.1")
    return model


def test_track_job_writes_every_frame(video_model, pet_image, tmp_path):
    from sam_pets.predict.track_job import FramePrompt
    from sam_pets.predict.video import VideoPredictor
    from sam_pets.progress import run_job

    frames = np.stack([pet_image[10 * t : 10 * t + 120, 5 * t : 5 * t + 160] for t in range(5)])
    pred = VideoPredictor(video_model, frames)
    prompts = [
        FramePrompt(3, 2, np.array([[80.0, 60.0]]), np.array([1])),
        FramePrompt(7, 2, box=np.array([10.0, 10.0, 70.0, 90.0])),
    ]
    records = []

    def tap(job):
        try:
            while True:
                records.append(next(job))
                yield records[-1]
        except StopIteration as stop:
            return stop.value

    summary = run_job(tap(iter_track(pred, prompts, tmp_path / "out", "both", "png")), show=False)
    assert sorted(summary.objects) == [3, 7]
    files = sorted((tmp_path / "out" / "labels").iterdir())
    assert [f.name for f in files] == [f"{t:05d}.png" for t in range(5)]
    assert records[-1].step == records[-1].total == 5
    from sam_pets.data.formats.label_images import read_label_image

    lab = read_label_image(files[0])
    assert lab.shape == (120, 160) and set(np.unique(lab)) <= {0, 3, 7}
    rec = json.loads((tmp_path / "out" / "track.json").read_text())
    assert rec["tracked_frames"] == [0, 1, 2, 3, 4] and rec["objects"] == [3, 7]
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_job(
            iter_track(VideoPredictor(video_model, frames), prompts, tmp_path / "out"), show=False
        )
    pred = VideoPredictor(video_model, frames)
    run_job(
        iter_track(pred, prompts, tmp_path / "out", "forward", "tif", overwrite=True), show=False
    )
    import tifffile

    stack = tifffile.imread(tmp_path / "out" / "labels.tif")
    assert stack.shape == (5, 120, 160)
    assert not (tmp_path / "out" / "labels").exists() or not any(
        (tmp_path / "out" / "labels").iterdir()
    )
    np.testing.assert_array_equal(stack[:2], 0)  # forward from frame 2: frames before it untouched
