"""Per-user folders: the sam-pets variable, else the XDG one, else the home default."""

from __future__ import annotations

from pathlib import Path

import pytest

from sam_pets import paths

CASES = [
    (paths.cache_dir, "SAM_PETS_CACHE_DIR", "XDG_CACHE_HOME", (".cache",)),
    (paths.data_dir, "SAM_PETS_DATA_DIR", "XDG_DATA_HOME", (".local", "share")),
    (paths.config_dir, "SAM_PETS_CONFIG_DIR", "XDG_CONFIG_HOME", (".config",)),
]


@pytest.mark.parametrize(("fn", "own", "xdg", "home"), CASES)
def test_user_folder_order(fn, own, xdg, home, tmp_path, monkeypatch):
    monkeypatch.delenv(own, raising=False)
    monkeypatch.delenv(xdg, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fn() == Path(tmp_path / "home", *home, "sam-pets")
    monkeypatch.setenv(xdg, str(tmp_path / "xdg"))
    assert fn() == tmp_path / "xdg" / "sam-pets"
    monkeypatch.setenv(own, str(tmp_path / "mine"))
    assert fn() == tmp_path / "mine"
