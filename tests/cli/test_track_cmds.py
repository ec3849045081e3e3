"""``sam-pets track``: a stack and a prompts file in, label images out; clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam_pets.cli import main


@pytest.fixture(scope="module")
def video_checkpoint(tmp_path_factory):
    """A sam2.1-tiny layout checkpoint at 256 px with random image and video weights."""
    from sam_pets.model import build_model
    from sam_pets.model.checkpoint import save_checkpoint
    from sam_pets.model.config import get_config
    from sam_pets.model.convert import init_video_state

    model = build_model(get_config("sam2.1_hiera_tiny").replace(image_size=256), seed=0)
    model.extra_state = init_video_state("2.1")
    path = tmp_path_factory.mktemp("ckpt") / "tiny_video.pt"
    save_checkpoint(model, path)
    return path


@pytest.fixture
def stack(tmp_path, pet_image):
    import tifffile

    frames = np.stack([pet_image[8 * t : 8 * t + 96, 6 * t : 6 * t + 128] for t in range(4)])
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, frames, photometric="rgb")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(
        json.dumps({"objects": [{"id": 2, "frame": 1, "points": [[60, 50]], "labels": [1]}]})
    )
    return path, prompts


def test_cli_track_writes_labels(video_checkpoint, stack, tmp_path, capsys):
    path, prompts = stack
    out = tmp_path / "out"
    args = ["track", str(path), "--prompts", str(prompts), "--out", str(out)]
    args += ["--model", str(video_checkpoint), "--quiet"]
    assert main(args) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["frames"] == 4 and line["objects"] == [2] and line["files"] == 4
    assert sorted(p.name for p in (out / "labels").iterdir()) == [f"{t:05d}.png" for t in range(4)]
    assert main(args) == 2  # results there: refused without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--format", "tif", "--direction", "forward"]) == 0
    assert json.loads((out / "track.json").read_text())["precision"] == "fp32"


def test_cli_track_in_bf16(video_checkpoint, stack, tmp_path, capsys):
    path, prompts = stack
    out = tmp_path / "out"
    args = ["track", str(path), "--prompts", str(prompts), "--out", str(out)]
    args += ["--model", str(video_checkpoint), "--quiet", "--precision", "bf16"]
    assert main(args) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["precision"] == "bf16" and line["files"] == 4
    assert json.loads((out / "track.json").read_text())["precision"] == "bf16"


def test_cli_track_refusals(video_checkpoint, stack, tmp_path, capsys):
    path, prompts = stack
    base = ["track", str(path), "--out", str(tmp_path / "o"), "--quiet"]
    # the built-in model has no memory weights
    assert main(base + ["--prompts", str(prompts)]) == 2
    assert "no video weights" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"objects": [{"id": 1, "frame": 7, "box": [1, 1, 5, 5]}]}))
    assert main(base + ["--prompts", str(bad), "--model", str(video_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "'frame'" in err
    assert main(["track", str(tmp_path / "none.mp4"), "--prompts", str(prompts), "--out", "x"]) == 2
    assert "not found" in capsys.readouterr().err
