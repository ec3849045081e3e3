"""The plugin's sample data opens in a real napari viewer (needs Xvfb)."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui


def test_open_sample_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("sam-pets", "pet")
    (layer,) = viewer.layers
    assert layer.rgb and layer.data.shape == (375, 500, 3)


def test_torch_imports_after_the_gl_canvas_exists():
    """Importing the plugin, then torch/torchvision, after napari made its canvas must not crash."""
    code = (
        "import napari\n"
        "v = napari.Viewer(show=False)\n"
        "import sam_pets._napari\n"
        "import torchvision.ops, sam_pets.predict\n"
        "v.close()\n"
        "print('alive')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "alive" in out.stdout, out.stderr[-2000:]
