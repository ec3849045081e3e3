"""Does annotating + quick fine-tuning pay off? Clicks to 90 % IoU before and after.

Simulates a person who annotates K pet photos the model never trained on (each annotation is
the ground truth the person corrects towards), fine-tunes with the dock's "Quick (CPU)"
preset (decoder on cached embeddings) and then annotates other unseen photos. Reports
NoC@90 (first click at the most interior pixel, then correction clicks at the centre of the
largest error, capped at --max-clicks), one-click and box mIoU on those other photos, before
and after, and writes results/finetune.md.

    python benchmarks/bench_finetune.py --model pets --dataset DIR [--split val] [--k 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, machine, write_snippet  # noqa: E402


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pets", help="model name or checkpoint file")
    ap.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help="canonical dataset whose --split images the model never trained on",
    )
    ap.add_argument("--split", default="val")
    ap.add_argument("--k", type=int, default=20, help="images annotated before fine-tuning")
    ap.add_argument("--test", type=int, default=0, help="images scored after (0: the rest)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--preset", default="quick", choices=["quick", "full"])
    ap.add_argument("--lr", type=float, default=None, help="override the preset's lr")
    ap.add_argument("--max-clicks", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    import torch

    from sam_pets.eval.heldout import iter_compare
    from sam_pets.eval.items import item_names, iter_items
    from sam_pets.model.hub import resolve_model
    from sam_pets.progress import run_job
    from sam_pets.train.finetune import FinetuneJob, write_snapshot
    from sam_pets.train.simulate import annotated_image

    torch.set_num_threads(args.threads)
    base = resolve_model(args.model)
    names = item_names(args.dataset, args.split)
    order = np.random.default_rng(args.seed).permutation(len(names))
    annotate = [names[i] for i in order[: args.k]]
    rest = [names[i] for i in order[args.k :]]
    rest = rest[: args.test] if args.test else rest

    def as_items(selected):
        # every object committed as its ground truth; the trimap border, what a careful
        # annotator would leave unlabelled, stays ignored
        return [annotated_image(item) for item in iter_items(args.dataset, selected)]

    with tempfile.TemporaryDirectory() as tmp:
        test_ds = Path(tmp) / "test"
        write_snapshot(as_items(rest), test_ds, val_fraction=0)
        t0 = time.perf_counter()
        job = FinetuneJob(
            Path(tmp) / "job",
            base,
            as_items(annotate),
            preset=args.preset,
            overrides={"steps": args.steps, "val_every": 0, "lr": args.lr, "device": "cpu"},
            val_fraction=0,
            max_clicks=args.max_clicks,
            seed=args.seed,
        )
        res = run_job(iter(job), show=True)
        t_train = time.perf_counter() - t0
        scores = run_job(
            iter_compare(
                {"before": base, "after": res.model}, test_ds, "all", max_clicks=args.max_clicks
            ),
            show=True,
        )
    b, a = scores["before"], scores["after"]
    fewer = 100 * (b.clicks_to_90 - a.clicks_to_90) / b.clicks_to_90
    fewer85 = 100 * (b.clicks_to_85 - a.clicks_to_85) / b.clicks_to_85
    ann = res.before  # scores on the annotated images themselves (no held-out part)
    text = "\n".join(
        [
            "### Annotate, quick fine-tune, annotate again: clicks to 90 % IoU",
            "",
            f"Model `{args.model}` ({base.cfg.name}, {base.cfg.image_size} px); annotated "
            f"K={len(annotate)} images of `{args.dataset.name}` split `{args.split}` (never "
            f"trained on), fine-tuned {res.step} steps with the {args.preset} preset"
            f"{'' if args.lr is None else f' (lr {args.lr:g})'} in "
            f"{t_train:.0f} s (snapshot, scoring and training); scored on the other "
            f"{b.images} images ({b.objects} objects).",
            "",
            f"| | NoC@90 (cap {args.max_clicks}) | NoC@85 | mIoU 1 click | mIoU 5 clicks"
            " | mIoU box |",
            "|---|---|---|---|---|---|",
            *(
                f"| {name} | {s.clicks_to_90:.2f} | {s.clicks_to_85:.2f} | {s.miou_click:.3f}"
                f" | {s.miou_5:.3f} | {s.miou_box:.3f} |"
                for name, s in (("before", b), ("after", a))
            ),
            "",
            f"Clicks to 90 % IoU: {fewer:+.1f} % fewer after fine-tuning, to 85 %:"
            f" {fewer85:+.1f} % fewer (goal: >= 30 % fewer clicks to 90 % after 20 images)."
            f" On the {ann.images} annotated images the start model needed"
            f" {ann.clicks_to_90:.2f} clicks to 90 %. The trimap border is left unlabelled"
            " (ignored) in the annotations and in the scores.",
            "",
            f"Machine: {machine()}. Command: `{command()}`",
        ]
    )
    print(text)
    write_snippet("finetune", text)


if __name__ == "__main__":
    main()
