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
from _common import command, machine, write_snippet  # noqa: E402


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


def child(impl: str, n: int, threads: int, tmp: str) -> None:
    """Run one implementation on n frames; print per-frame seconds and the peak memory."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    frames = _frames(n)
    meta, model = _models()
    from sam_pets.predict.video import VideoPredictor, frame_to_input

    click, label = np.array([[250.0, 190.0]]), np.array([1])
    times = []
    if impl == "ours":
        del meta
        pred = VideoPredictor(model, frames)
        pred.add_points(0, 1, click, label)
        t0 = time.perf_counter()
        for _ in pred.propagate():
            times.append(time.perf_counter() - t0)
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
        for _ in meta.propagate_in_video(state):
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"per_frame_s": times[1:], "peak_mb": peak_mb}))


def run(impl: str, n: int, threads: int) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--child", impl, "--frames", str(n)]
        cmd += ["--threads", str(threads), "--tmp", tmp]
        out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{impl} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8, help="frames of the timing run")
    ap.add_argument(
        "--memory-frames", type=int, default=200, help="frames of the memory run (0: skip)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--child", choices=["ours", "meta"])
    ap.add_argument("--tmp")
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.frames, args.threads, args.tmp)
        return
    import statistics

    rows = {}
    for impl in ("meta", "ours"):
        r = run(impl, args.frames, args.threads)
        rows[impl] = {
            "median_s": statistics.median(r["per_frame_s"]),
            "frames": len(r["per_frame_s"]),
        }
        print(impl, rows[impl], flush=True)
    mem = {}
    if args.memory_frames:
        for impl in ("meta", "ours"):
            mem[impl] = run(impl, args.memory_frames, args.threads)["peak_mb"]
            print(impl, "peak MB", mem[impl], flush=True)
    m, o = rows["meta"]["median_s"], rows["ours"]["median_s"]
    lines = [
        "### Propagation through a stack: sam-pets vs Meta's SAM2VideoPredictor (CPU)",
        "",
        f"- Machine: {machine()}",
        f"- Command: `{command()}`",
        "- Weights: sam2.1-tiny layout, random (the same in both); one object clicked on frame 0 "
        "of a 500 x 375 synthetic pan, propagated forward; fp32.",
        "- Time per frame: median over the propagated frames, the frame's embedding included.",
        "",
        "| | Meta s/frame | sam-pets s/frame | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| {rows['ours']['frames']} frames | {m:.2f} | {o:.2f} | {o / m:.2f} |",
    ]
    if mem:
        lines += [
            "",
            f"Peak resident memory over {args.memory_frames} frames: Meta {mem['meta']:.0f} MB, "
            f"sam-pets {mem['ours']:.0f} MB.",
        ]
    lines += ["", "Goal: sam-pets <= 0.7x Meta's time per frame on a CPU."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_snippet("video", text)


if __name__ == "__main__":
    main()
