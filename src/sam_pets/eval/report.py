"""Write an evaluation report: metrics.json, per_image.csv, plots, picture grids, index.html."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from sam_pets._atomic import atomic_write_text
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.eval import html as H
from sam_pets.eval.evaluate import EvalResult
from sam_pets.eval.everything import MAX_DETS
from sam_pets.eval.items import load_item
from sam_pets.eval.plots import overlay, picture_grid, plot_click_curves, plot_grouped_bars

CSV_COLUMNS = (
    "model",
    "protocol",
    "item",
    "object_id",
    "species",
    "breed",
    "category",
    "iou",
    "dice",
    "accuracy",
    "noc85",
    "noc90",
)
GRID_ROWS = 6


def write_eval_report(res: EvalResult, out: str | os.PathLike) -> Path:
    """Write every file of the report into ``out``, listing each in the report's manifest.

    ``out`` should have passed :func:`~.html.check_report_dir` (and, to replace an earlier
    report, :func:`~.html.clear_report_dir`).

    Returns:
        Path of ``index.html``.
    """
    files = H.ReportFiles(out)
    summary = res.summary()
    atomic_write_text(files.path("metrics.json"), json.dumps(summary, indent=1))
    atomic_write_text(files.path("per_image.csv"), _csv(res.rows))
    figures = write_plots(summary, files) + _grids(res, files)
    index = files.path("index.html")
    atomic_write_text(index, _html(summary, figures))
    return index


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def write_plots(summary: dict, files: H.ReportFiles) -> list[tuple[str, str]]:
    """Draw the report's plots from a summary into ``files``; returns (file name, caption)."""
    at = files.path
    results, protocols = summary["results"], summary["config"]["protocols"]
    figs = []
    single = [p for p in protocols if p != "clicks"]
    if single:
        vals = {m: {p: r[p]["miou"] for p in single} for m, r in results.items()}
        plot_grouped_bars(vals, at("protocols.png"), "mIoU per prompt protocol")
        figs.append(("protocols.png", "mIoU per prompt protocol"))
    if "clicks" in protocols:
        curves = {m: r["clicks"]["miou_at_k"] for m, r in results.items()}
        plot_click_curves(curves, at("miou_at_k.png"))
        figs.append(("miou_at_k.png", "mIoU after k correction clicks"))
    p = protocols[0]
    per_breed = {
        m: {b: v["miou"] for b, v in r[p]["per_breed"].items()} for m, r in results.items()
    }
    if any(per_breed.values()):
        plot_grouped_bars(per_breed, at("per_breed.png"), f"mIoU per breed ({p})")
        figs.append(("per_breed.png", f"mIoU per breed ({p} prompt)"))
    return figs


def _grids(res: EvalResult, files: H.ReportFiles) -> list[tuple[str, str]]:
    p = res.config.grid_protocol
    if p is None:
        return []
    labels = list(res.models)
    by = {(r["model"], r["item"], r["object_id"]): r for r in res.rows if r["protocol"] == p}
    first = sorted((r for r in by.values() if r["model"] == labels[0]), key=lambda r: r["iou"])
    picks = {"worst": first[:GRID_ROWS], "best": first[::-1][:GRID_ROWS]}
    if len(labels) > 1:

        def delta(r):
            return by[labels[1], r["item"], r["object_id"]]["iou"] - r["iou"]

        picks["changed"] = sorted(first, key=lambda r: -abs(delta(r)))[:GRID_ROWS]
    figs = []
    records = canon.items_by_name(canon.load_manifest(res.dataset))
    for kind, chosen in picks.items():
        rows = [_grid_row(res, records[r["item"]], r, labels, by, p) for r in chosen]
        name = f"grid_{kind}.png"
        picture_grid(rows, files.path(name), f"{kind} cases ({p} prompt; by {labels[0]})")
        figs.append(
            (
                name,
                f"{kind.capitalize()} cases: image | ground truth | prediction | "
                f"overlay ({p} prompt)",
            )
        )
    return figs


