import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

CODE = """
import sys
import sam_pets.data.augment, sam_pets.data.convert, sam_pets.data.dataset
import sam_pets.data.export, sam_pets.data.prompts, sam_pets.data.split
import sam_pets.data.formats.coco, sam_pets.data.formats.labelme
import sam_pets.data.formats.label_images, sam_pets.data.formats.oxford_pets
import sam_pets.cli.data_cmds
bad = [m for m in sys.modules if m.split(".")[0] in
       ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt")
       or m.startswith("sam_pets.model") or m.startswith("sam_pets._napari")]
print(",".join(bad))
"""


def test_data_package_imports_no_ui_and_no_model():
    env_path = str(SRC)
    out = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert out.stdout.strip() == ""


def test_light_modules_do_not_import_torch():
    code = (
        "import sys, sam_pets.data.convert, sam_pets.data.export, sam_pets.data.prompts; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert out.stdout.strip() == "False"
