"""Datasets are built beside OUT and swapped in whole; a source is never an output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam_pets.cli import main
from sam_pets.data.errors import BadInputError
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.imaging import CanonicalImage, encode_jpeg
from sam_pets.data.pipeline import ConvertConfig, Task, run_conversion
from sam_pets.data.staging import check_not_source, staged_dataset
from sam_pets.data.types import Annotation, ObjectInfo
from sam_pets.progress import run_job


def _task(name, fail: BaseException | None = None):
    def load():
        if fail is not None:
            raise fail
        masks = np.zeros((1, 4, 5), bool)
        masks[0, 1:3, 1:3] = True
        img = CanonicalImage(encode_jpeg(np.zeros((4, 5, 3), np.uint8)), (4, 5))
        return Annotation(name, masks, (ObjectInfo(1, "x"),)), img, {}, []

    return Task(f"src/{name}", name, "", load)


def _convert(out, names, overwrite=False, fail_at=None):
    tasks = [_task(n, KeyboardInterrupt() if n == fail_at else None) for n in names]
    cfg = ConvertConfig(workers=1, overwrite=overwrite)
    return run_job(run_conversion(tasks, out, cfg), show=False)


def _names(ds):
    return sorted(canon.items_by_name(canon.load_manifest(ds)))


def test_interrupted_overwrite_leaves_the_old_dataset_intact(tmp_path):
    ds = tmp_path / "ds"
    _convert(ds, ["a", "b", "c"])
    (ds / "README.txt").write_text("mine")
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while the third new item loads
        _convert(ds, ["x", "y", "z", "w"], overwrite=True, fail_at="z")
    assert _names(ds) == ["a", "b", "c"]
    assert all(canon.item_paths(ds, n).image.is_file() for n in "abc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temp folder left
    job = run_conversion([_task("x"), _task("y")], ds, ConvertConfig(workers=1, overwrite=True))
    next(job)
    job.close()  # a closed job (napari's quit) also keeps the old dataset
    assert _names(ds) == ["a", "b", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    _convert(ds, ["x", "y"], overwrite=True)
    assert _names(ds) == ["x", "y"] and not (ds / "JPEGImages" / "a").exists()
    assert (ds / "README.txt").read_text() == "mine"  # not the dataset's: kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_failed_build_removes_the_temp_folder(tmp_path):
    with pytest.raises(RuntimeError), staged_dataset(tmp_path / "new") as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_output_overlapping_a_source_is_refused(tmp_path):
    src = tmp_path / "lm"
    (src / "sub").mkdir(parents=True)
    for out in (src, src / "sub", tmp_path):
        with pytest.raises(BadInputError, match="source"):
            check_not_source(out, [tmp_path / "x.json", src])
    check_not_source(tmp_path / "other", [src, tmp_path / "x.json"])


def test_convert_onto_its_own_source_is_refused(tmp_path, capsys):
    # `convert sam2 lm_self lm_self --overwrite` once deleted the source before reading it
    lm = tmp_path / "lm_self"
    _convert(lm, ["a", "b"])
    argv = ["convert", "sam2", str(lm), str(lm), "--overwrite", "-q"]
    assert main(argv) == 2
    assert "source" in capsys.readouterr().err
    assert _names(lm) == ["a", "b"]
    assert all(canon.item_paths(lm, n).image.is_file() for n in "ab")
    image = {"id": 1, "file_name": "a.jpg", "height": 8, "width": 8}
    (tmp_path / "x.json").write_text(json.dumps({"images": [image], "annotations": []}))
    argv = ["convert", "coco", str(tmp_path / "x.json"), str(lm), str(lm), "--overwrite", "-q"]
    assert main(argv) == 2
    assert "source" in capsys.readouterr().err
    assert _names(lm) == ["a", "b"]
