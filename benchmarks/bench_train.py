"""Training throughput and peak memory: images/s per mode and config, on this machine.

Modes: ``full`` (everything trains, encoder forward + backward every step), ``frozen``
(image encoder frozen, features recomputed every step) and ``cached`` (frozen encoder,
features computed once, then only prompt encoder + decoder run). Each case runs in its own
process so that its peak RSS is its own. Steps use Meta's interactive recipe: 1 prompt +
7 correction rounds per object, losses at the input resolution, batch 2.

    python benchmarks/bench_train.py [--configs test,cpu_small] [--steps 6] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, command, machine, write_snippet  # noqa: E402

MODES = {
    "full": {},
    "frozen": {"freeze": ("image_encoder",)},
    "cached": {"freeze": ("image_encoder",), "cached_embeddings": True},
    "cached_low": {
        "freeze": ("image_encoder",),
        "cached_embeddings": True,
        "loss_resolution": "low",
    },
}


def run_case(config: str, mode: str, dataset: str, steps: int, threads: int) -> dict:
    """Time ``steps`` optimiser steps after 2 warm-up steps (cache filled during warm-up)."""
    import torch

    from sam_pets.train.config import TrainConfig
    from sam_pets.train.trainer import Trainer

    torch.set_num_threads(threads)
    batch = 2
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            dataset=dataset,
            out=f"{tmp}/run",
            model_config=config,
            steps=steps + 2,
            batch_size=batch,
            val_split="",
            balanced=False,
            augment=not mode.startswith("cached"),
            lr=1e-4,
            **MODES[mode],
        )
        tr = Trainer(cfg)
        base_rss = _rss_mb()
        t_cache = 0.0
        if tr.cache is not None:  # fill the cache for every batch used: computed once
            t = time.perf_counter()
            order_items = range(len(tr.train_ds))
            for i in order_items:
                tr.cache.get(i)
            t_cache = (time.perf_counter() - t) / len(tr.train_ds)
        batches = tr.micro_batches()
        for _ in range(2):
            tr.train_step(batches)
        t = time.perf_counter()
        for _ in range(steps):
            tr.train_step(batches)
        dt = time.perf_counter() - t
    return {
        "config": config,
        "mode": mode,
        "images_per_s": steps * batch / dt,
        "step_s": dt / steps,
        "peak_rss_mb": _rss_mb(),
        "model_rss_mb": base_rss,
        "cache_s_per_image": t_cache,
        "image_size": tr.model.cfg.image_size,
        "threads": threads,
    }


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dataset(tmp: str, n_train: int) -> str:
    from sam_pets.data.convert import ConvertConfig, convert_oxford_pets
    from sam_pets.progress import run_job

    out = f"{tmp}/pets"
    run_job(
        convert_oxford_pets(
            SHARED / "data/oxford_pets_dev", out, ConvertConfig(seed=0, tiny=n_train)
        ),
        show=False,
    )
    return out


def _table(rows: list[dict]) -> str:
    lines = [
        "| config (input) | mode | images/s | s/step (batch 2) | peak RSS | "
        "feature cache, s/image |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cache = f"{r['cache_s_per_image']:.3f}" if r["mode"].startswith("cached") else "-"
        lines.append(
            f"| {r['config']} ({r['image_size']} px) | {r['mode']} | "
            f"{r['images_per_s']:.2f} | {r['step_s']:.2f} | {r['peak_rss_mb']:.0f} MB | "
            f"{cache} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="test,cpu_small")
    ap.add_argument("--modes", default="full,frozen,cached")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--case", help=argparse.SUPPRESS)  # child: config:mode:dataset
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.case:
        config, mode, dataset = args.case.split(":", 2)
        print(json.dumps(run_case(config, mode, dataset, args.steps, args.threads)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dataset = _dataset(tmp, 16)
        for config in args.configs.split(","):
            for mode in args.modes.split(","):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--case",
                        f"{config}:{mode}:{dataset}",
                        "--steps",
                        str(args.steps),
                        "--threads",
                        str(args.threads),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    load = os.getloadavg()[0]
    import torch

    torch.set_num_threads(args.threads)  # what the cases used, for machine()
    gpu = "no GPU in this session" if not torch.cuda.is_available() else "GPU present, not used"
    text = f"""### Training throughput (CPU)

- Machine: {machine()}; {gpu}: the GPU goals of issue 5 (tiny and base_plus at 1024 in bf16,
  torch.compile, MFU) are not measured here
- Command: `{command()}`
- Data: 16 Oxford pet images (real photos, 1 object each) squash-resized to the model input;
  batch 2, 1 prompt + 7 correction rounds per object (Meta's recipe), focal/dice/IoU/class
  losses at the input resolution, AdamW; {args.steps} timed steps after 2 warm-up steps,
  {args.threads} torch threads; 1-min load average {load:.2f} at the end (shared host)
- Modes: full = all parts train; frozen = image encoder frozen (no encoder backward);
  cached = frozen encoder with features computed once (cost per image in the last column);
  cached_low = cached with losses at the S/4 logit resolution instead of the input size
- Peak RSS is the whole process (Python + torch + data + model), one process per row
- 1 thread: on this shared 2-core host 2 threads were 20-40x slower (cores contended by
  other jobs); the feature cache is filled before timing (it is filled lazily in real runs)

{_table(rows)}
"""
    print(text)
    if not args.no_write:
        write_snippet("train", text)


if __name__ == "__main__":
    main()
