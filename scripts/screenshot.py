"""Screenshot of the real napari window with a pet segmented by the built-in model.

Run under a virtual display (the README's picture comes from this):

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot.py [--out docs/annotator.png]

It opens the plugin's sample photo, docks the Annotator and the Fine-tune panel, loads the
built-in ``pets`` model, draws a box around the whole cat (a zoomed box frames what it
encloses), commits the object and saves the whole
window.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    """Open napari, segment the sample pet, save the window."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs") / "annotator.png")
    ap.add_argument("--model", default="pets")
    args = ap.parse_args()

    import napari
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    from sam_pets.model.hub import resolve_model
    from sam_pets.predict import ImagePredictor
    from sam_pets.samples import sample_path

    image = np.asarray(Image.open(sample_path()).convert("RGB"))
    viewer = napari.Viewer(title="sam-pets")
    viewer.window.resize(1500, 900)
    viewer.add_image(image, name="Bengal_63", rgb=True)
    viewer.window.add_plugin_dock_widget("sam-pets", "Fine-tune")
    _, annotator = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator", tabify=True)
    app = QApplication.instance()

    def spin(cond, timeout=120.0):
        t0 = time.time()
        while not cond():
            app.processEvents()
            time.sleep(0.01)
            if time.time() - t0 > timeout:
                raise TimeoutError("the annotator did not answer in time")

    if args.model == "pets":  # the real path: the dock's default choice and its Load button
        annotator.device_combo.setCurrentText("cpu")
        annotator.load_model()
    else:
        annotator.set_predictor(ImagePredictor(resolve_model(args.model), device="cpu"))
    spin(lambda: annotator.predictor is not None and annotator.state.ready)
    # a box around the whole cat of the sample photo (napari rectangles: (row, col) corners)
    annotator.boxes.add_rectangles(np.array([[5.0, 0.0], [374.0, 470.0]]))
    spin(lambda: annotator.session.candidates is not None and not annotator.state.predicting)
    annotator.commit()
    spin(lambda: not annotator.state.predicting)
    viewer.layers.selection.active = annotator.points
    viewer.reset_view()
    _close_toasts(viewer)
    for _ in range(50):
        app.processEvents()
        time.sleep(0.02)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    Image.fromarray(shot).save(args.out)
    print("wrote", args.out, shot.shape)
    viewer.close()


def _close_toasts(viewer) -> None:
    """Close notification pop-ups (e.g. napari's PyQt5 deprecation notice) before the shot."""
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification
    except ImportError:
        return
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


if __name__ == "__main__":
    main()
