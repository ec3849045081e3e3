"""The evaluation core imports no Qt/napari and leaves matplotlib's global backend alone."""

import subprocess
import sys

MODULES = [
    "sam_pets.eval",
    "sam_pets.eval.metrics",
    "sam_pets.eval.interactive",
    "sam_pets.eval.items",
    "sam_pets.eval.protocols",
    "sam_pets.eval.summary",
    "sam_pets.eval.evaluate",
    "sam_pets.eval.perturb",
    "sam_pets.eval.robustness",
    "sam_pets.eval.plots",
    "sam_pets.eval.html",
    "sam_pets.eval.report",
    "sam_pets.eval.robustness_report",
    "sam_pets.cli.eval_cmds",
]
FORBIDDEN = [
    "napari",
    "qtpy",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "PySide6",
    "magicgui",
    "superqt",
    "matplotlib.pyplot",
]


def test_eval_imports_no_gui():
    code = (
        "import importlib, sys\n"
        f"for m in {MODULES!r}:\n    importlib.import_module(m)\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
