"""The Annotator's "Propagate" section: objects of one slice tracked through a stack or video.

The objects of the current slice in the target Labels layer (all of them, or the selected
label) are the prompts: each one's mask conditions SAM 2's memory on that slice, and the
objects are tracked forward, backward or both along the stack's slice axis (the one the
viewer steps through nearest the image plane). The job runs on the compute thread with
napari's activity bar, this section's progress bar and a Cancel; each slice's labels are
written as they arrive.

Written labels never cover what a person committed: on every slice, only the pixels that no
object holds, or that an earlier propagation of the same objects wrote, are changed. To
correct, fix the object on any slice and press Propagate again from there: that slice
conditions the memory and only the slices that follow it (in the chosen direction) change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
)

from sam_pets._napari._workers import job_worker, start_on_compute_thread
from sam_pets.progress import Progress

if TYPE_CHECKING:
    from sam_pets._napari._annotator import AnnotatorWidget

DIRECTIONS = {"forward and backward": "both", "forward": "forward", "backward": "backward"}
PRECISION_CHOICES = ("fp32", "bf16")  # VideoPredictor's precision


class _Slices:
    """Slices of a layer's data along one axis, the other leading indices fixed (lazy)."""

    def __init__(self, data, prefix: tuple[int, ...], n: int) -> None:
        self.data, self.prefix, self.n = data, prefix, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, t: int) -> np.ndarray:
        return np.asarray(self.data[(*self.prefix, t)])


@dataclass
class SliceResult:
    """Labels of one slice (``obj_ids`` where they won, 0 elsewhere) and the progress."""

    t: int
    labels: np.ndarray
    obj_ids: list[int]
    progress: Progress


def has_video_weights(model) -> bool:
    """Whether a model carries SAM 2's memory weights (Meta's checkpoints do)."""
    return bool(getattr(model, "extra_state", None))


def default_precision() -> str:
    """The section's first choice: bf16 on a machine whose only compute is a CPU with AMX.

    There bf16 tracks a slice about twice as fast as fp32; elsewhere fp32 (Meta's results).
    """
    import torch

    from sam_pets.model.device import cpu_has_fast_bf16

    return "bf16" if not torch.cuda.is_available() and cpu_has_fast_bf16() else "fp32"


def _track(
    model,
    frames,
    masks: dict[int, np.ndarray],
    start: int,
    direction: str,
    cancel,
    precision: str = "fp32",
):
    """The job: condition on ``masks`` at slice ``start``, propagate, yield each slice."""
    from sam_pets.predict.track_job import labels_from_logits
    from sam_pets.predict.video import VideoPredictor

    pred = VideoPredictor(model, frames, precision=precision)
    for obj_id, m in masks.items():
        pred.add_mask(start, obj_id, m)
    n = len(frames)
    runs = [r for r, on in ((False, direction != "backward"), (True, direction != "forward")) if on]
    total = sum(n - start - 1 if not r else start for r in runs)
    yield SliceResult(start, None, [], Progress(0, total, f"tracking {len(masks)} object(s)"))
    step = 0
    for reverse in runs:
        for t, ids, logits in pred.propagate(start, reverse=reverse):
            if t == start:
                continue  # the person's own masks
            step += 1
            lab = labels_from_logits(logits, ids)
            yield SliceResult(t, lab, ids, Progress(step, total, f"slice {t}"))
            if cancel.is_set():
                return step
    return step


