"""What the Fine-tune dock displays: training curves (rendered off the GUI thread), scores."""

from __future__ import annotations

import numpy as np
from qtpy.QtGui import QImage, QPainter
from qtpy.QtWidgets import QWidget

PLOT_SIZE = (420, 180)  # pixels


class ImageView(QWidget):
    """Shows an RGBA array at a fixed size (a repaint never changes the dock's layout)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFixedSize(*PLOT_SIZE)
        self._image: QImage | None = None

    def set_rgba(self, rgba: np.ndarray) -> None:
        """Show ``rgba`` ((H, W, 4) uint8) from the next paint on."""
        h, w = rgba.shape[:2]
        self._buffer = np.ascontiguousarray(rgba)
        self._image = QImage(self._buffer.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if self._image is not None:
            QPainter(self).drawImage(0, 0, self._image)


def render_curves(history: dict[str, list[tuple[int, float]]]) -> np.ndarray:
    """Loss and validation-mIoU curves as an (H, W, 4) RGBA image (runs in a worker)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 80
    fig = Figure(figsize=(PLOT_SIZE[0] / dpi, PLOT_SIZE[1] / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.88, wspace=0.3)
    for i, (key, title) in enumerate((("loss", "training loss"), ("val", "val mIoU"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
        if history.get(key):
            x, y = zip(*history[key], strict=True)
            ax.plot(x, y, "-o" if key == "val" else "-", ms=3, lw=1)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def scores_table(before, after) -> str:
    rows = [
        ("mIoU, box", "miou_box", "{:.3f}"),
        ("mIoU, 1 click", "miou_click", "{:.3f}"),
        ("clicks to 90 % IoU", "clicks_to_90", "{:.2f}"),
    ]
    where = "held-out" if after is None or after.held_out else "training (no held-out image)"
    n = after or before
    head = f"<b>{where} annotations</b> ({n.images} images, {n.objects} objects)" if n else ""
    cells = "".join(
        f"<tr><td>{title}</td><td>{_fmt(before, key, fmt)}</td><td>{_fmt(after, key, fmt)}"
        "</td></tr>"
        for title, key, fmt in rows
    )
    return f"{head}<table><tr><th></th><th>before</th><th>after</th></tr>{cells}</table>"


def _fmt(scores, key: str, fmt: str) -> str:
    if scores is None:
        return "–"
    value = getattr(scores, key)
    return "–" if value != value else fmt.format(value)  # NaN: nothing scored
