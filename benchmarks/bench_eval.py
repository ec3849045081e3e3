"""Evaluation and robustness of a model on the Oxford pets dev set; writes results/eval.md.

Converts ../shared/data/oxford_pets_dev (240 images) into a temporary canonical dataset, runs
``sam_pets.eval`` (all prompt protocols, k correction clicks) and the robustness study, keeps
the HTML reports under ``--reports`` and writes the numbers and wall times as a BENCHMARKS.md
snippet.

    python benchmarks/bench_eval.py [--model pets | --checkpoint CKPT] [--compare CKPT2]
        [--limit N] [--robustness-limit 40] [--levels 10] [--max-clicks 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, SHARED, command, machine, write_snippet  # noqa: E402


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        default="pets",
        help="model name or checkpoint file (default: the built-in pets model)",
    )
    ap.add_argument("--config", help="random weights of this config instead (smoke runs only)")
    ap.add_argument("--compare", help="a second model side by side (name or file)")
    ap.add_argument("--src", type=Path, default=SHARED / "data" / "oxford_pets_dev")
    ap.add_argument("--limit", type=int, help="evaluate only the first N images")
    ap.add_argument(
        "--split",
        default="all",
        help="evaluate this split only (val: the part the built-in model never trained on)",
    )
    ap.add_argument(
        "--val-fraction",
        type=float,
        default=0.25,
        help="val share of the seeded, breed-stratified split (0.25: the built-in model's)",
    )
    ap.add_argument("--max-clicks", type=int, default=20)
    ap.add_argument(
        "--zoom",
        choices=("both", "on", "off"),
        default="both",
        help="score each model with zoom-in prediction, without, or both side by side",
    )
    ap.add_argument(
        "--robustness-limit",
        type=int,
        default=40,
        help="images for the robustness study (0 skips it; each image costs "
        "1 + 8 x (levels - 1) embeddings)",
    )
    ap.add_argument("--levels", type=int, default=10)
    ap.add_argument("--prompt", choices=("box", "center"), default="box", help="robustness prompt")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument(
        "--reports",
        type=Path,
        default=Path(tempfile.gettempdir()) / "sam_pets_eval_reports",
        help="where the HTML reports go (replaced)",
    )
    ap.add_argument("--no-snippet", action="store_true", help="do not write results/eval.md")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if not args.src.is_dir():
        sys.exit(f"source not found: {args.src}")
    import torch

    from sam_pets.cli.eval_cmds import resolve_model
    from sam_pets.data.convert import ConvertConfig, convert_oxford_pets
    from sam_pets.eval.evaluate import EvalConfig, NamedModel, iter_evaluate
    from sam_pets.eval.html import clear_report_dir
    from sam_pets.eval.report import write_eval_report
    from sam_pets.eval.robustness import RobustnessConfig, iter_robustness
    from sam_pets.eval.robustness_report import write_robustness_report
    from sam_pets.predict import ImagePredictor
    from sam_pets.progress import run_job

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    try:
        ds = tmp / "ds"
        run_job(
            convert_oxford_pets(
                args.src, ds, ConvertConfig(seed=0, val_fraction=args.val_fraction)
            ),
            show=False,
        )
        specs = [(args.model, args.config)] + ([(args.compare, None)] if args.compare else [])
        zooms = {"both": (False, True), "on": (True,), "off": (False,)}[args.zoom]
        models = []
        for n, (spec, config) in enumerate(specs):
            model, info = resolve_model(spec, config)
            label = info["source"] if len(specs) == 1 else ("A", "B")[n]
            for zoom in zooms:
                predictor = ImagePredictor(model, device=args.device, cache_size=2, zoom=zoom)
                name = f"{label} +zoom" if zoom and len(zooms) > 1 else label
                models.append(NamedModel(name, predictor, {**info, "zoom": zoom}))
        cfg = EvalConfig(max_clicks=args.max_clicks, limit=args.limit, split=args.split)
        t = time.perf_counter()
        res = run_job(iter_evaluate(models, ds, cfg))
        eval_s = time.perf_counter() - t
        write_eval_report(res, clear_report_dir(args.reports / "eval"))
        rob, rob_s = None, 0.0
        if args.robustness_limit:
            rcfg = RobustnessConfig(
                prompt=args.prompt, levels=args.levels, limit=args.robustness_limit
            )
            t = time.perf_counter()
            # the robustness study uses the last model (with zoom when it is scored)
            rob = run_job(iter_robustness(models[-1].predictor, ds, rcfg, models[-1].info))
            rob_s = time.perf_counter() - t
            write_robustness_report(rob, clear_report_dir(args.reports / "robustness"))
        text = snippet(args, res, eval_s, rob, rob_s, filled_box_miou(ds, args.split, args.limit))
        print(text)
        print(
            f"reports: {args.reports / 'eval' / 'index.html'}, "
            f"{args.reports / 'robustness' / 'index.html'}"
        )
        if not args.no_snippet:
            write_snippet("eval", text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def filled_box_miou(ds: Path, split: str, limit: int | None) -> float:
    """mIoU of the model-free answer to a box prompt: the tight box itself, filled."""
    import numpy as np

    from sam_pets.eval.items import item_names, iter_items
    from sam_pets.eval.metrics import iou

    scores = []
    for item in iter_items(ds, item_names(ds, split, limit)):
        for m in item.masks:
            rows, cols = np.nonzero(m)
            box = np.zeros_like(m)
            box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
            scores.append(float(iou(box, m, item.ignore)))
    return float(np.mean(scores))


def _f(v, d: int = 3) -> str:
    return "\u2013" if v is None else f"{v:.{d}f}"


def snippet(args, res, eval_s: float, rob, rob_s: float, filled_box: float) -> str:
    s = res.summary()
    lines = [
        "### Evaluation on the Oxford pets dev set",
        "",
        f"- Machine: {machine()}",
        f"- Command: `PYTHONPATH=src {command()}`",
        f"- Data: `{os.path.relpath(args.src, REPO)}` converted to the canonical format; "
        f"split `{args.split}` (val fraction {args.val_fraction}, seed 0): "
        f"{s['n_images']} images, {s['n_objects']} objects; trimap border ignored",
        "- Models: "
        + "; ".join(
            f"{m} = `{i['source']}` ({i['config']}{', zoom-in' if i.get('zoom') else ''})"
            for m, i in s["models"].items()
        ),
        f"- Wall time: evaluation {eval_s:.0f} s ({eval_s / max(s['n_images'], 1):.2f} s per "
        "image, all protocols" + (" and models" if len(s["models"]) > 1 else "") + "; "
        "embedding "
        + ", ".join(f"{v:.0f} s" for v in s["timing_s"]["embed"].values())
        + f"), robustness {rob_s:.0f} s",
        "- 3-cat mIoU: mean IoU of background / cat / dog over the set (Oxford-IIIT Pet "
        "baseline 0.33)",
        "",
        "| model | protocol | mIoU | mDice | pixel acc. | 3-cat mIoU |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m, r in s["results"].items():
        for p, v in r.items():
            if p != "clicks":
                three = (v.get("three_class") or {}).get("miou")
                lines.append(
                    f"| {m} | {p} | {_f(v['miou'])} | {_f(v['mdice'])} | "
                    f"{_f(v['accuracy'])} | {_f(three)} |"
                )
    lines += [
        "",
        f"Reference without a model: filling each object's tight box gives mIoU "
        f"{_f(filled_box)} on the same objects (what a box prompt must beat).",
    ]
    ks = sorted({k for k in (1, 3, 5, args.max_clicks) if k <= args.max_clicks})
    lines += [
        "",
        "| model | " + " | ".join(f"mIoU@{k}" for k in ks) + " | NoC@85 | NoC@90 |",
        "| --- |" + " --- |" * (len(ks) + 2),
    ]
    for m, r in s["results"].items():
        c = r["clicks"]["miou_at_k"]
        at = [_f(c[k - 1]) for k in ks]
        lines.append(
            f"| {m} | {' | '.join(at)} | {_f(r['clicks']['noc85'], 2)} | "
            f"{_f(r['clicks']['noc90'], 2)} |"
        )
    if rob is not None:
        rs = rob.summary()
        per = rs["perturbations"]
        n = max(len(v["levels"]) for v in per.values())
        lines += [
            "",
            f"Robustness: mean Dice, {rob.config.prompt} prompt, first "
            f"{rs['n_images']} images ({rs['n_objects']} objects), model "
            f"{list(s['models'])[-1]}; columns are the levels in order.",
            "",
            "| perturbation | " + " | ".join(f"L{i}" for i in range(n)) + " |",
            "| --- |" + " --- |" * n,
        ]
        for name, v in per.items():
            cells = [f"{lv:g}: {_f(d)}" for lv, d in zip(v["levels"], v["mean_dice"], strict=True)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