class PropagateBox(QGroupBox):
    """The section; ``owner`` is the Annotator dock it drives."""

    def __init__(self, owner: AnnotatorWidget) -> None:
        super().__init__("Propagate through the stack")
        self._owner = owner
        self.worker = None
        self._cancel = threading.Event()
        self._job = None  # (image, target, prefix, start, axis length)
        self._auto: dict[tuple, np.ndarray] = {}  # (target id, slice index) -> pixels we wrote
        form = QFormLayout(self)
        self.direction_combo = QComboBox()
        self.direction_combo.addItems(list(DIRECTIONS))
        self.scope_combo = QComboBox()
        self.scope_combo.addItems(["all objects on this slice", "the selected label"])
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(list(PRECISION_CHOICES))
        self.precision_combo.setCurrentText(default_precision())
        self.precision_combo.setToolTip(
            "fp32: the results of Meta's predictor. bf16 (autocast): about twice as fast on "
            "a CPU with AMX (recent Intel Xeons), where it is the default; its masks differ "
            "from fp32's on about 0.5 % of the pixels, at the edges."
        )
        self.run_button = QPushButton("Propagate")
        self.run_button.setToolTip(
            "Track the objects of the current slice through the stack with SAM 2's memory "
            "(needs a model with video weights, e.g. sam2.1_hiera_tiny). Committed objects "
            "on other slices are never overwritten."
        )
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.cancel())
        self.progress_bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        form.addRow("Direction", self.direction_combo)
        form.addRow("Objects", self.scope_combo)
        form.addRow("Precision", self.precision_combo)
        form.addRow(buttons)
        form.addRow(self.progress_bar)
        form.addRow(self.status)

    def run(self):
        """Start propagating from the current slice; returns the worker (or None)."""
        owner = self._owner
        image = owner.image_layer()
        if owner.predictor is None or image is None:
            show_warning("sam-pets: load a model and open a stack first")
            return None
        if self.worker is not None:
            return None
        model = owner.predictor.model
        if not has_video_weights(model):
            self.status.setText(
                "this model has no video weights (the built-in pets model has none): load a "
                "SAM 2 checkpoint such as sam2.1_hiera_tiny to propagate"
            )
            return None
        plane = owner.plane(image)
        if not plane:
            self.status.setText("propagation needs a stack or a time series (one 2-D image here)")
            return None
        target = owner.target_layer()
        view = None if target is None else np.asarray(target.data[plane])
        if view is None or not view.any():
            self.status.setText("commit at least one object on this slice first")
            return None
        if self.scope_combo.currentIndex() == 1:
            ids = [int(target.selected_label)] if (view == target.selected_label).any() else []
        else:
            ids = [int(i) for i in np.unique(view) if i]
        if not ids:
            self.status.setText("the selected label has no pixels on this slice")
            return None
        prefix, start = plane[:-1], plane[-1]
        n = image.data.shape[len(prefix)]
        frames = _Slices(image.data, prefix, n)
        masks = {i: view == i for i in ids}
        direction = DIRECTIONS[self.direction_combo.currentText()]
        self._cancel = threading.Event()
        self._job = (image, target, prefix, start, n)
        self.worker = job_worker(
            _track,
            model,
            frames,
            masks,
            start,
            direction,
            self._cancel,
            self.precision_combo.currentText(),
            _progress={"desc": f"Propagating in {image.name}", "total": 0},
        )
        alive = owner.life.alive
        self.worker.yielded.connect(alive(self._on_slice))
        self.worker.errored.connect(alive(self._on_error))
        self.worker.finished.connect(alive(self._on_finished))
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"tracking {len(ids)} object(s) from slice {start}…")
        start_on_compute_thread(self.worker)
        return self.worker

    def cancel(self) -> None:
        """Stop after the current slice; slices already written stay."""
        if self.worker is not None:
            self._cancel.set()
            self.cancel_button.setEnabled(False)
            self.status.setText("cancelling…")

    def _on_slice(self, res: SliceResult) -> None:
        rec = res.progress
        if rec.total:
            self.progress_bar.setMaximum(rec.total)
            self.progress_bar.setValue(rec.step)
        if res.labels is None:
            return
        image, target, prefix, _, _ = self._job
        if target not in self._owner.viewer.layers:
            return
        plane = (*prefix, res.t)
        self.write_slice(target, plane, res.labels, res.obj_ids)
        self._owner.journal_commit(image, target, plane, None)
        if not self._cancel.is_set():
            self.status.setText(rec.message)

    def write_slice(self, target, plane, labels: np.ndarray, obj_ids: list[int]) -> int:
        """Write one slice's tracked labels under the rule in the module docstring."""
        key = (id(target), plane)
        view = target.data[plane]
        auto = self._auto.get(key)
        if auto is None or auto.shape != view.shape:
            auto = np.zeros(view.shape, bool)
        ours = auto & np.isin(view, obj_ids)
        view[ours] = 0  # this propagation replaces what an earlier one wrote for these objects
        write = (labels > 0) & (view == 0)
        view[write] = labels[write]
        self._auto[key] = (auto & (view != 0)) | write
        target.refresh()
        return int(write.sum())

    def _on_error(self, error: Exception) -> None:
        self.status.setText(f"failed: {error}")
        show_error(f"sam-pets: propagation failed: {error}")

    def _on_finished(self) -> None:
        done = self.progress_bar.value()
        if self._cancel.is_set():
            self.status.setText(f"cancelled after {done} slice(s); those stay written")
        elif not self.status.text().startswith("failed"):
            self.status.setText(f"propagated through {done} slice(s)")
            show_info(f"sam-pets: propagated through {done} slice(s)")
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
