"""Click-to-preview latency of the napari Annotator, driven headless (needs a display: Xvfb).

Each click is a real mouse press + release on the viewer's canvas over the photo (the path a
person's click takes: napari's mouse callbacks, the Points layer, the Annotator), and is timed
from the press until the preview Labels layer shows the new mask.  The embedding is cached.
Rows time an object's first click, and (``--second-holds``) its second click, whose
prediction takes the first one's low-res logits as mask prompt.

    xvfb-run -a python benchmarks/bench_annotator.py [--models pets random:tiny] [--clicks 30]
        [--sizes 500x375 4000x3000] [--holds 80 0] [--second-holds 80]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, machine, write_snippet  # noqa: E402

GOAL_MS = 50.0


def _wait(app, cond, signal=None, timeout: float = 120.0) -> None:
    """Run the Qt event loop until ``cond()``, checked on ``signal`` and every 20 ms.

    The loop sleeps in between: a busy wait on the GUI thread would compete with the worker.
    """
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    t0 = time.perf_counter()

    def check(*_):
        if cond() or time.perf_counter() - t0 > timeout:
            loop.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(20)
    if signal is not None:
        signal.connect(check)
    QTimer.singleShot(0, check)
    loop.exec_()
    timer.stop()
    if signal is not None:
        signal.disconnect(check)
    if not cond():
        raise TimeoutError("timed out waiting for the annotator")


def _sleep(app, until: float) -> None:
    """Process events (without spinning) until ``time.perf_counter() >= until``."""
    from qtpy.QtCore import QEventLoop, QTimer

    left = until - time.perf_counter()
    if left > 0:
        loop = QEventLoop()
        QTimer.singleShot(int(left * 1e3) + 1, loop.quit)
        loop.exec_()


def _canvas_spots(viewer, shape, n: int, rng) -> list[tuple[float, float]]:
    """``n`` canvas positions (x, y pixels) that land inside the photo, away from its border."""
    canvas = viewer.window._qt_viewer.canvas
    w, h = canvas._scene_canvas.size
    spots = []
    while len(spots) < n:
        pos = (float(rng.uniform(0, w)), float(rng.uniform(0, h)))
        row, col = canvas._map_canvas2world(pos, canvas.view)[-2:]
        if 0.15 * shape[0] < row < 0.85 * shape[0] and 0.15 * shape[1] < col < 0.85 * shape[1]:
            spots.append(pos)
    return spots


def measure(
    model: str,
    clicks: int,
    hold_ms: float,
    warmup: int = 3,
    size: tuple[int, int] | None = None,
    nth: int = 1,
    zoom: bool = False,
) -> list[tuple[float, float]]:
    """Latencies from the mouse press to the preview, with the release ``hold_ms`` later.

    Each is (first preview, prediction done): a zoomed first click whose predictor zooms in
    on each candidate shows its quick crop first and the best of the three crops when done;
    otherwise the two are the same preview.

    ``size`` (W, H) upscales the sample photo, e.g. to a phone camera's 4000 x 3000.  With
    ``nth`` = 2 the timed click is an object's second (its prediction takes the first one's
    low-res logits as mask prompt); the first is made, untimed, just before. With ``zoom``
    the predictor zooms in on the object (:mod:`sam_pets.predict.zoom`) and its crop
    embeddings are dropped before every click, so each click pays for its crop's embedding.
    """
    import napari
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    from sam_pets.model import resolve_model
    from sam_pets.predict import ImagePredictor
    from sam_pets.samples import sample_path

    photo = Image.open(sample_path()).convert("RGB")
    image = np.asarray(photo if size is None else photo.resize(size, Image.BILINEAR))
    viewer = napari.Viewer(show=False)
    viewer.add_image(image, name="pet", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    app = QApplication.instance()
    predictor = ImagePredictor(resolve_model(model), device="cpu", zoom=zoom)
    widget.set_predictor(predictor)
    _wait(app, lambda: widget.state.ready)
    viewer.reset_view()
    _wait(app, lambda: True)
    scene = viewer.window._qt_viewer.canvas._scene_canvas
    lat = []
    spots = _canvas_spots(viewer, image.shape, (clicks + warmup) * nth, np.random.default_rng(0))
    for k, pos in enumerate(spots):
        if k % nth == 0:
            widget.clear()
            _wait(app, lambda: not widget.state.predicting)
        before = widget.session.candidates
        stamps = []  # (time, candidates) of each new preview of this click, as it is shown

        def updated(old=before):
            return widget.session.candidates is not None and widget.session.candidates is not old

        def stamp(stamps=stamps):
            c = widget.session.candidates
            if updated() and (not stamps or stamps[-1][1] is not c):
                stamps.append((time.perf_counter(), c))

        widget.previewed.connect(stamp)
        n_points = k % nth + 1
        predictor.clear_crops()
        t = time.perf_counter()
        scene.events.mouse_press(pos=pos, modifiers=(), button=1)
        if hold_ms > 0:
            _wait(app, updated, widget.previewed)
            _sleep(app, t + hold_ms / 1e3)
        scene.events.mouse_release(pos=pos, modifiers=(), button=1)
        _wait(
            app,
            lambda n=n_points: (
                updated() and not widget.state.predicting and len(widget.points.data) == n
            ),
            widget.previewed,
        )
        if len(widget.session.points_xy) != n_points or not np.allclose(
            widget.session.points_xy[-1], widget.points.data[-1, ::-1], atol=1e-3
        ):
            raise RuntimeError("the preview does not belong to the added point")
        widget.previewed.disconnect(stamp)
        if n_points == nth:
            lat.append((stamps[0][0] - t, stamps[-1][0] - t))
    viewer.close()
    return lat[warmup:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["pets", "random:tiny"])
    ap.add_argument("--clicks", type=int, default=30)
    ap.add_argument(
        "--holds",
        type=float,
        nargs="+",
        default=[80.0, 0.0],
        help="ms between press and release (80: a quick click; 0: worst case)",
    )
    ap.add_argument(
        "--sizes",
        nargs="+",
        default=["500x375", "4000x3000"],
        help="photo sizes WxH (500x375: the sample photo as it is; larger: upscaled copies)",
    )
    ap.add_argument(
        "--second-holds",
        type=float,
        nargs="*",
        default=[80.0],
        help="holds for the rows that time an object's second click (mask prompt)",
    )
    ap.add_argument(
        "--zooms",
        nargs="+",
        choices=("off", "on"),
        default=["off", "on"],
        help="time the clicks without and/or with zoom-in prediction",
    )
    ap.add_argument("--snippet", default="annotator", help="results/NAME.md to write")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    # the dock would load the built-in model on its own when it opens: not during timings
    os.environ["SAM_PETS_AUTOLOAD"] = "0"

    rows = []
    for model in args.models:
        for size in args.sizes:
            wh = tuple(int(v) for v in size.lower().split("x"))
            runs = [(1, h) for h in args.holds] + [(2, h) for h in args.second_holds]
            for zoom in args.zooms:
                for nth, hold in runs:
                    on = zoom == "on"
                    lat = measure(model, args.clicks, hold, size=wh, nth=nth, zoom=on)
                    lat, done = (np.asarray(v) * 1e3 for v in zip(*lat, strict=True))
                    rows.append(
                        f"| `{model}` | {size} | {zoom} | {('first', 'second')[nth - 1]} "
                        f"| {hold:.0f} | {statistics.median(lat):.1f} "
                        f"| {np.percentile(lat, 90):.1f} | {statistics.median(done):.1f} "
                        f"| <= {GOAL_MS:.0f} |"
                    )
                    print(rows[-1], flush=True)
    text = "\n".join(
        [
            "## Annotator click-to-preview latency, CPU"
            + ("" if args.snippet == "annotator" else f" ({args.snippet.replace('_', ' ')})"),
            "",
            f"- Machine: {machine()}",
            f"- Command: `xvfb-run -a {command()}`",
            "- A left click = mouse press + release events on the napari canvas over the photo"
            " (napari's mouse callbacks, the Points layer, the Annotator). The Annotator starts"
            " the prediction in a worker thread at the press; napari adds the point at the"
            " release. Timed from the press until the preview Labels layer shows the mask of"
            " the added point. Hold = time between press and release: 80 ms is a quick click,"
            " 0 ms (release sent straight after the press) is the worst case, where napari's"
            " point add (~30 ms of Python on the GUI thread) competes with the prediction."
            " Click = the object's first click (three candidates) or its second (one mask,"
            " with the first click's low-res logits as mask prompt; the first is made, untimed,"
            " just before).",
            f"- Embedding cached; the 500x375 sample photo, and copies upscaled to the other"
            f" sizes (4000x3000: a phone camera's 12 MP); {args.clicks} clicks after 3 warm-up"
            " clicks. `pets` is the built-in model (256 px input, the default);"
            " `random:tiny` is SAM 2.1 tiny at 1024 px with random weights (same model cost as"
            " Meta's trained ones, but noise-like masks: a third of its low-res rows change"
            " sign, so on 12 MP every pixel is interpolated, the worst case of the mask"
            " upsampling; trained models give smooth masks). No window is shown, so no frame"
            " is drawn; vispy still"
            " renders a picking pass on every press (Mesa llvmpipe, software GL under Xvfb:"
            " ~12 ms of CPU on the GUI thread, after the Annotator has started the"
            " prediction).",
            "- Zoom on: the click is answered on the whole image, then again in a crop around"
            " that mask (its embedding computed afresh for every click: the crop cache is"
            " cleared before each); a second click predicts in the crop of the first. Where"
            " the mask spans (nearly) the whole photo, the crop is the photo and no second"
            " embedding is made. A zoomed first click with the built-in model (whose"
            " predictor zooms in on each of the whole image's three candidates) shows the"
            " crop of the best-ranked candidate first, then the best of the three crops:"
            " 'done' is the median time from the press until that last preview is shown;"
            " elsewhere it is the same preview.",
            "",
            "| model | photo | zoom | click | hold (ms) | median (ms) | p90 (ms) "
            "| done, median (ms) | goal |",
            "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    print(text)
    if not args.no_write:
        write_snippet(args.snippet, text)


if __name__ == "__main__":
    main()
