"""The annotation journal: atomic per-plane records keyed by content, restore, prune."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from sam_pets.data.fsutil import image_key
from sam_pets.data.journal import Journal, JournalError, JournalWriter, default_root


def _labels(seed: int = 0) -> np.ndarray:
    lab = np.zeros((37, 50), np.uint16)
    lab[3:20, 5:30] = 1
    lab[22:35, 10:45] = 2
    lab[5:9, 40:48] = 700
    rng = np.random.default_rng(seed)
    lab[rng.integers(0, 37, 20), rng.integers(0, 50, 20)] = 3
    return lab


def test_key_follows_content_shape_and_dtype_not_identity():
    img = np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8)
    assert image_key(img) == image_key(img.copy()) == image_key(np.asfortranarray(img))
    other = img.copy()
    other[0, 0, 0] ^= 1
    assert image_key(other) != image_key(img)
    assert image_key(img.astype(np.uint16)) != image_key(img)
    assert image_key(img.reshape(40, 30, 3)) != image_key(img)
    assert len(image_key(img)) == 32


def test_record_and_load_are_exact(tmp_path):
    j = Journal(tmp_path / "j")
    lab = _labels()
    objects = {1: {"prompts": {"points": [[4.0, 5.0]], "labels": [1]}, "model": "pets"}}
    j.record("ab" * 16, lab, objects, {"name": "cat", "source": "/x/cat.jpg"})
    rec = j.load("ab" * 16)
    assert rec.labels.dtype == lab.dtype
    np.testing.assert_array_equal(rec.labels, lab)
    assert rec.objects == objects and rec.info["name"] == "cat"
    assert rec.info["shape"] == [37, 50] and rec.events == 1 and rec.n_objects == 4
    time.sleep(0.01)
    j.record("ab" * 16, lab, objects)
    again = Journal(tmp_path / "j").load("ab" * 16)  # a new process reads the same
    assert again.events == 2 and again.created == rec.created and again.updated > rec.updated
    assert j.keys() == ["ab" * 16]
    assert not list((tmp_path / "j").glob(".*"))  # no temp file left behind


def test_an_empty_plane_removes_the_record_and_prune_deletes(tmp_path):
    j = Journal(tmp_path)
    j.record("cd" * 16, _labels())
    j.record("cd" * 16, np.zeros((4, 4), np.int32))  # everything undone
    assert j.load("cd" * 16) is None
    j.record("cd" * 16, _labels())
    assert j.prune("cd" * 16) and not j.prune("cd" * 16)
    assert j.keys() == []


def test_prune_older_keeps_recent_records(tmp_path):
    j = Journal(tmp_path)
    j.record("aa" * 16, _labels())
    j.record("bb" * 16, _labels(1))
    old = time.time() - 10 * 86400
    os.utime(j.path("aa" * 16), (old, old))
    assert j.prune_older(7) == ["aa" * 16]
    assert j.keys() == ["bb" * 16]


def test_bad_keys_and_damaged_files_are_named(tmp_path):
    j = Journal(tmp_path)
    with pytest.raises(ValueError, match="not a journal key"):
        j.path("../evil")
    with pytest.raises(ValueError, match="2D integer"):
        j.record("ab" * 16, np.zeros((3, 3), np.float32))
    j.path("ef" * 16).write_bytes(b"garbage")
    with pytest.raises(JournalError, match="ef" * 16):
        j.load("ef" * 16)


def test_default_root_is_in_the_user_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_PETS_DATA_DIR", str(tmp_path))
    assert default_root() == tmp_path / "journal"
    assert Journal().root == tmp_path / "journal"


def test_writer_keeps_the_latest_state_and_flushes(tmp_path):
    errors = []
    w = JournalWriter(Journal(tmp_path), on_error=lambda k, e: errors.append((k, e)))
    lab = _labels()
    for i in range(1, 6):
        lab[0, 0] = i
        w.submit("ab" * 16, lab, {i: {"model": "m"}}, {"name": "x"})
    lab[0, 0] = 99  # the writer took a copy
    assert w.flush(10)
    rec = Journal(tmp_path).load("ab" * 16)
    assert rec.labels[0, 0] == 5 and rec.objects == {5: {"model": "m"}}
    w.prune("ab" * 16)
    assert Journal(tmp_path).keys() == [] and not errors


def test_writer_reports_a_failed_write_and_goes_on(tmp_path):
    errors = []
    (tmp_path / "file").write_text("not a folder")
    w = JournalWriter(Journal(tmp_path / "file"), on_error=lambda k, e: errors.append(k))
    w.submit("ab" * 16, _labels(), {}, {})
    assert w.flush(10) and errors == ["ab" * 16]
    (message,) = w.take_errors()
    assert message.startswith("cannot journal " + "ab" * 16) and w.take_errors() == []
    w.journal = Journal(tmp_path / "ok")
    w.submit("ab" * 16, _labels(), {}, {})
    assert w.flush(10) and Journal(tmp_path / "ok").load("ab" * 16) is not None


def test_writer_prunes_an_exported_record_but_keeps_a_newer_state(tmp_path):
    w = JournalWriter(Journal(tmp_path))
    exported = _labels()
    w.submit("ab" * 16, exported, {}, {})
    w.prune_if_unchanged("ab" * 16, exported)  # replaces the queued equal state
    assert w.flush(10) and Journal(tmp_path).keys() == []
    w.submit("ab" * 16, exported, {}, {})
    assert w.flush(10) and not w.busy_with("ab" * 16)
    newer = exported.copy()
    newer[0, 0] = 9  # committed while the export ran
    w.submit("ab" * 16, newer, {}, {})
    assert w.busy_with("ab" * 16)
    w.prune_if_unchanged("ab" * 16, exported)  # the queued newer state stays
    assert w.flush(10)
    assert Journal(tmp_path).load("ab" * 16).labels[0, 0] == 9
    w.prune_if_unchanged("ab" * 16, exported)  # on disk: newer, kept
    assert w.flush(10) and Journal(tmp_path).keys() == ["ab" * 16]
    w.prune_if_unchanged("ab" * 16, newer)
    assert w.flush(10) and Journal(tmp_path).keys() == []
