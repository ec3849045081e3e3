"""``sam-pets segment``: the folder job from the command line (exit codes, resume, errors)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from sam_pets.cli import main


@pytest.fixture
def folder(tmp_path):
    from sam_pets.samples import sample_path

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(sample_path(), src / "cat.jpg")
    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(src / "grey.png")
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    return src


def test_cli_segment(tmp_path, folder, capsys):
    out = tmp_path / "cli"
    args = ["segment", str(folder), "--out", str(out), "--points-per-side", "8"]
    args += ["--pred-iou-thresh", "0.5", "--stability-score-thresh", "0.5", "--quiet"]
    args += ["--format", "labels", "--label-format", "tif"]
    assert main(args) == 1  # unreadable images
    captured = capsys.readouterr()
    line = json.loads(captured.out.strip().splitlines()[-1])
    assert line["segmented"] == 2 and line["skipped"] == 1 and line["masks"] > 0
    assert "broken.jpg" in captured.err
    assert (out / "labels" / "cat.tif").is_file() and not (out / "coco.json").exists()
    assert main(args) == 1  # resumes: nothing left but the broken file
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["resumed"] == 2 and line["segmented"] == 0
    assert main([*args[:-4], "--points-per-side", "4", "--quiet"]) == 2
    assert "other" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "nothing"), "--out", str(out)]) == 2
