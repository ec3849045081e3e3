"""Dataset subcommands: ``convert`` and ``export`` (see sam_pets.data)."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    """Add the dataset subcommands to the ``sam-pets`` parser."""
    convert = sub.add_parser(
        "convert",
        help="convert a dataset to the canonical SAM 2 folder",
        description="Write OUT as SAM 2's folder layout (JPEGImages/, Annotations/, split "
        "lists) plus Ignore/, Objects/ and a dataset.json manifest. Unusable files are "
        "skipped with a reason; the rest converts.",
    )
    fmt = convert.add_subparsers(dest="format", metavar="FORMAT")
    fmt.required = True
    _add_oxford(fmt)
    _add_coco(fmt)
    _add_labelme(fmt)
    _add_labels(fmt)
    _add_sam2(fmt)
    export = sub.add_parser("export", help="export a canonical dataset to another format")
    efmt = export.add_subparsers(dest="format", metavar="FORMAT")
    efmt.required = True
    p = efmt.add_parser("coco", help="write COCO instances JSON (masks as lossless RLE)")
    p.add_argument("dataset", metavar="DATASET", help="canonical dataset folder")
    p.add_argument("out", metavar="OUT.json", help="output .json file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT file")
    p.add_argument(
        "--polygons",
        action="store_true",
        help="write polygons instead of RLE (lossy: holes filled, edges simplified)",
    )
    _add_quiet(p)
    p.set_defaults(func=_run_export_coco)
    p = sub.add_parser(
        "merge",
        help="merge canonical datasets into a new one (each item keeps its split)",
    )
    p.add_argument("out", metavar="OUT", help="new or empty output folder")
    p.add_argument("sources", metavar="DATASET", nargs="+", help="canonical dataset folders")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset in OUT")
    p.set_defaults(func=_run_merge)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="fraction of items in the val split (default 0.2)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.add_argument(
        "--tiny",
        type=int,
        metavar="N",
        default=None,
        help="convert only a stratified subset of N items (quick smoke tests)",
    )
    p.add_argument(
        "--workers", type=int, default=0, help="decoding/encoding threads (default: min(4, CPUs))"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing sam-pets dataset at OUT (never other data)",
    )
    _add_quiet(p)


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_oxford(fmt) -> None:
    p = fmt.add_parser("oxford-pets", help="Oxford-IIIT Pet (official or flat layout)")
    p.add_argument(
        "src", metavar="SRC", help="folder with images/ and trimaps/ (or annotations/trimaps/)"
    )
    p.add_argument("out", metavar="OUT", help="output dataset folder (new or empty)")
    _add_common(p)
    p.set_defaults(func=_run_convert)


def _add_coco(fmt) -> None:
    p = fmt.add_parser("coco", help="COCO instances JSON and its images")
    p.add_argument("annotations", metavar="ANNOTATIONS.json", help="COCO instances file")
    p.add_argument(
        "images_dir", metavar="IMAGES_DIR", help="folder that file_name entries are relative to"
    )
    p.add_argument("out", metavar="OUT", help="output dataset folder (new or empty)")
    _add_common(p)
    p.set_defaults(func=_run_convert)


def _add_labelme(fmt) -> None:
    p = fmt.add_parser("labelme", help="a folder of LabelMe JSON files")
    p.add_argument("src", metavar="SRC_DIR", help="folder searched recursively for *.json")
    p.add_argument("out", metavar="OUT", help="output dataset folder (new or empty)")
    _add_common(p)
    p.set_defaults(func=_run_convert)


def _add_labels(fmt) -> None:
    p = fmt.add_parser("labels", help="label images (PNG/TIFF) matched to images by name")
    p.add_argument("images_dir", metavar="IMAGES_DIR", help="folder of images")
    p.add_argument(
        "labels_dir", metavar="LABELS_DIR", help="folder of label images with the same file stems"
    )
    p.add_argument("out", metavar="OUT", help="output dataset folder (new or empty)")
    _add_common(p)
    p.set_defaults(func=_run_convert)


def _add_sam2(fmt) -> None:
    p = fmt.add_parser("sam2", help="a plain SAM 2 folder (JPEGImages/, Annotations/)")
    p.add_argument("src", metavar="SRC", help="folder with JPEGImages/ and Annotations/")
    p.add_argument("out", metavar="OUT", help="output dataset folder (new or empty)")
    _add_common(p)
    p.set_defaults(func=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    from sam_pets.cli import CliError
    from sam_pets.data import convert as conv
    from sam_pets.data.errors import BadInputError
    from sam_pets.progress import run_job

    if not 0.0 <= args.val_fraction <= 1.0:
        raise CliError(f"--val-fraction must be in [0, 1], got {args.val_fraction}")
    if args.tiny is not None and args.tiny < 1:
        raise CliError(f"--tiny must be >= 1, got {args.tiny}")
    cfg = conv.ConvertConfig(
        val_fraction=args.val_fraction,
        seed=args.seed,
        tiny=args.tiny,
        workers=max(0, args.workers),
        overwrite=args.overwrite,
    )
    try:
        if args.format == "oxford-pets":
            job = conv.convert_oxford_pets(args.src, args.out, cfg)
        elif args.format == "coco":
            job = conv.convert_coco(args.annotations, args.images_dir, args.out, cfg)
        elif args.format == "sam2":
            job = conv.convert_sam2_folder(args.src, args.out, cfg)
        elif args.format == "labels":
            job = conv.convert_label_images(args.images_dir, args.labels_dir, args.out, cfg)
        else:
            job = conv.convert_labelme(args.src, args.out, cfg)
        summary = run_job(job, show=not args.quiet)
    except BadInputError as e:
        raise CliError(str(e)) from None
    print(summary.format())
    return 0 if summary.converted else 1


def _run_merge(args: argparse.Namespace) -> int:
    from sam_pets.cli import CliError
    from sam_pets.data.errors import BadInputError
    from sam_pets.data.merge import merge_datasets

    try:
        counts = merge_datasets(args.sources, args.out, args.overwrite)
    except BadInputError as e:
        raise CliError(str(e)) from None
    splits = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"merged {len(args.sources)} datasets -> {args.out} ({splits})")
    return 0


def _run_export_coco(args: argparse.Namespace) -> int:
    from sam_pets.cli import CliError, skipped_status
    from sam_pets.data.errors import BadInputError
    from sam_pets.data.export import export_coco
    from sam_pets.progress import run_job

    try:
        job = export_coco(args.dataset, args.out, args.overwrite, args.polygons)
        summary = run_job(job, show=not args.quiet)
    except BadInputError as e:
        raise CliError(str(e)) from None
    skipped = f", skipped {len(summary.skipped)}" if summary.skipped else ""
    print(f"exported {summary.converted} images{skipped} -> {summary.out}", file=sys.stdout)
    return skipped_status("export", [i.source for i in summary.skipped])
