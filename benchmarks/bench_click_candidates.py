"""One click: how much the choice among the three candidate masks costs.

On the held-out pets (``oxford_pets_dev``, the seeded breed-stratified 25 % split the built-in
model never trained on), one click at each pet's most interior pixel. The whole-image pass
returns three candidates; the predictor keeps the one with the highest predicted IoU. For
each candidate this scores its IoU, and the zoomed second pass started from it (the crop
around that candidate, as ``ImagePredictor(zoom=True)`` does), against the ground truth
(trimap border ignored, each image's own size). "oracle" picks by the ground truth: the
headroom a better ranking would give. "zoomed in on each" is what the predictor returns with
``zoom_candidates=True``: the zoomed pass of every candidate, keeping the one with
the highest predicted IoU after zooming. Also: how often each candidate is picked, and the
correlation of predicted with actual IoU.

    python benchmarks/bench_click_candidates.py [--model pets] [--threads 2] [--no-write]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, command, machine, write_snippet  # noqa: E402


def measure(model, ds: Path) -> dict:
    from sam_pets.data.prompts import interior_point
    from sam_pets.eval.items import item_names, iter_items
    from sam_pets.eval.metrics import iou
    from sam_pets.predict import ImagePredictor

    pred = ImagePredictor(model, device="cpu", zoom=True)
    first, second, second_score, picked, pred_iou = [], [], [], [], []
    for item in iter_items(ds, item_names(ds, "val")):
        pred.set_image(item.image)
        for gt in item.masks:
            p = interior_point(gt)[None].astype(np.float32)
            lab = np.ones(1, np.int32)
            f = pred.predict(p, lab, multimask=True, zoom=False)
            first.append([float(iou(m, gt, item.ignore)) for m in f.masks])
            pred_iou.append([float(s) for s in f.scores])
            picked.append(f.best())
            row, row_score = [], []
            for k in range(len(f.masks)):
                r = pred.predict(
                    p, lab, mask_logits=f.low_res_logits[k], multimask=False, zoom=True
                )
                row.append(float(iou(r.masks[0], gt, item.ignore)))
                row_score.append(float(r.scores[0]))
            second.append(row)
            second_score.append(row_score)
    first, second = np.asarray(first), np.asarray(second)
    picked, pred_iou = np.asarray(picked), np.asarray(pred_iou)
    idx = np.arange(len(picked))
    corr = np.corrcoef(pred_iou.ravel(), first.ravel())[0, 1]
    return {
        "objects": len(picked),
        "first_picked": first[idx, picked].mean(),
        "first_oracle": first.max(1).mean(),
        "zoom_picked": second[idx, picked].mean(),
        "zoom_oracle": second.max(1).mean(),
        "zoom_each": second[idx, np.asarray(second_score).argmax(1)].mean(),
        "picks": np.bincount(picked, minlength=first.shape[1]).tolist(),
        "best": np.bincount(first.argmax(1), minlength=first.shape[1]).tolist(),
        "corr": float(corr),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pets")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--src", type=Path, default=SHARED / "data" / "oxford_pets_dev")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import torch

    from sam_pets.cli.eval_cmds import resolve_model
    from sam_pets.data.convert import ConvertConfig, convert_oxford_pets
    from sam_pets.progress import run_job

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_cand_"))
    try:
        ds = tmp / "ds"
        run_job(convert_oxford_pets(args.src, ds, ConvertConfig(seed=0, val_fraction=0.25)))
        model, info = resolve_model(args.model)
        r = measure(model, ds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = "\n".join(
        [
            "### One click: the candidate the model picks against the best of its three",
            "",
            f"- Machine: {machine()}",
            f"- Command: `{command()}`",
            f"- Model `{args.model}` ({info['config']}); {r['objects']} held-out pets, one click "
            "at the most interior pixel; mIoU at each image's own size, trimap border ignored.",
            "",
            "| | whole-image pass | then zoomed in on that candidate |",
            "| --- | ---: | ---: |",
            f"| candidate with the highest predicted IoU (`zoom_candidates=False`) "
            f"| {r['first_picked']:.3f} | {r['zoom_picked']:.3f} |",
            f"| each candidate zoomed in on, the best predicted IoU after zooming kept "
            f"(`zoom_candidates=True`, the default for models under 1024 px) | | "
            f"{r['zoom_each']:.3f} |",
            f"| best candidate by the ground truth (oracle) | {r['first_oracle']:.3f} "
            f"| {r['zoom_oracle']:.3f} |",
            "",
            f"Picked candidate 1/2/3: {r['picks']}; best by the ground truth: {r['best']}; "
            f"correlation of predicted and actual IoU over all candidates: {r['corr']:.2f}.",
        ]
    )
    print(text)
    if not args.no_write:
        write_snippet("click_candidates", text)


if __name__ == "__main__":
    main()
