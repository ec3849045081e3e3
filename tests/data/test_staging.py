"""Datasets are built beside OUT and swapped in whole; a source is never an output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from sam_pets.cli import main
from sam_pets.data import staging
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


# --- what a hard kill (SIGKILL, power loss) leaves beside OUT is put right by the next job ---


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _mark(folder, pid):
    (folder / staging.MARK).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))


@pytest.fixture
def settled(monkeypatch):
    """Leftovers count as settled at once (the real wait is QUIET_S seconds)."""
    monkeypatch.setattr(staging, "QUIET_S", -1.0)


def test_no_mark_is_left_in_the_dataset(tmp_path):
    ds = tmp_path / "ds"
    _convert(ds, ["a"])
    _convert(ds, ["b"], overwrite=True)  # the replace path too
    assert not (ds / staging.MARK).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_killed_between_the_swaps_renames_restores_the_dataset(tmp_path, capsys):
    ds = tmp_path / "ds"
    _convert(ds, ["a", "b"])
    (ds / "README.txt").write_text("mine")
    _convert(tmp_path / "built", ["x"])
    new = tmp_path / ".ds.new-k1ll"  # complete, still marked: the kill came before the swap
    (tmp_path / "built").rename(new)
    _mark(new, _dead_pid())
    ds.rename(tmp_path / ".ds.old-0a1b")  # the swap's first rename, then the kill
    # (restored at once, however recent: OUT missing means no live job is past that point)
    argv = ["convert", "sam2", str(tmp_path / "src"), str(ds), "-q"]
    _convert(tmp_path / "src", ["y"])
    assert main(argv) == 2  # the restored dataset is there again: --overwrite is needed
    err = capsys.readouterr().err
    assert f"note: restored {ds} from .ds.old-0a1b" in err and "already holds" in err
    assert f"note: removed {new}" in err
    assert _names(ds) == ["a", "b"] and (ds / "README.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "src"]


def test_killed_after_the_swap_moves_the_users_files_back(tmp_path, settled):
    ds = tmp_path / "ds"
    _convert(ds, ["new1"])
    old = tmp_path / ".ds.old-77aa"
    _convert(old, ["old1"])
    (old / "notes.txt").write_text("mine")
    (old / "plots").mkdir()
    _mark(ds, _dead_pid())  # the mark is removed just after the swap: it may stay too
    with pytest.warns(staging.LeftoverNote, match="moved your notes.txt, plots back"):
        _convert(ds, ["new2"], overwrite=True)
    assert (ds / "notes.txt").read_text() == "mine" and (ds / "plots").is_dir()
    assert _names(ds) == ["new2"] and not (ds / staging.MARK).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_a_users_file_on_both_sides_is_left_for_them(tmp_path, settled):
    ds = tmp_path / "ds"
    _convert(ds, ["a"])
    (ds / "notes.txt").write_text("new")
    old = tmp_path / ".ds.old-77aa"
    _convert(old, ["b"])
    (old / "notes.txt").write_text("old")
    with pytest.warns(staging.LeftoverNote, match="compare them, then delete"):
        _convert(ds, ["c"], overwrite=True)
    assert (ds / "notes.txt").read_text() == "new" and (old / "notes.txt").read_text() == "old"


def test_live_recent_or_unmarked_leftovers_are_left_alone(tmp_path, monkeypatch):
    ds = tmp_path / "ds"
    _convert(ds, ["a"])
    live, unmarked, dead = (tmp_path / f".ds.new-{n}" for n in ("live", "none", "dead"))
    for folder in (live, unmarked, dead):
        folder.mkdir()
    _mark(live, os.getpid())
    _mark(dead, _dead_pid())
    old = tmp_path / ".ds.old-1234"
    old.mkdir()
    _convert(ds, ["b"], overwrite=True)  # the old one just made: a live job may own it
    assert all(p.exists() for p in (live, unmarked, old)) and not dead.exists()
    monkeypatch.setattr(staging, "QUIET_S", -1.0)
    with pytest.warns(staging.LeftoverNote):
        _convert(ds, ["c"], overwrite=True)
    assert live.exists() and unmarked.exists() and not old.exists()
