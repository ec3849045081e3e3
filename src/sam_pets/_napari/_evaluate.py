"""The Evaluate dock: score a model on a dataset folder in the background, inspect the worst.

The evaluation is :func:`sam_pets.eval.evaluate.iter_evaluate` run in a napari thread worker
(:func:`evaluate_job` is the headless generator it runs). The dock shows its progress, then a
metrics table and the plots; the worst cases open as layers (image, ground truth, prediction).
The default model is the Annotator's current one (a fresh predictor over the same weights, so
the Annotator's embedding is left alone), if an Annotator dock with a model is open.
"""

from __future__ import annotations

import tempfile
from collections.abc import Generator
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtGui import QPixmap
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sam_pets._napari._models import available_devices, load_choice_job, model_choices
from sam_pets._napari._widgets import DockLifetime, folder_row, stack_sections, weak_slot
from sam_pets._napari._workers import (
    free_compute_team,
    function_worker,
    job_worker,
    start_in_order,
    start_job,
)
from sam_pets.eval.evaluate import EvalConfig, EvalResult, NamedModel, iter_evaluate
from sam_pets.eval.protocols import DEFAULT_PROTOCOLS, PROTOCOLS
from sam_pets.progress import Progress

ANNOTATOR_MODEL = "Annotator's current model"
NO_COMPARE = "(none)"
TABLE_COLUMNS = (
    "model",
    "protocol",
    "mIoU",
    "mDice",
    "pixel acc.",
    "3-cat mIoU",
    "NoC@85",
    "NoC@90",
)


def annotator_predictor(viewer):
    """The predictor of the viewer's Annotator dock, or None (the link is optional)."""
    from sam_pets._napari import _annotator

    finder = getattr(_annotator, "annotator_for", None)
    if finder is not None:
        widget = finder(viewer)
    else:  # older annotator module: look through the open docks
        docks = getattr(viewer.window, "dock_widgets", {}) or {}
        widget = next(
            (w for w in docks.values() if isinstance(w, _annotator.AnnotatorWidget)), None
        )
    return getattr(widget, "predictor", None) if widget is not None else None


# Zoom menu entries -> the ``zoom`` argument of :func:`evaluate_job`.
ZOOM_CHOICES = {"model default": None, "on": True, "off": False}


def evaluate_job(
    choices: list,
    dataset: str,
    cfg: EvalConfig,
    device: str = "auto",
    zoom: bool | None = None,
) -> Generator[Progress, None, EvalResult]:
    """Load the models, then evaluate (the worker's generator).

    Args:
        choices: Per model, a model-picker entry (str) or an existing predictor.
        dataset: Canonical dataset folder.
        cfg: What to evaluate.
        device: Device for models loaded here.
        zoom: Zoom-in prediction on or off; None: the model's default, or the annotator's
            setting for its predictor.
    """
    from sam_pets.predict import ImagePredictor
    from sam_pets.predict.zoom import default_for

    models = []
    for i, choice in enumerate(choices):
        if isinstance(choice, str):
            model = yield from load_choice_job(choice)
            z = default_for(model) if zoom is None else zoom
            predictor = ImagePredictor(model, device=device, cache_size=2, zoom=z)
            label = Path(choice).stem if Path(choice).is_file() else choice
        else:  # share the weights, not the predictor: the annotator keeps its embedding
            z = choice.zoom if zoom is None else zoom
            predictor = ImagePredictor(
                choice.model,
                device=choice.device,
                precision=choice.precision,
                cache_size=2,
                zoom=z,
            )
            label = "annotator"
        label = label if label not in [m.label for m in models] else f"{label} ({i + 1})"
        info = {
            "source": label,
            "config": predictor.model.cfg.name,
            "zoom": predictor.zoom,
            "zoom_candidates": bool(predictor.zoom and predictor.zoom_candidates),
        }
        models.append(NamedModel(label, predictor, info))
    return (yield from iter_evaluate(models, dataset, cfg))


