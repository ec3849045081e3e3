"""``sam-pets train``: fine-tune or train SAM 2 on a canonical dataset.

Flags build a :class:`~sam_pets.train.config.TrainConfig` (on top of ``--config-file``
when given; explicit flags win). ``torchrun --nproc-per-node N -m sam_pets train ...`` runs
data-parallel; only rank 0 draws progress and writes files. Dataset items that cannot be read
are left out before training starts (each named on stderr, listed under ``skipped`` in the
JSON line) and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

from sam_pets.cli._args import (
    device,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)


def register(sub) -> None:
    """Add the ``train`` subcommand to the ``sam-pets`` parser."""
    p = sub.add_parser(
        "train",
        help="fine-tune (or train from scratch) on a canonical dataset",
        description="Train SAM 2 with interactive prompts (box/click + correction clicks). "
        "Writes RUN/{config.yaml,metrics.jsonl,loss.png,val.png,last.pt,best.pt,state.pt} "
        "(state.pt: weights, optimiser, RNG and data position for --resume; ema.pt: the "
        "averaged weights, with --ema).",
    )
    p.add_argument(
        "dataset",
        nargs="?",
        metavar="DATASET",
        help="canonical dataset folder (sam-pets convert ...)",
    )
    p.add_argument(
        "--out", metavar="RUN", help="run directory (must not hold a run unless --overwrite)"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--checkpoint",
        metavar="NAME|FILE",
        help="start from these weights: pets (the built-in model; the default), "
        "a downloaded Meta checkpoint name, or a Meta/HF/sam-pets file",
    )
    g.add_argument(
        "--config",
        dest="model_config",
        metavar="NAME",
        help="start from a random init of this model config (test, cpu_small, tiny...)",
    )
    p.add_argument(
        "--config-file",
        metavar="YAML",
        help="TrainConfig keys in YAML (unknown keys "
        "are an error); flags given on the command line override them",
    )
    n = p.add_mutually_exclusive_group()
    n.add_argument("--steps", type=positive_int, help="optimiser steps")
    n.add_argument("--epochs", type=positive_int, help="passes over the training split")
    p.add_argument(
        "--batch-size", type=positive_int, help="images per step and process (default 2)"
    )
    p.add_argument("--grad-accum", type=positive_int, help="micro-batches per optimiser step")
    p.add_argument(
        "--resolution", type=positive_int, metavar="PX", help="model input side in pixels"
    )
    p.add_argument("--lr", type=positive_float, help="base learning rate (default 1e-5)")
    p.add_argument(
        "--freeze",
        type=_parts,
        metavar="PARTS",
        help="comma list of image_encoder,prompt_encoder,mask_decoder to keep fixed",
    )
    p.add_argument(
        "--lora",
        type=non_negative_int,
        dest="lora_rank",
        metavar="RANK",
        help="train LoRA adapters of this rank only (merged into the saved weights; 0: off)",
    )
    p.add_argument(
        "--cached-embeddings",
        action="store_const",
        const=True,
        help="compute image features once and train the decoder on them "
        "(needs --freeze image_encoder)",
    )
    p.add_argument("--cache-dir", help="keep cached features on disk here (default: memory)")
    p.add_argument(
        "--val-every",
        type=non_negative_int,
        metavar="N",
        help="validate every N steps (0: only at the end)",
    )
    p.add_argument(
        "--val-items",
        type=non_negative_int,
        metavar="N",
        help="validate on at most N items (0: all)",
    )
    p.add_argument(
        "--early-stop",
        type=non_negative_int,
        dest="early_stop_patience",
        metavar="N",
        help="stop after N validations without a better mIoU (0: never, the default)",
    )
    p.add_argument(
        "--schedule",
        choices=["cosine", "plateau", "constant"],
        help="lr schedule after the warmup (plateau: ReduceLROnPlateau on val mIoU)",
    )
    p.add_argument(
        "--warmup-steps", type=non_negative_int, metavar="N", help="linear lr warmup steps"
    )
    p.add_argument(
        "--prompt-mode",
        choices=["mixed", "grid"],
        help="first prompt: mixed = jittered box or random click (default); grid = one click "
        "per object on segment-everything's grid (trains for sam-pets segment)",
    )
    p.add_argument(
        "--grid-points-per-side",
        type=positive_int,
        metavar="N",
        help="the grid of --prompt-mode grid (default 32, segment's default)",
    )
    p.add_argument(
        "--correction-rounds",
        type=non_negative_int,
        metavar="N",
        help="correction clicks per object and step (default 7)",
    )
    p.add_argument(
        "--no-augment",
        dest="augment",
        action="store_const",
        const=False,
        help="no flip/scale/colour augmentation",
    )
    p.add_argument(
        "--object-crop",
        type=probability,
        dest="object_crop_prob",
        metavar="P",
        help="share of training images first cropped around one object with a random margin "
        "(trains for zoom-in prediction; default 0)",
    )
    p.add_argument(
        "--copy-paste",
        type=probability,
        dest="copy_paste_prob",
        metavar="P",
        help="share of training images whose objects are pasted onto another background "
        "(a strip of another item beside its objects, or a --background image; default 0)",
    )
    p.add_argument(
        "--paste-objects",
        type=probability,
        dest="paste_objects_prob",
        metavar="P",
        help="share of training images that get 1-2 objects of other items pasted on as new "
        "objects (teaches the model to follow the click; default 0)",
    )
    p.add_argument(
        "--ema",
        type=float,
        dest="ema_decay",
        metavar="DECAY",
        help="also keep an exponential moving average of the weights (e.g. 0.999), written "
        "to RUN/ema.pt and validated as val_ema_*; default 0 (off)",
    )
    p.add_argument(
        "--background",
        action="append",
        dest="copy_paste_backgrounds",
        metavar="DIR",
        help="folder of images without the objects, used as copy-paste backgrounds (repeatable)",
    )
    p.add_argument("--device", type=device, help="auto (default), cpu, cuda, cuda:1 ...")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="auto = bf16 autocast on CUDA, fp32 elsewhere",
    )
    p.add_argument("--seed", type=int, help="seed of init, data order, augmentation and prompts")
    p.add_argument("--num-workers", type=non_negative_int, help="DataLoader worker processes")
    p.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch CPU threads (1 is often fastest on a busy shared machine)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue this run exactly where it stopped "
        "(its saved config; --steps/--epochs may extend it)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


_FLAG_KEYS = (
    "checkpoint",
    "model_config",
    "steps",
    "epochs",
    "batch_size",
    "grad_accum",
    "resolution",
    "lr",
    "freeze",
    "lora_rank",
    "cached_embeddings",
    "cache_dir",
    "val_every",
    "val_items",
    "early_stop_patience",
    "schedule",
    "warmup_steps",
    "correction_rounds",
    "prompt_mode",
    "grid_points_per_side",
    "augment",
    "object_crop_prob",
    "copy_paste_prob",
    "paste_objects_prob",
    "ema_decay",
    "copy_paste_backgrounds",
    "device",
    "precision",
    "seed",
    "num_workers",
)


def _parts(text: str) -> tuple[str, ...]:
    from sam_pets.train.config import PARTS

    parts = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in parts if t not in PARTS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown parts {bad}; choose from {', '.join(PARTS)}")
    return parts


def build_config(args) -> tuple[object, bool]:
    """The TrainConfig of the parsed arguments and whether this is a resume."""
    from sam_pets.cli import CliError
    from sam_pets.train.config import TrainConfig, read_config_file
    from sam_pets.train.rundir import RunDir

    flags = {k: getattr(args, k) for k in _FLAG_KEYS if getattr(args, k) is not None}
    if "copy_paste_backgrounds" in flags:  # the run's config must work from any folder
        flags["copy_paste_backgrounds"] = [
            str(Path(d).resolve()) for d in flags["copy_paste_backgrounds"]
        ]
    if args.resume:
        _check_resume_args(args, flags)
        cfg = RunDir(args.resume).read_config()
        extend = {k: flags[k] for k in ("steps", "epochs") if k in flags}
        if "steps" in extend:
            extend["epochs"] = None
        if "epochs" in flags:
            extend["steps"] = None  # else the saved step count would win over --epochs
        return cfg.replace(out=str(args.resume), **extend), True
    base = read_config_file(args.config_file) if args.config_file else {}
    base.update(flags)
    if args.dataset:
        base["dataset"] = args.dataset
    if args.out:
        base["out"] = args.out
    if "checkpoint" in flags:
        base["model_config"] = None
    if "model_config" in flags:
        base["checkpoint"] = None
    if "steps" in flags:
        base["epochs"] = None
    for key, flag in (("dataset", "DATASET"), ("out", "--out")):
        if not base.get(key):
            raise CliError(f"{flag} is required (or give it in --config-file)")
    if base.get("steps") is None and base.get("epochs") is None:
        raise CliError("give --steps or --epochs (or steps/epochs in --config-file)")
    if not base.get("checkpoint") and not base.get("model_config"):
        base["checkpoint"] = "pets"  # fine-tuning starts from the built-in model
    if base.get("checkpoint"):
        base["checkpoint"] = str(_resolve_checkpoint(base["checkpoint"]))
    for key in ("dataset", "cache_dir"):  # the saved config must work from any folder
        if isinstance(base.get(key), str) and base[key]:
            base[key] = os.path.abspath(base[key])
    try:
        return TrainConfig.from_dict(base), False
    except ValueError as e:
        # flags were checked at parse time: a bad value left is the config file's
        key = str(e).split(" ", 1)[0]
        if args.config_file and key in base and key not in flags:
            raise CliError(f"{args.config_file}: {e}") from None
        raise


def _check_resume_args(args, flags: dict) -> None:
    """Refuse options that --resume would ignore: the run's saved config decides them."""
    from pathlib import Path

    from sam_pets.cli import CliError

    run = Path(args.resume)
    if not run.is_dir():
        raise CliError(f"--resume {run}: no such run folder")
    if not (run / "config.yaml").is_file():
        raise CliError(f"--resume {run}: not a sam-pets run (no config.yaml)")
    if args.out and Path(args.out).resolve() != run.resolve():
        raise CliError(f"--out {args.out} and --resume {run} name different runs; give one")
    given = [_flag_name(k) for k in flags if k not in ("steps", "epochs")]
    given += ["DATASET"] * bool(args.dataset) + ["--config-file"] * bool(args.config_file)
    given += ["--overwrite"] * args.overwrite
    if given:
        raise CliError(
            f"--resume continues {run} with its saved config; drop {', '.join(given)} "
            "(only --steps/--epochs may extend it)"
        )


