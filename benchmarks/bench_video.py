"""Propagation through a stack: sam-pets' VideoPredictor against Meta's SAM2VideoPredictor.

Same weights (sam2.1-tiny layout, random: no released weights can be downloaded here; the
hypernetwork output scaled by 20 and the object-score bias set to 1 so that the object stays
present and its masks have edges), same model inputs (Meta's state gets sam-pets' frame
preprocessing), one object clicked on frame 0 and propagated forward. Each implementation runs
in a fresh process: the per-frame time is the median over the propagated frames (embedding
included, as each frame is new), the memory its peak resident size over a run of
``--memory-frames`` frames (the frames themselves, 500 x 375 uint8, are in memory for both).

    python benchmarks/bench_video.py [--frames 8] [--memory-frames 200] [--no-write]
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
from _common import command, cpu_bf16, machine, write_snippet  # noqa: E402

IMPLS_OURS = {"ours": "fp32", "ours_bf16": "bf16"}  # child name -> VideoPredictor precision


def _frames(n: int):
    """n frames: the sample photo panned smoothly (a synthetic video), 375 x 500 uint8."""
    import numpy as np
    from PIL import Image

    from sam_pets.samples import sample_path

    with Image.open(sample_path()) as im:
        big = np.asarray(im.convert("RGB").resize((560, 420), Image.BICUBIC))
    out = []
    for t in range(n):
        s = 0.5 - 0.5 * np.cos(2 * np.pi * t / max(n, 2))  # back and forth
        y, x = int(45 * s), int(60 * s)
        out.append(big[y : y + 375, x : x + 500])
    return np.stack(out)


def _models():
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    from sam_pets.model import build_model

    torch.manual_seed(0)
    meta = build_sam2_video_predictor(
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        None,
        device="cpu",
        hydra_overrides_extra=["++model.fill_hole_area=0"],
    )
    with torch.no_grad():
        for name, p in meta.named_parameters():
            if "output_hypernetworks_mlps" in name and name.endswith("2.weight"):
                p.mul_(20.0)
            if name == "sam_mask_decoder.pred_obj_score_head.layers.2.bias":
                p.fill_(1.0)
    ours = build_model("sam2.1_hiera_tiny")
    state = meta.state_dict()
    ours.load_state_dict({k: v for k, v in state.items() if k in ours.state_dict()}, strict=True)
    ours.extra_state = {k: v for k, v in state.items() if k not in ours.state_dict()}
    return meta.eval(), ours.eval()


def child(impl: str, n: int, threads: int, tmp: str, masks_out: str | None = None) -> None:
    """Run one implementation on n frames; print per-frame seconds and the peak memory.

    ``masks_out``: also save the propagated frames' masks there (.npy, (frames, H, W) bool).
    """
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    frames = _frames(n)
    meta, model = _models()
    from sam_pets.predict.video import VideoPredictor, frame_to_input

    click, label = np.array([[250.0, 190.0]]), np.array([1])
    times, masks = [], []
    if impl in IMPLS_OURS:
        del meta
        pred = VideoPredictor(model, frames, precision=IMPLS_OURS[impl])
        pred.add_points(0, 1, click, label)
        t0 = time.perf_counter()
        for _, _, logits in pred.propagate():
            times.append(time.perf_counter() - t0)
            masks.append(logits[0] > 0)
            t0 = time.perf_counter()
    else:
        from PIL import Image

        for t, f in enumerate(frames[:1]):
            Image.fromarray(f).save(Path(tmp) / f"{t:05d}.jpg")
        state = meta.init_state(tmp)
        images = torch.empty(n, 3, 1024, 1024)  # as Meta's loader: one float tensor
        for t, f in enumerate(frames):
            images[t] = model.normalize(frame_to_input(f, 1024))[0]
        state["images"] = images
        state["num_frames"] = n
        state["cached_features"] = {}
        del model
        meta.add_new_points_or_box(state, 0, 1, points=click, labels=label)
        t0 = time.perf_counter()
        for _, _, logits in meta.propagate_in_video(state):
            times.append(time.perf_counter() - t0)
            masks.append(logits[0, 0].numpy() > 0)
            t0 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if masks_out:
        np.save(masks_out, np.stack(masks))
    print(json.dumps({"per_frame_s": times[1:], "peak_mb": peak_mb}))


def run(impl: str, n: int, threads: int, masks_out: str | None = None) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--child", impl, "--frames", str(n)]
        cmd += ["--threads", str(threads), "--tmp", tmp]
        if masks_out:
            cmd += ["--masks", masks_out]
        out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{impl} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _agreement(a, b) -> float:
    """Share of pixels where two runs' masks agree, over all frames."""
    return float((a == b).mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8, help="frames of the timing run")
    ap.add_argument(
        "--memory-frames", type=int, default=200, help="frames of the memory run (0: skip)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--child", choices=["meta", *IMPLS_OURS])
    ap.add_argument("--tmp")
    ap.add_argument("--masks")
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.frames, args.threads, args.tmp, args.masks)
        return
    import statistics
    import tempfile

    import numpy as np

    rows, masks = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for impl in ("meta", *IMPLS_OURS):
            r = run(impl, args.frames, args.threads, f"{tmp}/{impl}.npy")
            masks[impl] = np.load(f"{tmp}/{impl}.npy")
            rows[impl] = {
                "median_s": statistics.median(r["per_frame_s"]),
                "frames": len(r["per_frame_s"]),
            }
            print(impl, rows[impl], flush=True)
    mem = {}
    if args.memory_frames:
        for impl in ("meta", *IMPLS_OURS):
            mem[impl] = run(impl, args.memory_frames, args.threads)["peak_mb"]
            print(impl, "peak MB", mem[impl], flush=True)
    m, o, b = (rows[k]["median_s"] for k in ("meta", "ours", "ours_bf16"))
    agree_fp32 = _agreement(masks["ours"], masks["meta"])
    agree_bf16 = _agreement(masks["ours_bf16"], masks["meta"])
    lines = [
        "### Propagation through a stack: sam-pets vs Meta's SAM2VideoPredictor (CPU)",
        "",
        f"- Machine: {machine()}",
        f"- Command: `{command()}`",
        "- Weights: sam2.1-tiny layout, random (the same in both); one object clicked on frame 0 "
        "of a 500 x 375 synthetic pan, propagated forward. Meta's predictor runs in fp32; "
        'sam-pets in fp32 and with `precision="bf16"` (autocast; `track --precision bf16`).',
        f"- bf16 on this CPU: {cpu_bf16()}.",
        "- Time per frame: median over the propagated frames, the frame's embedding included. "
        "Mask agreement: share of pixels where the run's masks equal Meta's, all frames.",
        "",
        "| sam-pets precision | frames | Meta s/frame | sam-pets s/frame | ratio "
        "| masks equal to Meta's |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| fp32 | {rows['ours']['frames']} | {m:.2f} | {o:.2f} | {o / m:.2f} "
        f"| {100 * agree_fp32:.3f} % |",
        f"| bf16 | {rows['ours_bf16']['frames']} | {m:.2f} | {b:.2f} | {b / m:.2f} "
        f"| {100 * agree_bf16:.3f} % |",
    ]
    if mem:
        lines += [
            "",
            f"Peak resident memory over {args.memory_frames} frames: Meta {mem['meta']:.0f} MB, "
            f"sam-pets {mem['ours']:.0f} MB in fp32, {mem['ours_bf16']:.0f} MB in bf16.",
        ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_snippet("video", text)


if __name__ == "__main__":
    main()
