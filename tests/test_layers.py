"""The package's layers, checked on every import statement (lazy ones in functions too).

``model`` < ``predict`` < ``eval`` < ``train`` < ``cli`` / ``_napari``; ``data`` (files,
content hashes) serves all of them but ``model``; the small base modules (``_atomic``,
``paths``, ``progress``) import nothing of sam-pets above them. Only ``_napari`` may import
Qt, napari or magicgui.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "sam_pets"
BASE = {"__init__", "_atomic", "paths", "progress", "samples", "weights"}
ALLOWED = {
    **{b: BASE for b in BASE},
    "data": BASE,
    "model": BASE,
    "predict": BASE | {"data", "model"},
    "eval": BASE | {"data", "model", "predict"},
    "train": BASE | {"data", "model", "predict", "eval"},
    "cli": BASE | {"data", "model", "predict", "eval", "train"},
    "__main__": BASE | {"cli"},
    "_napari": BASE | {"data", "model", "predict", "eval", "train"},
}
GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "vispy")


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_every_module_imports_only_its_own_layer_and_those_below():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        layer = _layer(".".join(rel.parts))
        assert layer in ALLOWED, f"{rel}: layer {layer!r} has no rule in tests/test_layers.py"
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "sam_pets" and name != "sam_pets":
                used = _layer(name)
                if used != layer and used not in ALLOWED[layer]:
                    bad.append(f"{rel}: {layer} imports {name}")
            elif top in GUI and layer != "_napari":
                bad.append(f"{rel}: {layer} imports {name} (only _napari may)")
    assert not bad, "\n".join(bad)
