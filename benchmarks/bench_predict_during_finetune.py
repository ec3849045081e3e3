"""Click-to-mask latency while a quick fine-tune runs in a background thread (as in napari).

Times ``ImagePredictor.predict`` for one click on the sample photo on a long-lived compute
thread (where the Annotator predicts), first alone, then while a
:class:`~sam_pets.train.finetune.FinetuneJob` (Quick preset) trains in another thread of the
same process: once as the Fine-tune dock runs it (``background_compute``: one core, lower
priority) and once in a plain thread (torch's default two threads), for comparison. Also
reports the training step time of each. Writes results/predict_during_finetune.md.

    python benchmarks/bench_predict_during_finetune.py --model pets --dataset DIR [--k 12]
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, machine, write_snippet  # noqa: E402


class ComputeThread:
    """One long-lived thread that runs the functions it is given (like the Annotator's)."""

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            fn, done = self._jobs.get()
            done.put(fn())

    def run(self, fn):
        done: queue.Queue = queue.Queue()
        self._jobs.put((fn, done))
        return done.get()


def main() -> None:
    """Measure and write the snippet."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pets")
    ap.add_argument("--dataset", type=Path, required=True, help="canonical dataset to train on")
    ap.add_argument("--k", type=int, default=12, help="annotated images to train on")
    ap.add_argument("--clicks", type=int, default=60)
    args = ap.parse_args()

    import torch
    from PIL import Image

    from sam_pets.eval.items import item_names, iter_items
    from sam_pets.model.hub import resolve_model
    from sam_pets.predict import ImagePredictor
    from sam_pets.predict.threads import background_compute, release_cpu_threads
    from sam_pets.samples import sample_path
    from sam_pets.train.finetune import AnnotatedImage, FinetuneJob

    base = resolve_model(args.model)
    pred = ImagePredictor(base, device="cpu")
    photo = np.asarray(Image.open(sample_path()).convert("RGB"))
    release_cpu_threads()  # as the Annotator does before handing work to its compute thread
    compute = ComputeThread()
    compute.run(lambda: pred.set_image(photo))
    rng = np.random.default_rng(0)

    def clicks(n):
        out = []
        for _ in range(n):
            xy = np.array([[rng.uniform(80, 420), rng.uniform(60, 315)]])
            t = time.perf_counter()
            pred.predict(xy, np.array([1]))
            out.append(1e3 * (time.perf_counter() - t))
            time.sleep(0.02)  # a person clicks, the GUI idles in between
        return out

    compute.run(lambda: clicks(5))
    alone = compute.run(lambda: clicks(args.clicks))
    items = []
    for item in iter_items(args.dataset, item_names(args.dataset, "all")[: args.k]):
        labels = np.zeros(item.image.shape[:2], np.uint16)
        for oid, m in zip(item.object_ids, item.masks, strict=True):
            labels[m] = oid
        items.append(AnnotatedImage(item.name, item.image, labels))

    def during(background: bool) -> tuple[list[float], float]:
        """Click latencies while training, and the median training step time (s)."""
        with tempfile.TemporaryDirectory() as tmp:
            job = FinetuneJob(
                Path(tmp) / "job", base, items, overrides={"steps": 100000}, max_clicks=1
            )
            training, steps = threading.Event(), []

            def train():
                with background_compute() if background else contextlib.nullcontext():
                    for p in job:
                        if p.message == "train":
                            training.set()
                            steps.append(time.perf_counter())

            th = threading.Thread(target=train)
            th.start()
            training.wait(600)
            lat = compute.run(lambda: clicks(args.clicks))
            job.stop()
            th.join()
        return lat, statistics.median(np.diff(steps[1:]))

    bg, bg_step = during(True)
    plain, plain_step = during(False)
    a = statistics.median(alone)
    rows = [
        ("predictor alone", alone, None),
        ("during fine-tuning, background thread (as the dock)", bg, bg_step),
        ("during fine-tuning, plain thread (2 torch threads)", plain, plain_step),
    ]
    text = "\n".join(
        [
            "### Click latency while fine-tuning in the background",
            "",
            f"- Machine: {machine()}; torch threads {torch.get_num_threads()}",
            f"- Command: `{command()}`",
            f"- Model `{args.model}` ({base.cfg.name}); clicks on a long-lived compute thread (as "
            f"the Annotator's); the Quick (CPU) preset trains on {len(items)} annotated images in "
            "another thread of the same process. The dock's background thread computes on one "
            "core at lower priority (`sam_pets.predict.threads.background_compute`).",
            "",
            "| | median click to mask (ms) | p90 (ms) | slowdown | training step (s) |",
            "|---|---|---|---|---|",
            *(
                f"| {name} | {statistics.median(v):.1f} | {np.percentile(v, 90):.1f} | "
                f"x{statistics.median(v) / a:.2f} | {'' if s is None else f'{s:.2f}'} |"
                for name, v, s in rows
            ),
            "",
            "Every prediction during training returned.",
        ]
    )
    print(text)
    write_snippet("predict_during_finetune", text)


if __name__ == "__main__":
    main()
