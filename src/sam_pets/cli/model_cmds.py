"""Model subcommands: ``info``, ``predict`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np

from sam_pets.cli._args import (
    add_model_choice,
    add_zoom_arg,
    device,
    finite_floats,
    positive_int,
    zoom_choice,
)


def register(sub) -> None:
    """Add the model subcommands to the ``sam-pets`` parser."""
    p = sub.add_parser("info", help="describe a checkpoint (config, parameters, keys, format)")
    p.add_argument(
        "checkpoint",
        nargs="?",
        default="pets",
        metavar="NAME|FILE",
        help="Meta .pt, Hugging Face .safetensors or sam-pets .pt file, or a model name "
        "(default: pets, the built-in model; sam-pets download --list)",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("predict", help="segment one image from point / box prompts")
    p.add_argument("image", help="input image (PNG, JPEG, TIFF, ...)")
    add_model_args(p)
    p.add_argument(
        "--point",
        action="append",
        default=[],
        metavar="X,Y",
        type=_xy,
        help="positive click in image pixels (repeatable)",
    )
    p.add_argument(
        "--neg-point",
        action="append",
        default=[],
        metavar="X,Y",
        type=_xy,
        help="negative click in image pixels (repeatable)",
    )
    p.add_argument("--box", metavar="X0,Y0,X1,Y1", type=_box, help="box prompt in image pixels")
    p.add_argument(
        "--out",
        required=True,
        help="output mask: .png, .tif or .tiff (0 background, 255 object)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_zoom_arg(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("bench", help="time image embedding and click-to-mask latency")
    add_model_args(p)
    p.add_argument("--image", help="image to use (default: the bundled 500x375 pet photo)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed image embeddings")
    p.add_argument("--clicks", type=positive_int, default=20, help="timed clicks")
    add_zoom_arg(p)
    p.set_defaults(func=cmd_bench)


def add_model_args(
    p: argparse.ArgumentParser,
    default_model: str = "pets",
    precision_help: str = "auto = bf16 autocast on CUDA, fp32 elsewhere",
) -> None:
    """Options that choose a model: ``--model``/``--checkpoint`` or ``--config`` (+ device...).

    ``--model`` and ``--checkpoint`` are one option: a model name (``pets``, the built-in
    model and the default; a downloaded Meta checkpoint such as ``sam2.1_hiera_tiny``) or a
    checkpoint file.  ``--config NAME`` asks for random weights explicitly.
    """
    add_model_choice(p, default_model)
    p.add_argument(
        "--device",
        default="auto",
        type=device,
        help="auto (cuda > mps > cpu), cpu, cuda, cuda:1...",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help=precision_help,
    )


def load_model_from_args(args):
    """The model chosen by :func:`add_model_args` options (weights on the CPU)."""
    from sam_pets.model import build_model, resolve_model

    if args.config:
        return build_model(args.config, seed=0)
    return resolve_model(args.model or args.default_model)


def make_predictor(args):
    """An :class:`~sam_pets.predict.ImagePredictor` for the chosen model and device."""
    from sam_pets.predict import ImagePredictor

    model = load_model_from_args(args)
    zoom = zoom_choice(args, model) if hasattr(args, "zoom") else False
    return ImagePredictor(model, device=args.device, precision=args.precision, zoom=zoom)


def _xy(text: str) -> list[float]:
    return finite_floats(text, 2, "a point")


def _box(text: str) -> list[float]:
    b = finite_floats(text, 4, "a box")
    if b[2] <= b[0] or b[3] <= b[1]:
        raise argparse.ArgumentTypeError(f"box must satisfy X1 > X0 and Y1 > Y0, got {text!r}")
    return b


def cmd_info(args) -> int:
    """Print what a checkpoint holds."""
    from sam_pets.model import count_parameters, read_checkpoint, resolve_checkpoint
    from sam_pets.model.checkpoint import model_from_checkpoint

    ckpt = read_checkpoint(resolve_checkpoint(args.checkpoint))
    model = model_from_checkpoint(ckpt)
    counts = count_parameters(model)
    prefixes = Counter(k.split(".")[0] for k in list(ckpt.image_state) + list(ckpt.video_state))
    info = {
        "file": ckpt.path,
        "format": ckpt.format,
        "config": ckpt.config.name,
        "image_size": ckpt.config.image_size,
        "version": ckpt.config.version,
        "parameters": counts,
        "image_keys": len(ckpt.image_state),
        "video_keys": len(ckpt.video_state),
        "keys_by_prefix": dict(sorted(prefixes.items())),
        "dtypes": sorted({str(v.dtype).replace("torch.", "") for v in ckpt.image_state.values()}),
        "metadata": {k: v for k, v in ckpt.metadata.items() if k != "config"},
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"file:        {info['file']}")
    print(f"format:      {info['format']}")
    print(f"config:      {info['config']} (SAM {info['version']}, input {info['image_size']} px)")
    print("parameters:  " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(f"keys:        {info['image_keys']} image-path, {info['video_keys']} video-only (kept)")
    for k, v in info["keys_by_prefix"].items():
        print(f"  {k:<22}{v}")
    print(f"dtypes:      {', '.join(info['dtypes'])}")
    lines, cut = _meta_lines(info["metadata"])
    print("\n".join(lines))
    if cut:
        print("(shortened: --json prints all of it)")
    return 0


_META_WIDTH = 100  # longest metadata line printed as is


def _meta_lines(meta: dict, indent: int = 0) -> tuple[list[str], bool]:
    """Checkpoint metadata as readable lines: nested records indented, model configs by name.

    Returns the lines and whether anything was left out or cut short.
    """
    lines, cut = [], False
    for k, v in meta.items():
        head = " " * indent + f"{k + ':':<{max(12 - indent, 0)}}"
        if isinstance(v, dict) and k == "config" and "name" in v:
            v = f"{v['name']} (model config)"
            cut = True
        elif isinstance(v, dict):
            if indent >= 4:  # one line: its plain values, as many as fit
                items = ", ".join(
                    f"{a}={b}" for a, b in v.items() if not isinstance(b, dict | list | tuple)
                )
                line = f"{head} {len(v)} keys: {items}"
                if len(line) > _META_WIDTH:
                    line = line[: _META_WIDTH - 3] + "..."
                lines.append(line)
                cut = True
                continue
            lines.append(head.rstrip())
            sub, sub_cut = _meta_lines(v, indent + 2)
            lines += sub
            cut = cut or sub_cut
            continue
        line = f"{head} {v}"
        if len(line) > _META_WIDTH:
            line, cut = line[: _META_WIDTH - 3] + "...", True
        lines.append(line)
    return lines, cut


def cmd_predict(args) -> int:
    """Segment one image and write the mask (PNG or TIFF, as ``--out`` names it)."""
    from sam_pets._atomic import atomic_write_bytes
    from sam_pets.cli import CliError
    from sam_pets.predict.images import read_image

    out = Path(args.out)
    if out.is_dir():
        raise CliError(f"--out {out} is a folder; give the mask file to write")
    fmt = _MASK_FORMATS.get(out.suffix.lower())
    if fmt is None:
        got = repr(out.suffix) if out.suffix else "a name without extension"
        raise CliError(
            f"--out {out}: masks are written as .png, .tif or .tiff (lossless), not {got}"
        )
    if out.exists() and not args.overwrite:
        raise CliError(f"{out} already exists (use --overwrite to replace it)")
    if not (args.point or args.neg_point or args.box):
        raise CliError("give at least one prompt: --point, --neg-point or --box")
    image = read_image(args.image)
    _check_prompts_inside(args, image.shape[:2])
    predictor = make_predictor(args)
    predictor.set_image(image)
    clicks = args.point + args.neg_point
    pts = np.array(clicks, dtype=np.float32) if clicks else None
    labels = np.array([1] * len(args.point) + [0] * len(args.neg_point)) if clicks else None
    box = np.array(args.box, dtype=np.float32) if args.box else None
    multimask = box is None and len(clicks) == 1  # one click is ambiguous: pick the best of 3
    pred = predictor.predict(pts, labels, box, multimask=multimask)
    best = pred.best() if multimask else 0
    mask = pred.masks[best]
    atomic_write_bytes(out, _image_bytes(mask.astype(np.uint8) * 255, fmt))
    print(
        json.dumps(
            {
                "out": str(out),
                "score": round(float(pred.scores[best]), 4),
                "object_score": round(float(pred.object_scores), 4),
                "area": int(mask.sum()),
                "height": int(mask.shape[0]),
                "width": int(mask.shape[1]),
                "zoom": predictor.zoom,
            }
        )
    )
    return 0


# Lossless formats only: a JPEG-compressed mask would hold values other than 0 and 255.
_MASK_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}


def _check_prompts_inside(args, hw: tuple[int, int]) -> None:
    """Refuse clicks and box corners outside the image (x in [0, W], y in [0, H])."""
    from sam_pets.cli import CliError

    h, w = hw
    named = [("--point", p) for p in args.point] + [("--neg-point", p) for p in args.neg_point]
    if args.box:
        named += [("--box corner", args.box[:2]), ("--box corner", args.box[2:])]
    for flag, (x, y) in named:
        if not (0 <= x <= w and 0 <= y <= h):
            raise CliError(
                f"{flag} ({x:g}, {y:g}) is outside the {w}x{h} image {args.image} "
                f"(x must be in [0, {w}], y in [0, {h}])"
            )


def _image_bytes(a: np.ndarray, fmt: str) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt)
    return buf.getvalue()


def cmd_bench(args) -> int:
    """Print one JSON line with median embedding, click and first-mask latencies.

    ``click_ms`` is a click on an embedded image (whole image, as without zoom);
    ``first_box_ms`` is what a new image costs up to its first mask from a box (embedding,
    plus the crop's embedding when zoomed); with zoom, ``zoom_click_ms`` is a click answered
    on the whole image and again in a crop around that mask (crop not cached), and where the
    predictor zooms in on each candidate of a first click (the default under 1024 px),
    ``zoom_click_each_ms`` is that click in the crop of each of its three candidates.
    """
    import torch

    from sam_pets.predict.images import read_image
    from sam_pets.samples import sample_path

    image = read_image(args.image or sample_path())
    predictor = make_predictor(args)
    h, w = image.shape[:2]
    click = np.array([[w * 0.5, h * 0.5]], dtype=np.float32)
    label = np.array([1])
    box = np.array([w * 0.2, h * 0.15, w * 0.8, h * 0.85], dtype=np.float32)

    def sync() -> None:
        if predictor.device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn, n: int) -> float:
        times = []
        for _ in range(n):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t)
        return round(statistics.median(times) * 1e3, 2)

    predictor.set_features(predictor.embed(image), (h, w))  # warm-up
    box_first = _first_box(predictor, image, box)
    box_first()  # warm-up of the zoomed path
    first_box = timed(box_first, args.repeats)
    holder = {}
    embed = timed(lambda: holder.update(feats=predictor.embed(image)), args.repeats)
    predictor.set_features(holder["feats"], (h, w), image)
    for _ in range(3):
        predictor.predict(click, label, multimask=True, zoom=False)
    clicks = timed(lambda: predictor.predict(click, label, multimask=True, zoom=False), args.clicks)
    extra = {}
    if predictor.zoom:

        def zoom_click(each: bool) -> None:
            predictor.clear_crops()
            predictor.predict(click, label, multimask=True, zoom=True, zoom_candidates=each)

        extra["zoom_click_ms"] = timed(lambda: zoom_click(False), args.clicks)
        if predictor.zoom_candidates:
            extra["zoom_click_each_ms"] = timed(lambda: zoom_click(True), args.clicks)
    print(
        json.dumps(
            {
                "embed_ms": embed,
                "click_ms": clicks,
                "first_box_ms": first_box,
                **extra,
                "zoom": predictor.zoom,
                "device": str(predictor.device),
                "config": predictor.model.cfg.name,
                "precision": predictor.precision,
                "image_hw": [h, w],
                "threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine(),
            }
        )
    )
    return 0


def _first_box(predictor, image: np.ndarray, box: np.ndarray):
    """A call that predicts from a box on ``image`` as if it had never been seen."""

    def run() -> None:
        predictor.clear_cache()
        predictor.set_image(image)
        predictor.predict(box_xyxy=box, multimask=False)

    return run
