"""Click-to-preview latency of the napari Annotator, driven headless (needs a display: Xvfb).

Adds positive points through the real Points layer and times until the preview Labels layer
shows the new mask (prediction in a worker thread + layer update), embedding cached.

    xvfb-run -a python benchmarks/bench_annotator.py [--config tiny] [--clicks 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, machine, write_snippet  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--clicks", type=int, default=30)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import napari
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor
    from sam_pets.samples import sample_path

    image = np.asarray(Image.open(sample_path()).convert("RGB"))
    viewer = napari.Viewer(show=False)
    viewer.add_image(image, name="pet", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    app = QApplication.instance()

    def spin(cond, timeout=120.0):
        t0 = time.perf_counter()
        while not cond():
            app.processEvents()
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError("timed out")
            time.sleep(0.0005)

    widget.set_predictor(ImagePredictor(build_model(args.config, seed=0), device="cpu"))
    spin(lambda: widget._ready_key is not None)
    rng = np.random.default_rng(0)
    lat = []
    for _ in range(args.clicks + 3):
        widget.clear()
        spin(lambda: not widget._busy)
        before = widget.session.candidates
        yx = np.array([[rng.uniform(60, 315), rng.uniform(80, 420)]])
        t = time.perf_counter()
        widget.points.add(yx)
        spin(
            lambda old=before: (
                widget.session.candidates is not None
                and widget.session.candidates is not old
                and not widget._busy
            )
        )
        lat.append(time.perf_counter() - t)
    lat = lat[3:]
    med = statistics.median(lat) * 1e3
    viewer.close()
    text = "\n".join(
        [
            f"## Annotator click-to-preview latency, {args.config}, CPU",
            "",
            f"- Machine: {machine()}",
            f"- Command: `xvfb-run -a {command()}`",
            "- A positive point added to the real Points layer -> prediction in a worker thread ->"
            " preview Labels layer updated; embedding cached; 500x375 sample photo; random weights"
            f" (same cost as trained ones); {args.clicks} clicks after 3 warm-up clicks.",
            "",
            "| median (ms) | p90 (ms) | goal |",
            "| ---: | ---: | ---: |",
            f"| {med:.1f} | {np.percentile(lat, 90) * 1e3:.1f} | <= 50 |",
        ]
    )
    print(text)
    if not args.no_write:
        write_snippet("annotator", text)


if __name__ == "__main__":
    main()