def _grid_row(res, record, row, labels, by, protocol) -> dict:
    item = load_item(res.dataset, record)
    k = item.object_ids.index(row["object_id"])
    gt = item.masks[k]
    gt_pic = np.where(item.ignore, 128, gt * 255).astype(np.uint8)
    cells = [("image", item.image), ("ground truth (grey: ignored)", gt_pic)]
    for label in labels:
        pred = res.mask(label, item.name, k, gt.shape)
        if pred is None:
            continue
        score = by[label, item.name, row["object_id"]]["iou"]
        cells += [
            (f"{label}: IoU {score:.3f}", pred.astype(np.uint8) * 255),
            (f"{label} overlay", overlay(item.image, pred)),
        ]
    return {"label": f"{item.name} #{row['object_id']}", "cells": cells}


def _html(summary: dict, figures: list[tuple[str, str]]) -> str:
    results, protocols = summary["results"], summary["config"]["protocols"]
    header = ["model", "protocol", "objects", "mIoU", "mDice", "pixel acc.", "3-cat mIoU"]
    rows = []
    for m, r in results.items():
        for p in protocols:
            s = r[p]
            if p == "clicks":
                continue
            three = (s.get("three_class") or {}).get("miou")
            rows.append([m, p, s["n_objects"], s["miou"], s["mdice"], s["accuracy"], three])
    sections = [("Metrics", H.table(header, rows))]
    if "clicks" in protocols:
        k = summary["config"]["max_clicks"]
        crow = [
            [
                m,
                r["clicks"]["n_objects"],
                *(r["clicks"]["miou_at_k"][i] for i in sorted({0, min(4, k - 1), k - 1})),
                r["clicks"]["noc85"],
                r["clicks"]["noc90"],
            ]
            for m, r in results.items()
        ]
        ks = [f"mIoU@{i + 1}" for i in sorted({0, min(4, k - 1), k - 1})]
        sections.append(
            ("Interactive clicks", H.table(["model", "objects", *ks, "NoC@85", "NoC@90"], crow))
        )
    if "everything" in protocols:
        erow = [
            [
                m,
                e["n_images"],
                e["n_objects"],
                e["proposals_per_image"],
                e["ap"],
                e["ap50"],
                e["ap75"],
                e["ar"],
                e["best_iou_mean"],
                e["found50"],
                e["found75"],
            ]
            for m, e in ((m, r["everything"]) for m, r in results.items())
        ]
        head = ["model", "images", "objects", "proposals/image", "AP", "AP50", "AP75"]
        head += [f"AR@{MAX_DETS}", "mean best IoU", "found @0.5", "found @0.75"]
        title = "Segment everything (COCO mask AP; best IoU per object)"
        sections.append((title, H.table(head, erow)))
    p = protocols[0]
    species = [
        [m, sp, v["n"], v["miou"]]
        for m, r in results.items()
        for sp, v in r[p]["per_species"].items()
    ]
    if species:
        sections.append(
            (f"Per species ({p})", H.table(["model", "species", "objects", "mIoU"], species))
        )
    sections += [(caption, H.image(name, caption)) for name, caption in figures]
    sections += H.skipped_section(summary["skipped"])
    sections.append(
        (
            "Files",
            "<p><a href='metrics.json'>metrics.json</a> \u00b7 "
            "<a href='per_image.csv'>per_image.csv</a></p>",
        )
    )
    models = ", ".join(f"{m} ({H.fmt(i.get('source'))})" for m, i in summary["models"].items())
    intro = (
        f"Dataset {summary['dataset']}: {summary['n_images']} images, "
        f"{summary['n_objects']} objects{H.skipped_note(summary['skipped'])}. "
        f"Models: {models}. Total time "
        f"{summary['timing_s'].get('total', 0):.1f} s. 3-category mIoU: mean IoU of "
        "background, cat and dog over the dataset (Oxford-IIIT Pet baseline 0.33)."
    )
    return H.page("sam-pets evaluation", sections, intro)
