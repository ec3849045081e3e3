"""The Annotator's "Segment everything" section: automatic masks for the whole image.

The generator runs on the compute thread (it uses the Annotator's predictor and its embedding
cache) with napari's activity bar, this section's progress bar and a Cancel. Its masks go
into a new ``<image> everything`` Labels layer, one id per instance, which becomes the image's
target, so the usual keys correct it: delete a label, refine it with ``g``, add missed
objects with clicks. Or, unticked, they are added to the current target on its unlabelled
pixels only (all pixels when "new objects may overwrite others" is ticked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
)

from sam_pets._napari import _layers as L
from sam_pets._napari._workers import job_worker, start_on_compute_thread
from sam_pets.predict.everything import EverythingParams, iter_everything
from sam_pets.predict.segment_job import labels_from_masks
from sam_pets.progress import Progress

if TYPE_CHECKING:
    from sam_pets._napari._annotator import AnnotatorWidget


def _segment(predictor, pixels: np.ndarray, params: EverythingParams):
    """The generator job; the predictor gets the annotated image back at the end."""
    try:
        masks = yield from iter_everything(predictor, pixels, params)
    finally:
        predictor.set_image(pixels)  # crops replaced it; the cache has the image
    return masks, labels_from_masks(masks, pixels.shape[:2])


class EverythingBox(QGroupBox):
    """The section; ``owner`` is the Annotator dock it drives."""

    def __init__(self, owner: AnnotatorWidget) -> None:
        super().__init__("Segment everything")
        self._owner = owner
        self.worker = None
        self._job = None  # (image layer, plane) the running job is for
        self._cancelled = False  # Cancel was pressed for the running job
        defaults = EverythingParams()
        form = QFormLayout(self)
        self.points_spin = QSpinBox()
        self.points_spin.setRange(1, 128)
        self.points_spin.setValue(defaults.points_per_side)
        self.points_spin.setToolTip("clicks per side of the grid (points_per_side)")
        self.iou_spin = self._fraction(defaults.pred_iou_thresh, "keep masks above this IoU")
        self.stability_spin = self._fraction(
            defaults.stability_score_thresh, "keep masks at least this stable"
        )
        self.new_layer_check = QCheckBox("into a new labels layer")
        self.new_layer_check.setChecked(True)
        self.new_layer_check.setToolTip(
            "On: a new '<image> everything' layer, which becomes the image's target. Off: "
            "added to the target layer on its unlabelled pixels (all pixels when 'new "
            "objects may overwrite others' is ticked)"
        )
        self.run_button = QPushButton("Segment everything")
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.cancel())
        self.progress_bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form.addRow("Points per side", self.points_spin)
        form.addRow("Predicted IoU >", self.iou_spin)
        form.addRow("Stability >=", self.stability_spin)
        form.addRow(self.new_layer_check)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        form.addRow(self.progress_bar)
        form.addRow(self.status)

    @staticmethod
    def _fraction(value: float, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(0.0, 1.0)
        spin.setSingleStep(0.05)
        spin.setDecimals(2)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    def params(self) -> EverythingParams:
        """The generator's parameters from the section's fields (Meta's for the rest)."""
        return EverythingParams(
            points_per_side=self.points_spin.value(),
            pred_iou_thresh=self.iou_spin.value(),
            stability_score_thresh=self.stability_spin.value(),
        )

    def run(self):
        """Start the generator on the current image plane; returns the worker (or None)."""
        owner = self._owner
        image = owner.image_layer()
        if owner.predictor is None or image is None:
            show_warning("sam-pets: load a model and open an image first")
            return None
        if self.worker is not None:
            return None
        plane = owner.plane(image)
        pixels = L.plane_data(image, plane)
        self._job = (image, plane)
        self.worker = job_worker(
            _segment,
            owner.predictor,
            pixels,
            self.params(),
            _progress={"desc": f"Segmenting everything in {image.name}", "total": 0},
        )
        alive = owner.life.alive
        self.worker.yielded.connect(alive(self._on_progress))
        self.worker.returned.connect(alive(self._on_result))
        self.worker.errored.connect(alive(self._on_error))
        self.worker.finished.connect(alive(self._on_finished))
        self._cancelled = False
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("starting…")
        start_on_compute_thread(self.worker)
        return self.worker

    def cancel(self) -> None:
        """Stop after the current point batch; nothing is written."""
        if self.worker is not None:
            self._cancelled = True
            self.worker.quit()
            self.cancel_button.setEnabled(False)
            self.status.setText("cancelling…")

    def _on_progress(self, rec: Progress) -> None:
        if self._cancelled:  # a batch that was running when Cancel was pressed
            return
        if rec.total:
            self.progress_bar.setMaximum(rec.total)
            self.progress_bar.setValue(rec.step)
        self.status.setText(rec.message)

    def _on_result(self, result) -> None:
        if self._cancelled:
            return  # finished just as Cancel was pressed: still nothing is written
        masks, labels = result
        image, plane = self._job
        if image not in self._owner.viewer.layers:
            return  # the image was closed meanwhile
        if not masks:
            self.status.setText("no mask passed the thresholds; lower them and run again")
            show_warning("sam-pets: segment everything found no mask; lower the thresholds")
            return
        if self.new_layer_check.isChecked():
            target = self._new_layer(image, plane, labels)
            written = int(np.count_nonzero(np.bincount(labels.ravel())[1:]))
        else:
            target = self._owner.targets.ensure(image)
            written = self._merge(target, plane, labels)
        target.refresh()
        self._owner.targets.mark_annotated(image, target)
        self._owner.journal_commit(image, target, plane, None)
        text = f"{written} objects from {len(masks)} masks into {target.name!r}"
        self.status.setText(text)
        show_info(f"sam-pets: {text}")

    def _new_layer(self, image, plane, labels: np.ndarray):
        owner = self._owner
        layer = L.make_labels(image, f"{image.name} everything", dtype=labels.dtype)
        if plane:
            layer.data[plane] = labels
        else:
            layer.data = labels
        with owner.adding_layers():
            owner.viewer.add_layer(layer)
        owner.targets.assign(image, layer)
        owner.refresh_layer_choices()
        owner.targets.show()
        return layer

    def _merge(self, target, plane, labels: np.ndarray) -> int:
        """Add the masks to ``target`` under new ids; returns the objects written."""
        view = target.data[plane] if plane else target.data
        overwrite = self._owner.ui.overwrite_check.isChecked()
        free = labels > 0 if overwrite else (labels > 0) & (view == 0)
        ids = np.unique(labels[free])
        if not len(ids):
            return 0
        base = int(target.data.max()) if target.data.size else 0  # ids are per layer
        needed = base + len(ids)
        if needed > np.iinfo(target.data.dtype).max:
            target.data = target.data.astype(np.int64)
            view = target.data[plane] if plane else target.data
        lookup = np.zeros(int(labels.max()) + 1, dtype=np.int64)
        lookup[ids] = base + 1 + np.arange(len(ids))
        view[free] = lookup[labels[free]]
        return len(ids)

    def _on_error(self, error: Exception) -> None:
        self.status.setText(f"failed: {error}")
        show_error(f"sam-pets: segment everything failed: {error}")

    def _on_finished(self) -> None:
        if self._cancelled:
            self.status.setText("cancelled; nothing written")
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
