"""The napari manifest: valid, discoverable, every command importable, shipped in the wheel."""

from __future__ import annotations

import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _manifest():
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    return pm.get_manifest("sam-pets")


def test_manifest_is_discovered_and_valid():
    mf = _manifest()
    assert mf.name == "sam-pets"
    out = subprocess.run(["npe2", "validate", "sam-pets"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_command_imports():
    for cmd in _manifest().contributions.commands or []:
        module, _, attr = cmd.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), cmd.python_name


def test_packaged_manifest_is_the_top_level_file():
    import sam_pets

    packaged = Path(sam_pets.__file__).with_name("napari.yaml")
    assert packaged.read_text() == (REPO / "napari.yaml").read_text()


def test_sample_data_returns_an_rgb_image():
    from sam_pets._napari._sample_data import pet_sample

    ((data, meta, kind),) = pet_sample()
    assert kind == "image" and data.shape == (375, 500, 3) and meta["rgb"]


def test_wheel_ships_manifest_and_entry_point(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("sam_pets-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert z.read("sam_pets/napari.yaml").decode() == (REPO / "napari.yaml").read_text()
        assert "sam_pets/samples/Bengal_63.jpg" in names
        assert "sam_pets/samples/Bengal_63_trimap.png" in names
        ep = next(n for n in names if n.endswith("entry_points.txt"))
        text = z.read(ep).decode()
    assert "[napari.manifest]" in text and "sam-pets = sam_pets:napari.yaml" in text
