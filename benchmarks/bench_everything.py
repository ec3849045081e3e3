"""Segment everything: sam-pets' generator against Meta's ``SAM2AutomaticMaskGenerator``.

Same weights (sam2.1-tiny, PyTorch's default random initialisation with the hypernetwork
output scaled by 20 so that masks pass the thresholds; no released weights can be downloaded
here), same parameters, same photo; a 32 x 32 grid on the bundled 500 x 375 photo and on
that photo resized to 4000 x 3000. Each run is a fresh process (its peak resident memory is
the memory figure); the time includes the image embedding.

    python benchmarks/bench_everything.py [--sizes 500x375,4000x3000] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, machine, write_snippet  # noqa: E402

# Thresholds the random weights' masks pass (their predicted IoU is ~0.5, stability ~0.4-0.6)
PARAMS = dict(points_per_side=32, pred_iou_thresh=0.5, stability_score_thresh=0.4)


def _image(size: str):
    import numpy as np
    from PIL import Image

    from sam_pets.samples import sample_path

    w, h = (int(v) for v in size.split("x"))
    with Image.open(sample_path()) as im:
        im = im.convert("RGB")
        if im.size != (w, h):
            im = im.resize((w, h), Image.BICUBIC)
        return np.asarray(im)


def _models():
    import torch
    from sam2.build_sam import build_sam2

    from sam_pets.model import build_model

    torch.manual_seed(0)
    meta = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu", mode="eval")
    with torch.no_grad():
        for mlp in meta.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[2].weight.mul_(20.0)
    ours = build_model("sam2.1_hiera_tiny")
    ours.load_state_dict({k: v for k, v in meta.state_dict().items() if k in ours.state_dict()})
    return meta, ours


def child(impl: str, size: str, batch: int) -> None:
    """One timed run; prints a JSON line."""
    import torch

    torch.set_num_threads(2)
    image = _image(size)
    meta, ours = _models()
    params = {**PARAMS, "points_per_batch": batch}
    t = time.perf_counter()
    if impl == "meta":
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        gen = SAM2AutomaticMaskGenerator(meta, **params)
        with torch.inference_mode():
            n = len(gen.generate(image))
    else:
        from sam_pets.predict import ImagePredictor
        from sam_pets.predict.everything import EverythingParams, segment_everything

        predictor = ImagePredictor(ours, device="cpu", precision="fp32")
        n = len(segment_everything(predictor, image, EverythingParams(**params)))
    seconds = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "masks": n, "peak_mb": peak_mb}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="500x375,4000x3000")
    ap.add_argument("--points-per-batch", type=int, default=64)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("IMPL", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.points_per_batch)
        return
    rows = []
    for size in args.sizes.split(","):
        res = {}
        for impl in ("meta", "ours"):
            cmd = [sys.executable, __file__, "--child", impl, size]
            cmd += ["--points-per-batch", str(args.points_per_batch)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                res[impl] = {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
            else:
                res[impl] = json.loads(out.stdout.strip().splitlines()[-1])
            print(size, impl, res[impl], flush=True)
        rows.append((size, res))
    lines = [
        "### Segment everything: 32 x 32 grid, sam-pets vs Meta's generator (CPU)",
        "",
        f"- Machine: {machine()}",
        f"- Command: `{command()}`",
        "- Weights: sam2.1-tiny, random (PyTorch default init, hypernetwork output x20), the "
        "same in both; parameters "
        + ", ".join(f"{k}={v}" for k, v in PARAMS.items())
        + f", points_per_batch={args.points_per_batch}, the rest Meta's defaults.",
        "- Time includes the embedding; memory is the process's peak resident size.",
        "",
        "| photo | Meta s | sam-pets s | ratio | Meta peak MB | sam-pets peak MB | masks |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, res in rows:
        m, o = res["meta"], res["ours"]
        if "error" in m or "error" in o:
            lines.append(f"| {size} | {m.get('error', '')} | {o.get('error', '')} | | | | |")
            continue
        lines.append(
            f"| {size} | {m['seconds']:.1f} | {o['seconds']:.1f} | "
            f"{o['seconds'] / m['seconds']:.2f} | {m['peak_mb']:.0f} | {o['peak_mb']:.0f} | "
            f"{m['masks']} / {o['masks']} |"
        )
    lines += ["", "Goal: sam-pets <= 0.5x Meta's time on a CPU."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_snippet("everything", text)


if __name__ == "__main__":
    main()
