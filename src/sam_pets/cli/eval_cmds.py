"""``sam-pets eval`` and ``sam-pets robustness``: score models on a canonical dataset.

Both check the output folder before any work (an existing report needs ``--overwrite``; a
non-empty folder without a report of ours is refused),
run the core job with a progress bar, write the HTML report and print a one-line JSON summary.
An unreadable item is skipped (named on stderr when it happens and in a closing line; listed
under ``skipped`` in the JSON line and the report) and the exit status is then 1.
"""

from __future__ import annotations

import json
from pathlib import Path

from sam_pets.cli._args import add_model_choice, add_zoom_arg, device, positive_int, zoom_choice
from sam_pets.eval.perturb import PERTURBATIONS
from sam_pets.eval.protocols import DEFAULT_PROTOCOLS, PROTOCOLS


def register(sub) -> None:
    """Add the ``eval`` and ``robustness`` subcommands to the ``sam-pets`` parser."""
    p = sub.add_parser(
        "eval",
        help="score a model (or two) under prompt protocols; HTML report",
        description="Evaluate on a canonical dataset: IoU/Dice/accuracy per protocol, species, "
        "breed; 3-category mIoU; mIoU@k and NoC@85/90 for correction clicks. "
        "Writes OUT/{metrics.json,per_image.csv,*.png,index.html}.",
    )
    _common(p)
    p.add_argument(
        "--protocol",
        "--prompt",
        action="append",
        choices=PROTOCOLS,
        dest="prompts",
        help="prompt protocol (repeatable; default: all but 'everything', the automatic "
        "mask generator scored by COCO mask AP and each object's best IoU)",
    )
    p.add_argument(
        "--everything",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=_param,
        help="a parameter of the 'everything' protocol's generator, as for sam-pets segment "
        "(e.g. points_per_side=16; repeatable; default: Meta's)",
    )
    p.add_argument(
        "--max-clicks",
        type=positive_int,
        default=20,
        metavar="K",
        help="correction clicks of the 'clicks' protocol (default 20)",
    )
    p.add_argument(
        "--compare",
        metavar="NAME|FILE",
        help="a second model side by side, e.g. before and after fine-tuning (a model name "
        "as for --model, random:CONFIG, or a checkpoint file)",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "robustness",
        help="mean Dice under 8 image perturbations at 10 levels; HTML report",
        description="Perturb every image (noise, blur, contrast, brightness, occlusion, "
        "salt and pepper), prompt from the ground truth and report the mean Dice. "
        "Writes OUT/{results.json,*.png,examples/,index.html}.",
    )
    _common(p)
    p.add_argument(
        "--prompt",
        choices=("box", "center"),
        default="box",
        help="prompt from the ground truth (default box)",
    )
    p.add_argument(
        "--levels",
        type=int,
        default=10,
        metavar="N",
        help="run N of the ten levels, evenly spread (2..10; fewer for CI)",
    )
    p.add_argument(
        "--perturbation",
        action="append",
        choices=PERTURBATIONS,
        dest="perturbations",
        help="only these perturbations (repeatable)",
    )
    p.set_defaults(func=cmd_robustness)


def _common(p) -> None:
    p.add_argument("dataset", metavar="DATASET", help="canonical dataset folder")
    add_model_choice(p)
    p.add_argument("--out", required=True, metavar="DIR", help="report folder")
    p.add_argument("--overwrite", action="store_true", help="replace a report already in --out")
    p.add_argument(
        "--split",
        default="all",
        choices=("all", "train", "val", "train_tiny", "val_tiny"),
        help="which items (default all)",
    )
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N items")
    p.add_argument("--seed", type=int, default=0, help="seed of the random prompts/perturbations")
    p.add_argument(
        "--device", default="auto", type=device, help="auto (cuda > mps > cpu), cpu, cuda..."
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="auto = bf16 autocast on CUDA, fp32 elsewhere",
    )
    p.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads")
    add_zoom_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def resolve_model(spec: str | None = None, config: str | None = None):
    """The model chosen on the command line and a short description of it.

    The one place that turns ``--model``/``--checkpoint``, ``--config`` and ``--compare`` into
    weights (through :func:`sam_pets.model.hub.resolve_model`: built-in and downloaded models
    by name, checkpoint files by path, ``random:CONFIG``).

    Args:
        spec: A model name or checkpoint path; None means the built-in ``pets`` model.
        config: A config name for random weights (wins over ``spec``).

    Returns:
        ``(model, info)`` with info ``{"source": ..., "config": ...}``.
    """
    from sam_pets.model import build_model, resolve_model
    from sam_pets.model.hub import BUILTIN, RANDOM_PREFIX

    if config:
        return build_model(config, seed=0), {"source": f"{RANDOM_PREFIX}{config}", "config": config}
    spec = str(spec or BUILTIN)
    model = resolve_model(spec)
    return model, {"source": spec, "config": model.cfg.name}


