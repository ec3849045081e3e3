"""Figures for the reports (matplotlib's object API: no pyplot, no global backend, no display).

Each function writes one PNG and returns its path. Inputs are the JSON-ready summaries of
:mod:`sam_pets.eval.summary`, so a report can be redrawn from ``metrics.json`` alone.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from sam_pets._atomic import atomic_write_bytes

OVERLAY_RGB = np.array([255, 40, 40], dtype=np.float32)


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def plot_click_curves(curves: dict[str, list[float]], path) -> Path:
    """Plot the mean IoU after each click, one line per model."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for label, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, marker="o", ms=3, label=label)
    for thr in (0.85, 0.90):
        ax.axhline(thr, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="clicks k", ylabel="mIoU@k", ylim=(0, 1), title="Interactive correction clicks")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_grouped_bars(
    values: dict[str, dict[str, float | None]], path, title: str, ylabel: str = "mIoU"
) -> Path:
    """Bars per group (x axis), one colour per model; ``values[model][group]``."""
    groups = sorted({g for v in values.values() for g in v})
    n = max(len(values), 1)
    width = 0.8 / n
    fig = Figure(figsize=(max(5.0, 0.35 * len(groups) * n + 2), 4))
    ax = fig.subplots()
    x = np.arange(len(groups))
    for i, (label, v) in enumerate(values.items()):
        heights = [v.get(g) or 0.0 for g in groups]
        ax.bar(x + (i - (n - 1) / 2) * width, heights, width, label=label)
    ax.set_xticks(
        x,
        groups,
        rotation=60 if len(groups) > 4 else 0,
        ha="right" if len(groups) > 4 else "center",
        fontsize=8,
    )
    ax.set(ylabel=ylabel, ylim=(0, 1), title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_level_curves(
    curves: dict[str, tuple[list, list[float]]],
    path,
    title: str,
    ylabel: str = "mean Dice",
    ncols: int = 4,
) -> Path:
    """One small panel per perturbation: metric vs level; ``curves[name] = (levels, values)``.

    With a single entry the panel is drawn alone (one plot per perturbation).
    """
    n = len(curves)
    cols = min(ncols, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(3.2 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (name, (levels, values)) in zip(axes.flat, curves.items(), strict=False):
        ax.plot(range(len(levels)), values, marker="o", ms=3)
        ax.set_xticks(range(len(levels)), [f"{v:g}" for v in levels], fontsize=7, rotation=45)
        ax.set(title=name, ylim=(0, 1), ylabel=ylabel)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 image with ``mask`` (H, W) bool tinted red."""
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * OVERLAY_RGB
    return out.round().clip(0, 255).astype(np.uint8)


def _fit(pic: np.ndarray, cell_hw: tuple[int, int]) -> np.ndarray:
    """``pic`` as (h, w, 3) uint8, scaled to fit ``cell_hw`` and centred on white."""
    from PIL import Image

    rgb = np.repeat(pic[..., None], 3, axis=2) if pic.ndim == 2 else pic[..., :3]
    h, w = rgb.shape[:2]
    s = min(cell_hw[0] / h, cell_hw[1] / w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = np.asarray(Image.fromarray(rgb.astype(np.uint8)).resize(size, Image.BILINEAR))
    out = np.empty((*cell_hw, 3), np.uint8)
    out[:] = (215, 222, 235)  # letterbox colour, distinct from white and black masks
    y0, x0 = (cell_hw[0] - size[1]) // 2, (cell_hw[1] - size[0]) // 2
    out[y0 : y0 + size[1], x0 : x0 + size[0]] = small
    return out


def picture_grid(rows: list[dict], path, title: str, cell_hw: tuple[int, int] = (150, 200)) -> Path:
    """A grid of pictures, one row per case, drawn as one mosaic (fast even for many cells).

    Args:
        rows: Each ``{"cells": [(caption, (H, W) or (H, W, 3) array), ...], "label": str}``;
            (H, W) pictures are shown in grey levels (uint8).
        path: PNG to write.
        title: Figure title.
        cell_hw: Size of one cell in pixels.
    """
    ncols = max(len(r["cells"]) for r in rows)
    ch, cw = cell_hw
    pad, cap = 4, 16  # pixels between cells, caption band above each row
    row_h = ch + cap + pad
    mosaic = np.full((len(rows) * row_h, ncols * (cw + pad), 3), 255, np.uint8)
    texts = []
    for i, r in enumerate(rows):
        y = i * row_h + cap
        for j, (caption, pic) in enumerate(r["cells"]):
            x = j * (cw + pad)
            mosaic[y : y + ch, x : x + cw] = _fit(np.asarray(pic), cell_hw)
            texts.append((x + cw / 2, y - 3, caption, "center"))
        texts.append((-6, y + ch / 2, r["label"], "right"))
    dpi = 100
    h, w = mosaic.shape[:2]
    fig = Figure(figsize=((w + 160) / dpi, (h + 40) / dpi), dpi=dpi)
    ax = fig.add_axes((130 / (w + 160), 0, w / (w + 160), h / (h + 40)))
    ax.imshow(mosaic, interpolation="nearest")
    ax.axis("off")
    for x, y, text, ha in texts:
        ax.text(x, y, text, ha=ha, va="bottom" if ha == "center" else "center", fontsize=7)
    fig.suptitle(title, y=1 - 8 / (h + 40), fontsize=10, va="top")
    return save_figure(fig, path, dpi=dpi)
