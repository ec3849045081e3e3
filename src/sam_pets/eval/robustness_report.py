"""Write a robustness report: results.json, Dice-vs-level plots, example strips, index.html."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sam_pets._atomic import atomic_write_text
from sam_pets.eval import html as H
from sam_pets.eval.plots import overlay, picture_grid, plot_level_curves
from sam_pets.eval.robustness import RobustnessResult


def write_robustness_report(res: RobustnessResult, out: str | os.PathLike) -> Path:
    """Write every file of the report into ``out``; returns the path of ``index.html``.

    Each file is listed in the report's manifest (see :func:`~.html.clear_report_dir`).
    """
    files = H.ReportFiles(out)
    summary = res.summary()
    atomic_write_text(files.path("results.json"), json.dumps(summary, indent=1))
    per = summary["perturbations"]
    curves = {name: (v["levels"], v["mean_dice"]) for name, v in per.items()}
    plot_level_curves(
        curves, files.path("robustness.png"), f"Mean Dice ({res.config.prompt} prompt)"
    )
    sections = [
        ("Mean Dice per level", _table(per)),
        ("All perturbations", H.image("robustness.png", "mean Dice vs level")),
    ]
    for name, curve in curves.items():
        plot_level_curves({name: curve}, files.path(f"dice_{name}.png"), "Mean Dice")
        body = H.image(f"dice_{name}.png", f"{name}: mean Dice vs level")
        if name in res.examples:
            rel = f"examples/{name}.png"
            _example_strip(res, name, files.path(rel))
            body += H.image(rel, f"{name}: example images per level")
        sections.append((name, body))
    sections += H.skipped_section(summary["skipped"])
    intro = (
        f"Dataset {summary['dataset']}: {summary['n_images']} images, "
        f"{summary['n_objects']} objects{H.skipped_note(summary['skipped'])}; "
        f"model {H.fmt(summary['model'].get('source'))}; "
        f"prompt {res.config.prompt}; {res.config.levels} levels; "
        f"{summary['timing_s'].get('total', 0):.1f} s. Examples: item {res.example_item} "
        "(prediction overlaid in red)."
    )
    index = files.path("index.html")
    atomic_write_text(index, H.page("sam-pets robustness", sections, intro))
    return index


def _table(per: dict) -> str:
    n = max(len(v["levels"]) for v in per.values())
    rows = []
    for name, v in per.items():
        cells = [f"{lv:g}: {H.fmt(d)}" for lv, d in zip(v["levels"], v["mean_dice"], strict=True)]
        rows.append([name, *cells, *[""] * (n - len(cells))])
    return H.table(["perturbation", *[f"level {i}" for i in range(n)]], rows)


def _example_strip(res: RobustnessResult, name: str, path: Path) -> None:
    cells = []
    for level, (image, mask) in zip(res.levels(name), res.examples[name], strict=True):
        pic = overlay(image, mask) if mask is not None else image
        cells.append((f"{level:g}", pic))
    half = (len(cells) + 1) // 2
    rows = [{"label": "", "cells": cells[:half]}]
    if len(cells) > half:
        rows.append({"label": "", "cells": cells[half:]})
    picture_grid(rows, path, f"{name} ({res.example_item})")
