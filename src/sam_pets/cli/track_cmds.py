"""``sam-pets track``: propagate prompted objects through a video, a stack or a frame folder."""

from __future__ import annotations

import json

from sam_pets.cli._args import positive_int
from sam_pets.cli.model_cmds import add_model_args, load_model_from_args


def register(sub) -> None:
    """Add ``track`` to the ``sam-pets`` parser."""
    p = sub.add_parser(
        "track",
        help="track objects through a video, a multi-page TIFF or a folder of frames",
        description="SAM 2's memory: prompts (clicks or boxes per object, on any frames, from "
        "a JSON file) are propagated through every frame. Writes one label image per frame "
        "(or one TIFF stack) and track.json. Needs a model with video weights (Meta's SAM 2 "
        "checkpoints); the built-in pets model has none.",
    )
    p.add_argument("input", metavar="INPUT", help="video file, multi-page TIFF or folder of frames")
    p.add_argument(
        "--prompts",
        required=True,
        metavar="PROMPTS.json",
        help='{"objects": [{"id": 1, "frame": 0, "points": [[x, y]], "labels": [1]}, '
        '{"id": 2, "frame": 0, "box": [x0, y0, x1, y1]}]}',
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--direction",
        choices=["both", "forward", "backward"],
        default="both",
        help="from the earliest prompted frame (default both)",
    )
    p.add_argument(
        "--format",
        choices=["png", "tif"],
        default="png",
        dest="label_format",
        help="png: labels/<frame>.png; tif: one labels.tif stack",
    )
    p.add_argument(
        "--window",
        type=positive_int,
        default=None,
        help="keep memory features of at most this many tracked frames (bounded RAM)",
    )
    add_model_args(
        p, precision_help="auto = fp32 (Meta's results); bf16 = autocast, ~2x faster with AMX"
    )
    p.add_argument("--overwrite", action="store_true", help="replace results in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_track)


def cmd_track(args) -> int:
    """Run the tracking job; print a JSON summary."""
    from sam_pets.cli import CliError
    from sam_pets.model.device import select_device
    from sam_pets.predict.frames import FrameReadError, open_frames
    from sam_pets.predict.track_job import PromptsError, iter_track, read_prompts
    from sam_pets.predict.video import VideoPredictor
    from sam_pets.progress import run_job

    try:
        frames = open_frames(args.input)
        first = frames[0]
    except FrameReadError as e:
        raise CliError(str(e)) from None
    hw = tuple(int(v) for v in first.shape[:2])
    try:
        prompts = read_prompts(args.prompts, len(frames), hw)
    except PromptsError as e:
        raise CliError(str(e)) from None
    try:
        model = load_model_from_args(args)
    except (ValueError, FileNotFoundError, KeyError) as e:
        raise CliError(str(e)) from None
    model = model.to(select_device(args.device))
    name = args.config or args.model or args.default_model
    try:
        predictor = VideoPredictor(model, frames, window=args.window, precision=args.precision)
    except ValueError as e:
        raise CliError(f"{name}: {e}") from None
    try:
        summary = run_job(
            iter_track(
                predictor, prompts, args.out, args.direction, args.label_format, args.overwrite
            ),
            show=not args.quiet,
        )
    except (FileExistsError, FrameReadError) as e:
        raise CliError(str(e)) from None
    print(
        json.dumps(
            {
                "out": summary.out,
                "frames": summary.frames,
                "objects": summary.objects,
                "precision": predictor.precision,
                "files": len(summary.written),
                "frames_with_object": {
                    str(i): sum(a > 0 for a in v) for i, v in summary.areas.items()
                },
            }
        )
    )
    return 0
