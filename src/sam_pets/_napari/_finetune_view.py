"""What the Fine-tune dock displays: live training curves and the before/after scores."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QWidget

PLOT_SIZE = (420, 180)  # pixels
_PANELS = (("loss", "training loss", False), ("val", "val mIoU", True))


class CurvesView(QWidget):
    """Training loss and validation mIoU, painted by Qt (about a millisecond a repaint).

    Matplotlib would hold the GIL for ~100 ms a draw on a small CPU, which stalls the GUI
    thread even from a worker; the run folder's ``loss.png`` / ``val.png`` are matplotlib's.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFixedSize(*PLOT_SIZE)
        self.history: dict[str, list[tuple[int, float]]] = {"loss": [], "val": []}

    def set_history(self, history: dict[str, list[tuple[int, float]]]) -> None:
        """Show these (step, value) series from the next paint on."""
        self.history = {k: list(v) for k, v in history.items()}
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("white"))
        w = self.width() / len(_PANELS)
        for i, (key, title, markers) in enumerate(_PANELS):
            _panel(p, QRectF(i * w, 0, w, self.height()), title, self.history.get(key, []), markers)
        p.end()


def _panel(p: QPainter, area: QRectF, title: str, series, markers: bool) -> None:
    font = p.font()
    font.setPointSizeF(7.5)
    p.setFont(font)
    p.setPen(QColor("black"))
    p.drawText(
        area.adjusted(0, 2, 0, 0), Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, title
    )
    box = area.adjusted(42, 18, -8, -20)
    p.setPen(QPen(QColor("gray"), 1))
    p.drawRect(box)
    points = [(s, v) for s, v in series if math.isfinite(v)]
    if not points:
        return
    xs, ys = [s for s, _ in points], [v for _, v in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1

    def at(s: float, v: float) -> QPointF:
        fx, fy = (s - x0) / (x1 - x0), (v - y0) / (y1 - y0)
        return QPointF(box.left() + fx * box.width(), box.bottom() - fy * box.height())

    p.setPen(QColor("black"))
    p.drawText(QRectF(area.left(), box.top() - 6, 40, 12), Qt.AlignmentFlag.AlignRight, f"{y1:.3g}")
    p.drawText(
        QRectF(area.left(), box.bottom() - 6, 40, 12), Qt.AlignmentFlag.AlignRight, f"{y0:.3g}"
    )
    p.drawText(
        QRectF(box.left(), box.bottom() + 2, 60, 12), Qt.AlignmentFlag.AlignLeft, str(int(x0))
    )
    p.drawText(
        QRectF(box.right() - 60, box.bottom() + 2, 60, 12),
        Qt.AlignmentFlag.AlignRight,
        str(int(x1)),
    )
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QPen(QColor(31, 119, 180), 1.2))
    poly = [at(s, v) for s, v in points]
    p.drawPolyline(QPolygonF(poly))
    if markers:
        p.setBrush(QColor(31, 119, 180))
        for q in poly:
            p.drawEllipse(q, 2.5, 2.5)


def fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def scores_table(before, after) -> str:
    rows = [
        ("mIoU, box", "miou_box", "{:.3f}"),
        ("mIoU, 1 click", "miou_click", "{:.3f}"),
        ("mIoU, 5 clicks", "miou_5", "{:.3f}"),
        ("clicks to 85 % IoU", "clicks_to_85", "{:.2f}"),
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
