"""Loss and validation curves as PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from pathlib import Path

from sam_pets._atomic import atomic_write_bytes


def _figure_png(
    series: dict[str, tuple[list, list]], title: str, ylabel: str, logy: bool = False
) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.6), dpi=100)
    ax = fig.add_subplot()
    for name, (x, y) in series.items():
        if x:
            ax.plot(x, y, label=name, marker="." if len(x) < 30 else None)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _series(records: list[dict], keys: tuple[str, ...]) -> dict[str, tuple[list, list]]:
    out = {}
    for k in keys:
        pts = [(r["step"], r[k]) for r in records if isinstance(r.get(k), (int, float))]
        out[k] = ([p[0] for p in pts], [p[1] for p in pts])
    return out


def write_curves(records: list[dict], folder: str | Path) -> list[Path]:
    """Write ``loss.png`` (train losses) and ``val.png`` (val mIoU/Dice) from metrics records.

    Args:
        records: metrics.jsonl records (``step`` plus numbers).
        folder: Run folder.

    Returns:
        The written files.
    """
    folder = Path(folder)
    written = []
    train = [r for r in records if "loss" in r]
    if train:
        png = _figure_png(
            _series(train, ("loss", "focal", "dice", "iou", "cls")),
            "training loss (per object, summed over rounds)",
            "loss",
            logy=True,
        )
        atomic_write_bytes(folder / "loss.png", png)
        written.append(folder / "loss.png")
    val = [r for r in records if "val_miou" in r]
    if val:
        keys = ("val_miou", "val_iou_box", "val_iou_click", "val_dice_box", "val_dice_click")
        png = _figure_png(_series(val, keys), "validation", "score")
        atomic_write_bytes(folder / "val.png", png)
        written.append(folder / "val.png")
    return written