def _predictor(args, model, info: dict):
    """The predictor of a model; ``info`` gets whether it zooms (and on each candidate)."""
    from sam_pets.predict import ImagePredictor

    zoom = info["zoom"] = zoom_choice(args, model)
    predictor = ImagePredictor(
        model, device=args.device, precision=args.precision, cache_size=2, zoom=zoom
    )
    info["zoom_candidates"] = bool(zoom and predictor.zoom_candidates)
    return predictor


def _prepare(args) -> None:
    from sam_pets.eval.html import check_report_dir

    if not Path(args.dataset).is_dir():
        from sam_pets.cli import CliError

        raise CliError(f"dataset folder not found: {args.dataset}")
    check_report_dir(args.out, args.overwrite)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _label(info: dict, taken: set[str]) -> str:
    src = Path(info["source"])
    base = f"{src.parent.name}/{src.stem}".lstrip("/") if src.is_file() else str(src)
    label, n = base, 2
    while label in taken:
        label, n = f"{base} ({n})", n + 1
    taken.add(label)
    return label


def cmd_eval(args) -> int:
    """Run the evaluation, write the report, print a JSON summary."""
    from sam_pets.cli import skipped_status
    from sam_pets.eval.evaluate import EvalConfig, NamedModel, iter_evaluate
    from sam_pets.eval.html import clear_report_dir
    from sam_pets.eval.report import write_eval_report
    from sam_pets.progress import run_job

    cfg = EvalConfig(
        protocols=tuple(dict.fromkeys(args.prompts or DEFAULT_PROTOCOLS)),
        max_clicks=args.max_clicks,
        split=args.split,
        limit=args.limit,
        seed=args.seed,
        everything=dict(args.everything),
    )
    _prepare(args)
    specs = [(args.model, args.config)] + ([(args.compare, None)] if args.compare else [])
    models, taken = [], set()
    for spec, config in specs:
        model, info = resolve_model(spec, config)
        models.append(NamedModel(_label(info, taken), _predictor(args, model, info), info))
    res = run_job(iter_evaluate(models, args.dataset, cfg), show=not args.quiet)
    index = write_eval_report(res, clear_report_dir(args.out))
    summary = res.summary()
    brief = {m: {p: _headline(v) for p, v in r.items()} for m, r in summary["results"].items()}
    line = {"report": str(index), "images": res.n_images, "skipped": summary["skipped"]}
    print(json.dumps({**line, "results": brief}))
    return skipped_status("eval", [i.source for i in res.skipped])


def _param(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` of a generator parameter, the value of the parameter's type."""
    import argparse

    from sam_pets.predict.everything import EverythingParams

    name, sep, value = text.partition("=")
    known = EverythingParams.__dataclass_fields__
    if not sep or name not in known or name == "point_grids":
        names = ", ".join(k for k in known if k != "point_grids")
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with NAME one of {names}; got {text!r}"
        )
    try:
        return name, EverythingParams.parse_value(name, value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _headline(v: dict) -> dict:
    if "ap" in v:
        return {k: v[k] for k in ("ap", "ap50", "ap75", "ar", "best_iou_mean")}
    if "noc85" in v:
        return {
            "miou@k": v["miou_at_k"][-1] if v["miou_at_k"] else None,
            "noc85": v["noc85"],
            "noc90": v["noc90"],
        }
    return {
        "miou": v["miou"],
        "mdice": v["mdice"],
        "miou_3cat": (v.get("three_class") or {}).get("miou"),
    }


def cmd_robustness(args) -> int:
    """Run the robustness study, write the report, print a JSON summary."""
    from sam_pets.cli import skipped_status
    from sam_pets.eval.html import clear_report_dir
    from sam_pets.eval.robustness import RobustnessConfig, iter_robustness
    from sam_pets.eval.robustness_report import write_robustness_report
    from sam_pets.progress import run_job

    cfg = RobustnessConfig(
        prompt=args.prompt,
        levels=args.levels,
        split=args.split,
        limit=args.limit,
        seed=args.seed,
        perturbations=tuple(dict.fromkeys(args.perturbations or PERTURBATIONS)),
    )
    _prepare(args)
    model, info = resolve_model(args.model, args.config)
    job = iter_robustness(_predictor(args, model, info), args.dataset, cfg, info)
    res = run_job(job, show=not args.quiet)
    index = write_robustness_report(res, clear_report_dir(args.out))
    summary = res.summary()
    print(
        json.dumps(
            {
                "report": str(index),
                "images": res.n_images,
                "skipped": summary["skipped"],
                "mean_dice": {k: v["mean_dice"] for k, v in summary["perturbations"].items()},
            }
        )
    )
    return skipped_status("robustness", [i.source for i in res.skipped])
