"""Training throughput of the built-in model's recipe, this code against an earlier revision.

A step of ``scripts/build_pets_model.sh``'s recipe: the built-in model (cpu_small, 256 px),
batch 8 of real pet photos, a box or a click then 3 correction clicks per object, every round
supervised, flips / scale / colour jitter. The same seeds give the same batches to every
case; each case runs in its own process, the earlier revision from a git worktree of it.
Achieved GFLOP/s = FLOPs of a step (forward and backward, counted by torch's
``FlopCounterMode`` on the current code) / its median time.

    python benchmarks/bench_train_recipe.py [--before REV] [--steps 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, SHARED, command, cpu_bf16, machine, write_snippet  # noqa: E402

RECIPE = dict(
    resolution=256,
    batch_size=8,
    correction_rounds=3,
    lr=3e-4,
    encoder_lr_scale=1.0,
    layer_decay=1.0,
    weight_decay=0.05,
    grad_clip=1.0,
    balanced=True,
    val_split="",
    seed=0,
)
CROPS = {"object_crop_prob": 0.67, "copy_paste_prob": 0.3}
# (samples, settings) of the rows measured on this code
CASES = [
    ("plain", {}),
    ("plain, 1 loader process", {"num_workers": 1}),
    ("plain, losses at S/4", {"loss_resolution": "low"}),
    ("crops + copy-paste", CROPS),
    ("crops + copy-paste, 1 loader process", {**CROPS, "num_workers": 1}),
    ("plain, bf16", {"precision": "bf16"}),
    ("plain, bf16, batch 16", {"precision": "bf16", "batch_size": 16}),
    ("plain, batch 16", {"batch_size": 16}),
    ("crops + copy-paste, bf16, batch 16", {**CROPS, "precision": "bf16", "batch_size": 16}),
]


def run_case(dataset: str, extra: dict, steps: int, threads: int, flops: bool) -> dict:
    """Median step time of ``steps`` steps after 2 warm-up steps (in this process's code)."""
    import dataclasses

    import torch

    import sam_pets
    from sam_pets.train.config import TrainConfig
    from sam_pets.train.trainer import Trainer

    torch.set_num_threads(threads)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    with tempfile.TemporaryDirectory() as tmp:
        settings = {k: v for k, v in {**RECIPE, **extra}.items() if k in known}
        cfg = TrainConfig(
            dataset=dataset,
            out=f"{tmp}/run",
            checkpoint=str(Path(sam_pets.__file__).parent / "weights" / "pets.pt"),
            steps=steps + 3,
            **settings,
        )
        t0 = time.perf_counter()
        tr = Trainer(cfg)
        setup = time.perf_counter() - t0
        batches = tr.micro_batches()
        for _ in range(2):
            tr.train_step(batches)
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            tr.train_step(batches)
            times.append(time.perf_counter() - t)
        gflop = None
        if flops:
            from torch.utils.flop_counter import FlopCounterMode

            counter = FlopCounterMode(display=False)
            with counter:
                tr.train_step(batches)
            gflop = counter.get_total_flops() / 1e9
    step = statistics.median(times)
    return {
        "step_s": step,
        "images_per_s": cfg.batch_size / step,
        "setup_s": setup,
        "gflop_per_step": gflop,
        "applied": sorted(k for k in extra if k in known),
    }


def _dataset(tmp: str) -> str:
    from sam_pets.data.convert import ConvertConfig, convert_oxford_pets
    from sam_pets.progress import run_job

    out = f"{tmp}/pets"
    src = SHARED / "data" / "oxford_pets_dev"
    run_job(convert_oxford_pets(src, out, ConvertConfig(seed=0, val_fraction=0.25)), show=False)
    return out


def _child(src: Path, dataset: str, extra: dict, args, flops: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    case = json.dumps({"dataset": dataset, "extra": extra, "flops": flops})
    cmd = [sys.executable, __file__, "--case", case]
    cmd += ["--steps", str(args.steps), "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="68d7ab8", help="git revision to compare with")
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.case:
        c = json.loads(args.case)
        print(json.dumps(run_case(c["dataset"], c["extra"], args.steps, args.threads, c["flops"])))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dataset = _dataset(tmp)
        before = Path(tmp) / "before"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(before), args.before],
            check=True,
            capture_output=True,
        )
        try:
            old = _child(before / "src", dataset, {}, args, False)
            rows.append((f"`{args.before}` (before)", "plain", old))
            for k, (samples, extra) in enumerate(CASES):
                r = _child(REPO / "src", dataset, extra, args, flops=k == 0)
                rows.append(("this code", samples, r))
                print(rows[-1], flush=True)
            gflop = rows[1][2]["gflop_per_step"]
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)],
                check=False,
                capture_output=True,
            )
    import torch

    torch.set_num_threads(args.threads)
    base = rows[0][2]["images_per_s"]
    lines = [
        "## Training throughput of the built-in model's recipe (CPU)",
        "",
        f"- Machine: {machine()}",
        f"- Command: `{command()}`",
        "- Step: the built-in model (cpu_small, 256 px), batch 8 of Oxford pet photos "
        "(`oxford_pets_dev`, train split), a box or a click then 3 correction clicks per "
        "object, every round supervised, flips / scale / colour jitter, AdamW; "
        f"median of {args.steps} steps after 2 warm-up steps, {args.threads} torch threads; "
        "each row in its own process, the same seeds (so the same batches) in every row. "
        f"`{args.before}` is the code before this change, run from a git worktree.",
        f"- FLOPs of a step (forward + backward, torch `FlopCounterMode`): {gflop:.1f} GFLOP "
        f"at batch {RECIPE['batch_size']}.",
        f"- bf16 on this CPU: {cpu_bf16()}. The bf16 rows run the image encoder under "
        "bf16 autocast (its attention kernel in fp32) and the decoder rounds in fp32.",
        "",
        "| code | samples | images/s | s/step | achieved GFLOP/s | vs before |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    per_image = gflop / RECIPE["batch_size"]
    for code, samples, r in rows:
        lines.append(
            f"| {code} | {samples} | {r['images_per_s']:.2f} | {r['step_s']:.3f} | "
            f"{per_image * r['images_per_s']:.1f} | {r['images_per_s'] / base:.2f}x |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_snippet("train_recipe", text)


if __name__ == "__main__":
    main()
