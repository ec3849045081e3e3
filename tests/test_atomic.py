"""Atomic writes never replace a folder with a file."""

from __future__ import annotations

import pytest

from sam_pets._atomic import atomic_write_bytes


def test_a_folder_is_never_replaced(tmp_path):
    folder = tmp_path / "data"
    (folder / "keep").mkdir(parents=True)
    with pytest.raises(IsADirectoryError) as e:
        atomic_write_bytes(folder, b"x")
    assert e.value.filename == str(folder) and "refusing to replace" in e.value.strerror
    assert (folder / "keep").is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["data"]
