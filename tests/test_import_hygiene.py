"""Core packages never import Qt or napari (checked in a fresh interpreter)."""

import subprocess
import sys

CORE = [
    "sam_pets",
    "sam_pets.model",
    "sam_pets.predict",
    "sam_pets.cli",
    "sam_pets.progress",
    "sam_pets.samples",
    "sam_pets.data",
]
FORBIDDEN = ["napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt"]


def test_core_imports_no_gui():
    code = (
        "import importlib, sys\n"
        f"for m in {CORE!r}:\n"
        "    try:\n        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as e:\n"
        "        if e.name != m: raise\n"
        "import sam_pets.cli as c; c.build_parser()\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_package_import_is_light():
    code = "import sys, sam_pets; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
