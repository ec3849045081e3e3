"""Click-to-mask latency while a quick fine-tune runs in a background thread (as in napari).

Times ``ImagePredictor.predict`` for one click on the sample photo, first alone, then while a
:class:`~sam_pets.train.finetune.FinetuneJob` (Quick preset) trains in another thread of the
same process, and writes results/predict_during_finetune.md.

    python benchmarks/bench_predict_during_finetune.py --model pets --dataset DIR [--k 12]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, machine, write_snippet  # noqa: E402


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
    from sam_pets.samples import sample_path
    from sam_pets.train.finetune import AnnotatedImage, FinetuneJob

    base = resolve_model(args.model)
    pred = ImagePredictor(base, device="cpu")
    pred.set_image(np.asarray(Image.open(sample_path()).convert("RGB")))
    rng = np.random.default_rng(0)

    def clicks(n, stop=None):
        out = []
        for _ in range(n):
            if stop is not None and stop.is_set():
                break
            xy = np.array([[rng.uniform(80, 420), rng.uniform(60, 315)]])
            t = time.perf_counter()
            pred.predict(xy, np.array([1]))
            out.append(1e3 * (time.perf_counter() - t))
            time.sleep(0.02)  # a person clicks, the GUI idles in between
        return out

    clicks(5)
    alone = clicks(args.clicks)
    items = []
    for item in iter_items(args.dataset, item_names(args.dataset, "all")[: args.k]):
        labels = np.zeros(item.image.shape[:2], np.uint16)
        for oid, m in zip(item.object_ids, item.masks, strict=True):
            labels[m] = oid
        items.append(AnnotatedImage(item.name, item.image, labels))
    with tempfile.TemporaryDirectory() as tmp:
        job = FinetuneJob(Path(tmp) / "job", base, items, overrides={"steps": 100000}, max_clicks=1)
        training = threading.Event()

        def train():
            for p in job:
                if p.message == "train":
                    training.set()

        th = threading.Thread(target=train)
        th.start()
        training.wait(600)
        during = clicks(args.clicks)
        job.stop()
        th.join()
    a, d = statistics.median(alone), statistics.median(during)
    text = "\n".join(
        [
            "### Click latency while fine-tuning in the background",
            "",
            f"- Machine: {machine()}; torch threads {torch.get_num_threads()} (shared by both)",
            f"- Command: `{command()}`",
            f"- Model `{args.model}` ({base.cfg.name}); the Quick (CPU) preset trains on "
            f"{len(items)} annotated images in a thread of the same process, as the Fine-tune "
            "dock does",
            "",
            "| | median click to mask (ms) | p90 (ms) |",
            "|---|---|---|",
            f"| predictor alone | {a:.1f} | {np.percentile(alone, 90):.1f} |",
            f"| during fine-tuning | {d:.1f} | {np.percentile(during, 90):.1f} |",
            "",
            f"Slowdown: x{d / a:.2f}; every prediction during training returned.",
        ]
    )
    print(text)
    write_snippet("predict_during_finetune", text)


if __name__ == "__main__":
    main()
