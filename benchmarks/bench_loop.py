"""Does the annotate -> fine-tune -> annotate loop pay on a domain the model never saw?

A simulated person (sam_pets.train.simulate: the Annotator's prompt logic, first click at the
most interior pixel or the tight box, then correction clicks at the centre of the largest
error until 85 % IoU or 20 clicks, then the object is finished by hand) annotates the
photos of an annotation pool one by one. After K = 5, 10 and 20 photos the annotations so
far are fine-tuned on with one of the dock's presets, starting from the model in use as the
dock does; the photos of a separate test set are scored before and after each fine-tune
(NoC@85, NoC@90, mIoU after one click, box mIoU). The effort curve is the clicks the person
spent on the pool, with fine-tuning along the way and without.

Domains:
  facades  ../shared/data/coco_sample (83 street facade photos, COCO polygons: windows,
           balconies, cars, ...), split by photo into pool and test, stratified by the
           number of objects per photo, seeded.
  pets     Oxford-IIIT Pet photos of breeds the start model never trained on (--breeds;
           needs a start model trained without them, --model).

    python benchmarks/bench_loop.py --domain facades [--presets quick full] [--ks 5 10 20]

Writes results/loop_<domain>.md, results/loop_<domain>.json and the plots
docs/loop_<domain>.png (loop_<domain>_box for --first box).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, SHARED, command, machine, write_snippet  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domain", choices=["facades", "pets"], default="facades")
    ap.add_argument("--model", default="pets", help="start model: name or checkpoint file")
    ap.add_argument("--src", type=Path, default=None, help="source data (default: ../shared)")
    ap.add_argument("--breeds", nargs="*", default=[], help="pets: the breeds left out")
    ap.add_argument("--pool", type=int, default=30, help="photos the person annotates")
    ap.add_argument("--test", type=int, default=20, help="photos scored (0: the rest)")
    ap.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--presets", nargs="+", default=["quick", "full"])
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="PRESET.KEY=VALUE",
        help="change a preset's setting, e.g. full.steps=300 full.lr=1e-4",
    )
    ap.add_argument("--first", choices=["click", "box"], default="click")
    ap.add_argument(
        "--first-window",
        type=float,
        default=0.0,
        metavar="F",
        help="first clicks look for their object in a square of F times the photo's longer "
        "side (the Annotator's 'First click looks in'; 0: the whole photo)",
    )
    ap.add_argument("--max-side", type=int, default=512, help="photos shrunk to this side")
    ap.add_argument(
        "--max-objects", type=int, default=12, help="objects prompted per photo (the largest)"
    )
    ap.add_argument("--max-clicks", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="keep the jobs here")
    ap.add_argument("--no-write", action="store_true", help="print only")
    return ap.parse_args(argv)


def preset_overrides(settings: list[str]) -> dict[str, dict]:
    """``["full.steps=300", ...]`` -> ``{"full": {"steps": 300}}`` (values parsed as YAML)."""
    import yaml

    out: dict[str, dict] = {}
    for s in settings:
        key, _, value = s.partition("=")
        preset, _, field = key.partition(".")
        if not field or not _:
            raise SystemExit(f"--set wants PRESET.KEY=VALUE, got {s!r}")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        out.setdefault(preset, {})[field] = parsed
    return out


def shrink(item, max_side: int, max_objects: int | None):
    """``item`` with its photo at most ``max_side`` px and its largest ``max_objects``."""
    from dataclasses import replace

    from skimage.transform import resize

    h, w = item.image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    masks, ignore, image = item.masks, item.ignore, item.image
    if s < 1:
        hw = (round(h * s), round(w * s))
        image = (resize(image, hw, order=1, anti_aliasing=True) * 255).round().astype(np.uint8)
        masks = np.stack([resize(m.astype(np.float32), hw, order=1) >= 0.5 for m in masks])
        ignore = resize(ignore.astype(np.float32), hw, order=1) >= 0.5
    keep = np.flatnonzero(masks.reshape(len(masks), -1).any(1))
    if max_objects and len(keep) > max_objects:
        area = masks[keep].reshape(len(keep), -1).sum(1)
        keep = np.sort(keep[np.argsort(-area, kind="stable")[:max_objects]])
    return replace(
        item,
        image=image,
        masks=masks[keep],
        ignore=ignore,
        categories=tuple(item.categories[k] for k in keep),
        object_ids=tuple(item.object_ids[k] for k in keep),
    )


def split_pool_test(items, n_pool: int, n_test: int, seed: int):
    """Photos split into pool and test, stratified by objects per photo, seeded."""
    rng = np.random.default_rng(seed)
    order = sorted(range(len(items)), key=lambda i: (len(items[i].masks), items[i].name))
    pool, test = [], []
    # walk the photos in strata of increasing object count; within each, a seeded shuffle
    n_bins = max(1, min(len(items) // 4, 8))
    for chunk in np.array_split(np.asarray(order), n_bins):
        chunk = list(rng.permutation(chunk))
        share = round(len(chunk) * n_pool / max(1, n_pool + (n_test or len(items) - n_pool)))
        pool += chunk[:share]
        test += chunk[share:]
    rng.shuffle(pool)
    extra = pool[n_pool:]
    pool = pool[:n_pool]
    test = test + extra
    test = sorted(test)[:n_test] if n_test else sorted(test)
    return [items[i] for i in pool], [items[i] for i in test]


def load_domain(args, tmp: Path):
    from sam_pets.data.convert import ConvertConfig, convert_coco, convert_oxford_pets
    from sam_pets.eval.items import item_names, iter_items
    from sam_pets.progress import run_job

    ds = tmp / "source"
    converted = (ds / "dataset.json").is_file()  # a --work folder used before: reuse it
    if args.domain == "facades":
        src = args.src or SHARED / "data" / "coco_sample"
        if not converted:
            job = convert_coco(
                src / "annotations.json", src / "images", ds, ConvertConfig(val_fraction=0.0)
            )
            run_job(job, show=False)
    else:
        src = args.src or SHARED / "data" / "oxford_pets_dev"
        if not args.breeds:
            raise SystemExit("--domain pets needs --breeds (those the start model never saw)")
        if not converted:
            run_job(convert_oxford_pets(src, ds, ConvertConfig(val_fraction=0.0)), show=False)
    names = item_names(ds, "all")
    items = [shrink(it, args.max_side, args.max_objects) for it in iter_items(ds, names)]
    if args.domain == "pets":
        breeds = {b.lower() for b in args.breeds}
        items = [it for it in items if (it.breed or "").lower() in breeds]
    items = [it for it in items if len(it.masks)]
    if len(items) < args.pool + 2:
        raise SystemExit(f"only {len(items)} photos: need more than --pool {args.pool}")
    return split_pool_test(items, args.pool, args.test, args.seed)


def write_test_set(items, folder: Path) -> None:
    from sam_pets.train.finetune import write_snapshot
    from sam_pets.train.simulate import annotated_image

    write_snapshot([annotated_image(it) for it in items], folder, val_fraction=0)


def scores_row(s) -> dict:
    return {
        "noc85": s.clicks_to_85,
        "noc90": s.clicks_to_90,
        "miou_click": s.miou_click,
        "miou_5": s.miou_5,
        "miou_box": s.miou_box,
        "objects": s.objects,
        "images": s.images,
    }


def result_name(args) -> str:
    """Name of the snippet, its data and its plot: loop_<domain>, _box for box-first runs."""
    return f"loop_{args.domain}" + ("_box" if args.first == "box" else "")


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    base = report["baseline"]
    top = base["before"]["noc85"]
    for name, run in report["presets"].items():
        ks = [0] + [r["k"] for r in run["rounds"]]
        ys = [base["before"]["noc85"]] + [r["scores"]["noc85"] for r in run["rounds"]]
        a.plot(ks, ys, "o-", label=f"{name} preset")
        top = max(top, *ys)
        b.plot(np.arange(1, len(run["cumulative"]) + 1), run["cumulative"], label=f"{name} preset")
    a.set_xlabel("photos annotated and fine-tuned on (K)")
    a.set_ylabel("clicks per object to 85 % IoU, test photos")
    a.set_title("Test set: NoC@85 against K")
    a.set_ylim(0, top * 1.1)  # from zero clicks: small changes look small
    a.legend(loc="lower left")
    cum = base["cumulative"]
    b.plot(np.arange(1, len(cum) + 1), cum, "k--", label="no fine-tuning")
    b.set_xlabel("photos annotated")
    b.set_ylabel("clicks spent (cumulative)")
    b.set_title("Effort curve on the annotation pool")
    b.legend()
    fig.suptitle(textwrap.fill(report["title"], 140), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(report: dict, args) -> str:
    base = report["baseline"]
    b = base["before"]
    lines = [
        f"### The loop on {report['domain']}: annotate K photos, fine-tune, annotate faster",
        "",
        f"- Machine: {report['machine']}",
        f"- Command: `{report['command']}`",
        f"- {report['title']}",
        f"- Simulated person: first prompt {args.first} (most interior pixel or tight box), "
        f"then correction clicks at the centre of the largest error until 85 % IoU or "
        f"{args.max_clicks} clicks; objects in order; each fine-tune starts from the model in "
        "use (as the dock does) and trains on every photo annotated so far"
        + (
            f"; first clicks look in a square of {args.first_window:g} of the photo's side."
            if args.first_window
            else "."
        ),
        "",
        "| preset | K | train time | steps | NoC@85 before → after | NoC@90 before → after "
        "| mIoU@1 click | mIoU box | pool clicks/object (images after K) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| start model | 0 | | | {b['noc85']:.2f} | {b['noc90']:.2f} | {b['miou_click']:.3f} "
        f"| {b['miou_box']:.3f} | {base['clicks_per_object']:.2f} |",
    ]
    for name, run in report["presets"].items():
        for r in run["rounds"]:
            s = r["scores"]
            lines.append(
                f"| {name} | {r['k']} | {r['seconds']:.0f} s | {r['steps']} "
                f"| {b['noc85']:.2f} → {s['noc85']:.2f} | {b['noc90']:.2f} → {s['noc90']:.2f} "
                f"| {s['miou_click']:.3f} | {s['miou_box']:.3f} "
                f"| {r['pool_clicks_after']:.2f} |"
            )
    lines += ["", "Effort on the pool (total clicks for all its photos):", ""]
    lines.append(f"- no fine-tuning: {base['cumulative'][-1]} clicks")
    for name, run in report["presets"].items():
        gain = 100 * (1 - run["cumulative"][-1] / base["cumulative"][-1])
        lines.append(
            f"- {name} preset, fine-tuned after K = {', '.join(map(str, args.ks))}: "
            f"{run['cumulative'][-1]} clicks ({gain:+.1f} % fewer)"
        )
    for name, run in report["presets"].items():
        if run["rounds"]:
            last = run["rounds"][-1]
            fewer = 100 * (1 - last["scores"]["noc85"] / b["noc85"])
            lines.append(
                f"- test NoC@85 after K = {last['k']} with {name}: {fewer:+.1f} % fewer clicks "
                "(goal: >= 30 % fewer after 20 photos)"
            )
    lines += ["", f"![loop](../../docs/{result_name(args)}.png)"]
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from sam_pets.cli.eval_cmds import resolve_model
    from sam_pets.progress import run_job
    from sam_pets.train.finetune import PRESETS
    from sam_pets.train.simulate import SimulatedUser, iter_loop

    torch.set_num_threads(args.threads)
    changes = preset_overrides(args.set)
    unknown = set(changes) - set(PRESETS) | set(args.presets) - set(PRESETS)
    if unknown:
        raise SystemExit(f"unknown preset(s) {sorted(unknown)}; choose from {sorted(PRESETS)}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_loop_"))
    work = args.work or tmp
    work.mkdir(parents=True, exist_ok=True)
    try:
        pool, test = load_domain(args, tmp)
        test_ds = tmp / "test"
        write_test_set(test, test_ds)
        model, info = resolve_model(args.model)
        user = SimulatedUser(first=args.first, max_clicks=args.max_clicks)
        t0 = time.perf_counter()
        base = run_job(
            iter_loop(
                model,
                pool,
                test_ds,
                work / "none",
                preset=None,
                user=user,
                max_clicks=args.max_clicks,
                first_click_window=args.first_window,
            ),
            show=True,
        )
        report = {
            "domain": args.domain,
            "machine": machine(),
            "command": command(),
            "model": args.model,
            "title": (
                f"start model `{args.model}` ({info['config']}); pool {len(pool)} photos "
                f"({sum(len(i.masks) for i in pool)} objects prompted), test {len(test)} "
                f"photos ({sum(len(i.masks) for i in test)} objects); photos at most "
                f"{args.max_side} px, at most {args.max_objects} objects prompted per photo "
                "(the largest; all objects are trained on)"
            ),
            "baseline": {
                "before": scores_row(base.before),
                "cumulative": base.cumulative_clicks().tolist(),
                "clicks_per_object": base.clicks_per_object(),
                "seconds": time.perf_counter() - t0,
            },
            "presets": {},
        }
        for name in args.presets:
            res = run_job(
                iter_loop(
                    model,
                    pool,
                    test_ds,
                    work / name,
                    ks=args.ks,
                    preset=name,
                    overrides=changes.get(name),
                    user=user,
                    before=base.before,
                    max_clicks=args.max_clicks,
                    seed=args.seed,
                    first_click_window=args.first_window,
                ),
                show=True,
            )
            rounds = []
            for i, r in enumerate(res.rounds):
                nxt = res.rounds[i + 1].k if i + 1 < len(res.rounds) else None
                rounds.append(
                    {
                        "k": r.k,
                        "seconds": r.seconds,
                        "steps": r.steps,
                        "status": r.status,
                        "scores": scores_row(r.scores) if r.scores else None,
                        "pool_clicks_after": res.clicks_per_object(r.k, nxt),
                    }
                )
            report["presets"][name] = {
                "settings": {**PRESETS[name].settings, **changes.get(name, {})},
                "rounds": rounds,
                "cumulative": res.cumulative_clicks().tolist(),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = markdown(report, args)
    print(text)
    if not args.no_write:
        name = result_name(args)
        plot(report, REPO / "docs" / f"{name}.png")
        from _common import RESULTS

        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=1, default=str))
        write_snippet(name, text)
    return report


if __name__ == "__main__":
    main()