def _flag_name(key: str) -> str:
    names = {"model_config": "config", "lora_rank": "lora", "early_stop_patience": "early-stop"}
    if key == "augment":
        return "--no-augment"
    return "--" + names.get(key, key).replace("_", "-")


def _resolve_checkpoint(spec: str):
    from sam_pets.model import resolve_checkpoint

    return resolve_checkpoint(spec).resolve()


def cmd_train(args) -> int:
    """Run the training and print a one-line JSON summary."""
    from sam_pets.cli import skipped_status
    from sam_pets.progress import run_job
    from sam_pets.train.loop import iter_fit

    cfg, resume = build_config(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    is_main = int(os.environ.get("RANK", "0")) == 0
    job = iter_fit(cfg, resume=resume, overwrite=args.overwrite)
    quiet = None if is_main else io.StringIO()  # other ranks: no bar, no repeated notices
    try:
        res = run_job(job, show=is_main and not args.quiet, stream=quiet)
    except KeyboardInterrupt:
        run = Path(cfg.out)
        if not is_main or not (run / "state.pt").is_file():
            raise  # nothing saved yet (or another rank says it): the plain message
        print(
            f"sam-pets train: interrupted; {run / 'last.pt'} and state.pt hold the last "
            f"finished step; continue with: sam-pets train --resume {run}",
            file=sys.stderr,
        )
        return 130
    if is_main:
        print(
            json.dumps(
                {
                    "run": str(res.run_dir),
                    "status": res.status,
                    "step": res.step,
                    "epoch": res.epoch,
                    "best_val_miou": res.best_val_miou,
                    "best_step": res.best_step,
                    "last": str(res.last_checkpoint),
                    "best": str(res.best_checkpoint) if res.best_checkpoint else None,
                    "skipped": [{"item": i.source, "reason": i.reason} for i in res.skipped],
                }
            )
        )
        return skipped_status("train", [i.source for i in res.skipped])
    return 1 if res.skipped else 0
