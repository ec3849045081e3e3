"""``sam-pets segment``: every object of each image, from a grid of point prompts."""

from __future__ import annotations

import json

from sam_pets.cli._args import non_negative_int, positive_int, probability
from sam_pets.cli.model_cmds import add_model_args, load_model_from_args

# (flag, type, help) of the generator's parameters; the defaults are EverythingParams'.
_PARAMS = (
    ("points_per_side", positive_int, "clicks per side of the grid"),
    ("points_per_batch", positive_int, "clicks decoded at once"),
    ("pred_iou_thresh", float, "keep masks whose predicted IoU is above this"),
    ("stability_score_thresh", float, "keep masks whose stability score is at least this"),
    ("stability_score_offset", float, "logit shift of the stability score's cut-offs"),
    ("mask_threshold", float, "logit cut-off of a mask"),
    ("box_nms_thresh", probability, "box IoU of the NMS that removes duplicates"),
    ("crop_n_layers", non_negative_int, "layers of image crops run again (0: none)"),
    ("crop_nms_thresh", probability, "box IoU of the NMS across crops"),
    ("crop_overlap_ratio", probability, "overlap of the crops, share of the short side"),
    ("crop_n_points_downscale_factor", positive_int, "grid side divided by this per layer"),
    ("min_mask_region_area", non_negative_int, "remove holes and islands under this area"),
)


def register(sub) -> None:
    """Add ``segment`` to the ``sam-pets`` parser."""
    from sam_pets.predict.everything import EverythingParams

    defaults = EverythingParams()
    p = sub.add_parser(
        "segment",
        help="segment everything: all objects of an image or a folder, no prompts",
        description="Automatic mask generation (SAM's 'segment everything') with Meta's "
        "parameters. Writes label images, COCO RLE (coco.json) and/or a sam-pets dataset "
        "to open in the Annotator. A run into the same --out resumes where it stopped.",
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE|FOLDER", help="images or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--format",
        action="append",
        choices=["labels", "coco", "dataset"],
        dest="formats",
        help="what to write (repeatable; default: labels and coco)",
    )
    p.add_argument(
        "--label-format",
        choices=["png", "tif"],
        default="png",
        help="label image file type (default png: palette, or 16-bit beyond 255 objects)",
    )
    add_model_args(p)
    for name, kind, text in _PARAMS:
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=getattr(defaults, name),
            help=f"{text} (default {getattr(defaults, name):g})",
        )
    p.add_argument(
        "--single-mask",
        action="store_true",
        help="one mask per click instead of three (multimask_output off)",
    )
    p.add_argument("--m2m", action="store_true", help="refine each mask once with its logits")
    p.add_argument("--overwrite", action="store_true", help="start over in a used --out folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_segment)


def cmd_segment(args) -> int:
    """Run the folder job; print a JSON summary; exit 1 when images were skipped."""
    from sam_pets.cli import CliError, skipped_status
    from sam_pets.predict import ImagePredictor
    from sam_pets.predict.everything import EverythingParams
    from sam_pets.predict.segment_job import RunMismatch, iter_segment_folder, list_images
    from sam_pets.progress import run_job

    try:
        params = EverythingParams(
            **{name: getattr(args, name) for name, _, _ in _PARAMS},
            multimask_output=not args.single_mask,
            use_m2m=args.m2m,
        )
    except ValueError as e:
        raise CliError(str(e)) from None
    missing = [str(i) for i in args.inputs if not _exists(i)]
    if missing:
        raise CliError(f"not found: {', '.join(missing)}")
    if not list_images(args.inputs):
        raise CliError(f"no images in {', '.join(args.inputs)}")
    model = load_model_from_args(args)
    predictor = ImagePredictor(model, device=args.device, precision=args.precision)
    name = args.config or args.model or args.default_model
    job = iter_segment_folder(
        predictor,
        args.inputs,
        args.out,
        params,
        formats=args.formats or ("labels", "coco"),
        label_suffix="." + args.label_format,
        model_name=str(name),
        overwrite=args.overwrite,
    )
    try:
        summary = run_job(job, show=not args.quiet)
    except RunMismatch as e:
        raise CliError(str(e)) from None
    print(
        json.dumps(
            {
                "out": str(args.out),
                "images": len(summary.done) + len(summary.resumed),
                "segmented": len(summary.done),
                "resumed": len(summary.resumed),
                "skipped": len(summary.skipped),
                "masks": sum(summary.masks.values()),
                "coco": summary.coco,
            }
        )
    )
    return skipped_status("segment", [f for f, _ in summary.skipped])


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).exists()