def _evaluate_with_plots(
    choices: list,
    dataset: str,
    cfg: EvalConfig,
    device: str,
    figures: str,
    zoom: bool | None = None,
) -> Generator[Progress, None, tuple[EvalResult, list[tuple[str, str]]]]:
    """:func:`evaluate_job`, then its plots drawn into ``figures`` (in the worker).

    Returns:
        The result and the plots as (file name in ``figures``, caption).
    """
    from sam_pets.eval.html import ReportFiles
    from sam_pets.eval.report import write_plots

    result = yield from evaluate_job(choices, dataset, cfg, device, zoom)
    # matplotlib holds the GIL for hundreds of ms a figure: never on the GUI thread
    return result, write_plots(result.summary(), ReportFiles(figures))


class EvaluateWidget(QWidget):
    """Dock widget: evaluate a model on a dataset folder; table, plots, worst cases."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.life = DockLifetime(self)
        self.worker = None
        self._cancelled = False
        self.result: EvalResult | None = None
        self._figures = tempfile.TemporaryDirectory(prefix="sam_pets_eval_")
        self._saving: set[str] = set()  # report folders being written
        self._build_ui()
        self.refresh_models()
        self.life.undocked.connect(self._on_undocked)
        self.destroyed.connect(self._on_destroyed)

    # --- layout -------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        stack_sections(
            self, self._input_box(), self._protocol_box(), self._run_box(), self._result_box()
        )

    def _input_box(self) -> QGroupBox:
        box = QGroupBox("Data and model")
        form = QFormLayout(box)
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("canonical dataset folder (sam-pets convert ...)")
        form.addRow("Dataset", folder_row(self.dataset_edit, "Dataset folder"))
        self.model_combo, self.compare_combo = QComboBox(), QComboBox()
        self.model_combo.setToolTip("The Annotator's model when one is loaded, else a picker")
        self.compare_combo.setToolTip("A second model side by side (before/after fine-tuning)")
        refresh = QPushButton("\u21bb")
        refresh.setToolTip("Refresh the model lists (e.g. after loading a model in the Annotator)")
        refresh.clicked.connect(self.refresh_models)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(refresh)
        form.addRow("Model", row)
        form.addRow("Compare with", self.compare_combo)
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        form.addRow("Device", self.device_combo)
        self.zoom_combo = QComboBox()
        self.zoom_combo.addItems(list(ZOOM_CHOICES))
        self.zoom_combo.setToolTip(
            "Zoom-in prediction (a second pass in a crop around the box or the first mask): "
            "the model's default (the Annotator's setting for its model), on or off"
        )
        form.addRow("Zoom in", self.zoom_combo)
        return box

    def _protocol_box(self) -> QGroupBox:
        box = QGroupBox("Protocol")
        form = QFormLayout(box)
        self.protocol_checks = {p: QCheckBox(p) for p in PROTOCOLS}
        row = QHBoxLayout()
        for p, check in self.protocol_checks.items():
            check.setChecked(p in DEFAULT_PROTOCOLS)
            row.addWidget(check)
        self.protocol_checks["everything"].setToolTip(
            "segment everything (Meta's generator parameters): mIoU is each object's best "
            "IoU over the proposals; the saved report adds COCO mask AP and AR"
        )
        form.addRow(row)
        self.clicks_spin = _spin(1, 50, 20, "correction clicks k (NoC is capped at 20)")
        self.limit_spin = _spin(0, 100000, 0, "evaluate only the first N images (0: all)")
        self.split_combo = QComboBox()
        self.split_combo.addItems(["all", "val", "train", "val_tiny", "train_tiny"])
        form.addRow("Clicks", self.clicks_spin)
        form.addRow("Images (0 = all)", self.limit_spin)
        form.addRow("Split", self.split_combo)
        return box

    def _run_box(self) -> QGroupBox:
        box = QGroupBox("Run")
        lay = QVBoxLayout(box)
        row = QHBoxLayout()
        self.run_button, self.cancel_button = QPushButton("Evaluate"), QPushButton("Cancel")
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        self.progress_bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.status)
        return box

    def _result_box(self) -> QGroupBox:
        box = QGroupBox("Results")
        lay = QVBoxLayout(box)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        lay.addWidget(self.table)
        self.plot_labels = [QLabel(), QLabel()]
        for lab in self.plot_labels:
            lab.setScaledContents(False)
            lay.addWidget(lab)
        row = QHBoxLayout()
        self.worst_spin = _spin(1, 50, 5, "how many worst cases to open")
        self.worst_button = QPushButton("Open worst cases as layers")
        self.worst_button.setEnabled(False)
        self.worst_button.clicked.connect(weak_slot(self, "open_worst"))
        row.addWidget(self.worst_spin)
        row.addWidget(self.worst_button)
        lay.addLayout(row)
        self.save_button = QPushButton("Save HTML report…")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._choose_report_dir)
        lay.addWidget(self.save_button)
        return box

    # --- actions ------------------------------------------------------------------------------
    def refresh_models(self) -> None:
        """Fill the model pickers (the Annotator's model first when there is one)."""
        entries = model_choices()
        if annotator_predictor(self.viewer) is not None:
            entries = [ANNOTATOR_MODEL, *entries]
        for combo, extra in ((self.model_combo, []), (self.compare_combo, [NO_COMPARE])):
            current = combo.currentText()
            combo.clear()
            combo.addItems(extra + entries)
            if current in extra + entries:
                combo.setCurrentText(current)

    def config(self) -> EvalConfig:
        """The :class:`EvalConfig` of the current settings."""
        protocols = tuple(p for p, c in self.protocol_checks.items() if c.isChecked())
        return EvalConfig(
            protocols=protocols or ("box",),
            max_clicks=self.clicks_spin.value(),
            split=self.split_combo.currentText(),
            limit=self.limit_spin.value() or None,
        )

    def run(self) -> None:
        """Start the evaluation in a worker."""
        dataset = self.dataset_edit.text().strip()
        if not dataset or not Path(dataset).is_dir():
            self.status.setText("dataset folder not found")
            show_error(f"sam-pets: dataset folder not found: {dataset!r}")
            return
        self._clear_result()  # a cancelled or failed run must not show the last one's numbers
        self._cancelled = False
        choices = [self._resolve(self.model_combo.currentText())]
        if self.compare_combo.currentText() != NO_COMPARE:
            choices.append(self._resolve(self.compare_combo.currentText()))
        self.worker = job_worker(
            _evaluate_with_plots,
            choices,
            dataset,
            self.config(),
            self.device_combo.currentText(),
            self._figures.name,
            ZOOM_CHOICES[self.zoom_combo.currentText()],
            _progress={"desc": "Evaluating", "total": 0},
        )
        self.worker.yielded.connect(self.life.alive(self._on_progress))
        self.worker.returned.connect(self.life.alive(self._on_result))
        self.worker.errored.connect(self.life.alive(self._on_error))
        self.worker.finished.connect(self.life.alive(self._on_finished))
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("starting…")
        free_compute_team()
        start_job(self.worker)

    def _clear_result(self) -> None:
        self.result = None
        self.table.setRowCount(0)
        for lab in self.plot_labels:
            lab.clear()
            lab.setToolTip("")
        self.worst_button.setEnabled(False)
        self.save_button.setEnabled(False)

    def cancel(self) -> None:
        """Ask the worker to stop at its next image."""
        if self.worker is not None and not self.run_button.isEnabled():
            self.worker.quit()
            self._cancelled = True
            self.cancel_button.setEnabled(False)
            self.status.setText("cancelling (after the current image)…")

    def _resolve(self, choice: str):
        return annotator_predictor(self.viewer) if choice == ANNOTATOR_MODEL else choice

    def _on_progress(self, rec: Progress) -> None:
        if self._cancelled:
            return  # the image that was under way when Cancel was pressed
        if rec.notice:  # e.g. an unreadable item, skipped
            show_warning(f"sam-pets: {rec.notice}")
        if rec.total:
            self.progress_bar.setMaximum(rec.total)
            self.progress_bar.setValue(rec.step)
        metrics = " ".join(f"{k}={v:.3f}" for k, v in rec.metrics.items() if isinstance(v, float))
        self.status.setText(f"{rec.message} {metrics}".strip())

    def _on_result(self, out: tuple[EvalResult, list[tuple[str, str]]]) -> None:
        result, figures = out
        self.result = result
        summary = result.summary()
        self._fill_table(summary)
        self._show_plots(figures)
        self.worst_button.setEnabled(result.config.grid_protocol is not None)
        self.save_button.setEnabled(True)
        skipped = len(summary.get("skipped") or ())
        note = f" ({skipped} unreadable, skipped)" if skipped else ""
        self.status.setText(f"{result.n_images} images{note} in {result.timing['total']:.1f} s")
        show_info(f"sam-pets: evaluated {result.n_images} images{note}")

    def _on_error(self, error: Exception) -> None:
        self._cancelled = False  # the status says why it ended
        self.status.setText(f"failed: {error}")
        show_error(f"sam-pets: evaluation failed: {error}")

    def _on_finished(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self._cancelled and self.result is None:
            self.status.setText("cancelled")

    def _fill_table(self, summary: dict) -> None:
        rows = []
        for model, res in summary["results"].items():
            for p, s in res.items():
                three = (s.get("three_class") or {}).get("miou")
                rows.append(
                    [
                        model,
                        p,
                        s.get("miou"),
                        s.get("mdice"),
                        s.get("accuracy"),
                        three,
                        s.get("noc85"),
                        s.get("noc90"),
                    ]
                )
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                text = "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def _show_plots(self, figures: list[tuple[str, str]]) -> None:
        for lab, (name, caption) in zip(self.plot_labels, figures, strict=False):
            pix = QPixmap(str(Path(self._figures.name) / name))
            lab.setPixmap(pix.scaledToWidth(360))
            lab.setToolTip(caption)

    def open_worst(self, n: int | None = None) -> list:
        """Add the ``n`` worst objects (first model, grid protocol) as layers; returns them.

        ``n`` defaults to the dock's "worst cases" number.
        """
        from sam_pets.data.formats import sam2_folder as canon
        from sam_pets.eval.items import load_item

        if n is None:
            n = self.worst_spin.value()
        res = self.result
        if res is None or res.config.grid_protocol is None:
            return []
        label, p = next(iter(res.models)), res.config.grid_protocol
        rows = sorted(
            (r for r in res.rows if r["model"] == label and r["protocol"] == p),
            key=lambda r: r["iou"],
        )[:n]
        records = canon.items_by_name(canon.load_manifest(res.dataset))
        layers = []
        for rank, r in enumerate(rows, 1):
            item = load_item(res.dataset, records[r["item"]])
            k = item.object_ids.index(r["object_id"])
            pred = res.mask(label, item.name, k, item.masks[k].shape)
            name = f"worst {rank}: {item.name} (IoU {r['iou']:.2f})"
            layers.append(self.viewer.add_image(item.image, name=name, rgb=True))
            gt = np.where(item.ignore, 3, item.masks[k].astype(np.uint8))
            layers.append(self.viewer.add_labels(gt, name=f"{name} truth", opacity=0.4))
            layers.append(
                self.viewer.add_labels(
                    pred.astype(np.uint8) * 2, name=f"{name} {p} prediction", opacity=0.5
                )
            )
        return layers

    def save_report(self, folder: str):
        """Write the report of the last run into ``folder`` in a worker (never over a report).

        Returns:
            The worker, or None when there is nothing to save or ``folder`` holds a report.
        """
        from sam_pets.eval.html import check_report_dir
        from sam_pets.eval.report import write_eval_report

        if self.result is None:
            return None
        key = str(Path(folder).resolve())
        try:
            if key in self._saving:  # its files are not all there yet: the check would pass
                raise ValueError(f"a report is still being written into {folder}")
            check_report_dir(folder, overwrite=False, replace_hint="choose another folder")
        except ValueError as e:
            show_error(f"sam-pets: {e}")
            return None
        worker = function_worker(write_eval_report, self.result, folder)
        self._saving.add(key)
        worker.returned.connect(self.life.alive(lambda p: self.status.setText(f"report: {p}")))
        worker.errored.connect(self.life.alive(lambda e: show_error(f"sam-pets: report: {e}")))
        worker.finished.connect(lambda: self._saving.discard(key))
        start_in_order(worker)
        return worker

    # --- plumbing -----------------------------------------------------------------------------
    def _choose_report_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder for the report")
        if path:
            self.save_report(path)

    def _on_destroyed(self, *args) -> None:
        self.life.closed = True
        self._on_undocked()
        self._figures.cleanup()

    def _on_undocked(self) -> None:
        """The dock was closed: stop the evaluation."""
        if self.worker is not None:
            self.worker.quit()


def _spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin
