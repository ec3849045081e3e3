"""The Fine-tune dock: train on what was annotated while annotating goes on.

Training runs a :class:`~sam_pets.train.finetune.FinetuneJob` in a napari thread worker on a
snapshot of the annotations, on a background thread (one CPU core, lower priority: the
Annotator's clicks keep their speed); the dock shows progress (also in napari's activity dock), live
loss / validation-IoU curves, images/s and ETA, then the held-out scores before and after,
and can hot-swap the new model into the Annotator (and back).
"""

from __future__ import annotations

import time
from pathlib import Path

from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from sam_pets._napari._annotator import annotator_for
from sam_pets._napari._finetune_view import CurvesView, fmt_time, scores_table
from sam_pets._napari._widgets import DockLifetime, folder_row, stack_sections, weak_slot
from sam_pets._napari._workers import (
    background_worker,
    function_worker,
    start_in_background,
    start_on_compute_thread,
)
from sam_pets.train.finetune import (
    PRESETS,
    AnnotatedImage,
    FinetuneJob,
    can_resume,
    default_root,
    new_job_folder,
)

PARTS = (
    ("image_encoder", "image encoder"),
    ("prompt_encoder", "prompt encoder"),
    ("mask_decoder", "mask decoder"),
)
UI_INTERVAL_S = 0.25


class FinetuneWidget(QWidget):
    """Dock widget: fine-tune the Annotator's model on this session's annotations."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.life = DockLifetime(self)
        self.job: FinetuneJob | None = None
        self.worker = None
        self.result = None
        self.folder: Path | None = None  # folder of the last job (for Resume)
        self.previous_model = None
        self.history: dict[str, list[tuple[int, float]]] = {"loss": [], "val": []}
        self._pbar = None
        self._last_ui = 0.0
        self._commits = 0
        self._watched = None
        self._build_ui()
        self._apply_preset()
        self.life.undocked.connect(self._on_undocked)
        self.destroyed.connect(self._on_destroyed)
        # an Annotator opened (or reopened) after this dock adds its prompt layers before its
        # first commit: that is when "Auto after N commits" starts counting its commits
        self.viewer.layers.events.inserted.connect(self._watch_commits)
        self._watch_commits()

    # --- layout -------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        stack_sections(
            self, self._data_box(), self._settings_box(), self._run_box(), self._result_box()
        )

    def _data_box(self) -> QGroupBox:
        box = QGroupBox("Training data")
        form = QFormLayout(box)
        self.session_check = QCheckBox("this session's committed objects")
        self.session_check.setChecked(True)
        self.dataset_dir = QLineEdit()
        self.dataset_dir.setPlaceholderText("optional: an exported dataset folder")
        row = folder_row(self.dataset_dir, "Dataset folder")
        self.val_spin = QSpinBox()
        self.val_spin.setRange(0, 50)
        self.val_spin.setValue(20)
        self.val_spin.setSuffix(" %")
        self.val_spin.setToolTip(
            "Share of the annotated images held out to measure the gain "
            "(at least one when there are two or more)"
        )
        form.addRow(self.session_check)
        form.addRow("Dataset", row)
        form.addRow("Held out", self.val_spin)
        return box

    def _settings_box(self) -> QGroupBox:
        box = QGroupBox("Settings")
        form = QFormLayout(box)
        self.preset_combo = QComboBox()
        for key, preset in PRESETS.items():
            self.preset_combo.addItem(preset.title, key)
        self.preset_combo.currentIndexChanged.connect(weak_slot(self, "_apply_preset"))
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 1_000_000)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(7)
        self.lr_spin.setRange(1e-7, 1.0)
        self.lr_spin.setSingleStep(1e-5)
        self.freeze_checks = {}
        freeze_row = QHBoxLayout()
        for key, title in PARTS:
            check = QCheckBox(title)
            check.setToolTip(f"keep the {title} fixed")
            self.freeze_checks[key] = check
            freeze_row.addWidget(check)
        self.lora_spin = QSpinBox()
        self.lora_spin.setRange(0, 64)
        self.lora_spin.setSpecialValueText("off")
        self.root_dir = QLineEdit(str(default_root()))
        self.root_dir.setToolTip("Each run gets its own clearly named sub-folder here")
        row = folder_row(self.root_dir, "Folder for fine-tune runs")
        self.auto_spin = QSpinBox()
        self.auto_spin.setRange(0, 1000)
        self.auto_spin.setSpecialValueText("off")
        self.auto_spin.setToolTip("Start a fine-tune automatically after this many commits")
        self.auto_spin.valueChanged.connect(weak_slot(self, "_watch_commits"))
        form.addRow("Preset", self.preset_combo)
        form.addRow("Steps", self.steps_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Freeze", freeze_row)
        form.addRow("LoRA rank", self.lora_spin)
        form.addRow("Runs folder", row)
        form.addRow("Auto after N commits", self.auto_spin)
        return box

    def _run_box(self) -> QGroupBox:
        box = QGroupBox("Run")
        layout = QVBoxLayout(box)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current step; the last checkpoint is kept")
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the last cancelled run exactly where it stopped")
        self.resume_button.clicked.connect(self.resume)
        for b in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(b)
        self.progress_bar = QProgressBar()
        self.status = QLabel("idle")
        self.status.setWordWrap(True)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addWidget(self._make_plot())
        self._set_running(False)
        return box

    def _make_plot(self) -> QWidget:
        self.plot = CurvesView()
        return self.plot

    def _result_box(self) -> QGroupBox:
        box = QGroupBox("Result")
        layout = QVBoxLayout(box)
        self.result_label = QLabel("no fine-tuned model yet")
        self.result_label.setWordWrap(True)
        buttons = QHBoxLayout()
        self.use_button = QPushButton("Use new model")
        self.use_button.clicked.connect(self.use_new_model)
        self.back_button = QPushButton("Back to previous model")
        self.back_button.clicked.connect(self.use_previous_model)
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.back_button)
        layout.addWidget(self.result_label)
        layout.addLayout(buttons)
        self.use_button.setEnabled(False)
        self.back_button.setEnabled(False)
        return box

    # --- settings -----------------------------------------------------------------------------
    @property
    def preset(self) -> str:
        """Key of the chosen preset."""
        return self.preset_combo.currentData()

    def _apply_preset(self) -> None:
        s = PRESETS[self.preset].settings
        self.steps_spin.setValue(int(s["steps"]))
        self.lr_spin.setValue(float(s["lr"]))
        for key, check in self.freeze_checks.items():
            check.setChecked(key in s["freeze"])
        self.lora_spin.setValue(0)

    def overrides(self) -> dict:
        """The TrainConfig changes the dock's fields make to the preset."""
        return {
            "steps": self.steps_spin.value(),
            "lr": self.lr_spin.value(),
            "freeze": tuple(k for k, c in self.freeze_checks.items() if c.isChecked()),
            "lora_rank": self.lora_spin.value(),
        }

    # --- run ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a fine-tune worker runs."""
        return self.worker is not None

    def start(self) -> None:
        """Snapshot the annotations and start fine-tuning in a worker."""
        if self.running:
            show_warning("sam-pets: a fine-tune is already running")
            return
        annotator = annotator_for(self.viewer)
        if annotator is None or annotator.predictor is None:
            show_warning("sam-pets: open the Annotator and load a model first")
            return
        items = []
        if self.session_check.isChecked():
            items = [
                AnnotatedImage(n, px, lab, meta.get("source"), ignore=meta.get("ignore"))
                for n, px, lab, meta in annotator.annotated_items()
            ]
        dataset = self.dataset_dir.text().strip() or None
        if not items and dataset is None:
            show_warning("sam-pets: nothing to train on yet: commit objects or pick a dataset")
            return
        if dataset is not None and not Path(dataset).is_dir():
            show_error(f"sam-pets: dataset folder not found: {dataset}")
            return
        self._watch_commits()
        predictor = annotator.predictor
        try:
            folder = new_job_folder(
                self.root_dir.text().strip() or default_root(),
                self.preset,
                predictor.model.cfg.name,
            )
            job = FinetuneJob(
                folder,
                predictor.model,
                items,
                dataset,
                self.preset,
                self.overrides(),
                val_fraction=self.val_spin.value() / 100,
                zoom=predictor.zoom,
            )
        except (ValueError, OSError) as e:
            show_error(f"sam-pets: cannot start fine-tuning: {e}")
            return
        self._launch(job, predictor)

    def resume(self) -> None:
        """Continue the last stopped run from its last finished step."""
        if self.running or self.folder is None:
            show_warning("sam-pets: no stopped fine-tune to resume")
            return
        try:
            job = FinetuneJob.resume(self.folder)
        except (ValueError, OSError) as e:
            show_error(f"sam-pets: cannot resume: {e}")
            return
        self._launch(job, None, resumed=True)

    def cancel(self) -> None:
        """Ask the run to stop after the current step."""
        if self.job is not None:
            self.job.stop()
            self.status.setText("stopping (the unfinished step is dropped)…")

    def _launch(self, job: FinetuneJob, predictor, resumed: bool = False) -> None:
        self.job, self.folder = job, job.folder
        if not resumed:
            self.history = {"loss": [], "val": []}
        self.result = None
        self.use_button.setEnabled(False)
        self._pbar = progress(total=0, desc="Fine-tuning")
        worker = background_worker(_run_job, job, predictor)
        worker.yielded.connect(self.life.alive(self._on_progress))
        worker.returned.connect(self.life.alive(self._on_finished))
        worker.errored.connect(self.life.alive(self._on_error))
        worker.finished.connect(self.life.alive(self._on_worker_done))
        self.worker = worker
        self._set_running(True)
        self.status.setText(f"starting in {job.folder}")
        start_in_background(worker)

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.resume_button.setEnabled(not running and self.folder is not None)

    def _on_progress(self, p) -> None:
        if p.notice:  # e.g. an unreadable item, left out of the training set
            show_warning(f"sam-pets: {p.notice}")
        m = p.metrics
        if p.message == "train":
            self.history["loss"].append((p.step, m["loss"]))
        elif p.message == "val":
            self.history["val"].append((p.step, m["val_miou"]))
        now = time.monotonic()
        # every repaint costs the GUI thread (the window is composited with the canvas):
        # at most UI_INTERVAL_S apart, except for validations and the last step
        last = p.message == "val" or (p.total and p.step >= p.total)
        if not last and now - self._last_ui < UI_INTERVAL_S:
            return
        self._last_ui = now
        total = p.total or 0
        self.progress_bar.setMaximum(total)
        self.progress_bar.setValue(min(p.step, total))
        if p.message == "train":
            self.status.setText(
                f"step {p.step}/{total}  loss {m['loss']:.3f}  "
                f"{m['images_per_s']:.1f} images/s  ETA {fmt_time(m['eta_s'])}"
            )
        elif p.message == "val":
            self.status.setText(f"step {p.step}: validation mIoU {m['val_miou']:.3f}")
        elif p.message in ("before", "after"):
            self.status.setText(
                f"scoring the {p.message} model on held-out images {p.step}/{total}"
            )
        else:
            self.status.setText(f"{p.message} {p.step}/{total}")
        self.plot.set_history(self.history)
        pbar = self._pbar
        if pbar is not None:
            # last: the activity dock may process queued events while it repaints (the run
            # can end and close the bar meanwhile): hold the bar, a closed one ignores updates
            if pbar.total != total:
                pbar.total = total
            pbar.set_description(f"Fine-tuning: {p.message}")
            pbar.n = min(p.step, total)
            pbar.refresh()

    def _on_finished(self, result) -> None:
        self.plot.set_history(self.history)
        if result.status == "cancelled":
            self.status.setText(
                f"cancelled at step {result.step}; last checkpoint kept: "
                f"{result.checkpoint} (Resume continues)"
            )
            return
        self.result = result
        self.status.setText(f"{result.status} at step {result.step}: {result.checkpoint}")
        self.result_label.setText(scores_table(result.before, result.after))
        self.use_button.setEnabled(True)
        self.folder = None  # finished: nothing to resume
        show_info(f"sam-pets: fine-tuning finished ({result.checkpoint})")

    def _on_error(self, error: Exception) -> None:
        if self.folder is not None and not can_resume(self.folder):
            self.folder = None  # failed before its first saved step: nothing to resume
        self.status.setText(f"failed: {error}")
        show_error(f"sam-pets: fine-tuning failed: {error}")

    def _on_worker_done(self) -> None:
        self.worker, self.job = None, None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self._set_running(False)

    def _on_destroyed(self, *args) -> None:
        self.life.closed = True
        self._on_undocked()

    def _on_undocked(self) -> None:
        """The dock was closed: stop the run (its last finished step is kept) and the auto loop."""
        if self.job is not None:
            self.job.stop()
        try:
            self.viewer.layers.events.inserted.disconnect(self._watch_commits)
        except (RuntimeError, TypeError, ValueError):
            pass
        self._unwatch()

    # --- model swap ---------------------------------------------------------------------------
    def use_new_model(self) -> None:
        """Hot-swap the fine-tuned model into the Annotator (embeddings redone if needed)."""
        if self.result is None or self.result.model is None:
            show_warning("sam-pets: no fine-tuned model yet")
            return
        self._swap(self.result.model, keep_previous=True)

    def use_previous_model(self) -> None:
        """Switch the Annotator back to the model it had before the last swap."""
        if self.previous_model is None:
            return
        self._swap(self.previous_model, keep_previous=False)

    def _swap(self, model, keep_previous: bool) -> None:
        annotator = annotator_for(self.viewer)
        if annotator is None or annotator.predictor is None:
            show_warning("sam-pets: the Annotator has no model to replace")
            return
        predictor = annotator.predictor
        state = self.previous_model, self.use_button.isEnabled(), self.back_button.isEnabled()
        if keep_previous:
            self.previous_model = predictor.model
        self.use_button.setEnabled(False)  # a second click would take the new model as
        self.back_button.setEnabled(False)  # the previous one once this swap has run
        worker = function_worker(predictor.set_model, model)
        worker.returned.connect(
            self.life.alive(lambda _: self._swapped(annotator, predictor, keep_previous))
        )
        worker.errored.connect(self.life.alive(lambda e: self._swap_failed(e, state, annotator)))
        self.swap_worker = worker
        annotator.model_swapping()  # clicks meanwhile wait for the new model's embedding
        start_on_compute_thread(worker)

    def _swap_failed(self, error: Exception, state: tuple, annotator) -> None:
        if not annotator.life.closed:
            annotator.set_predictor(annotator.predictor)  # ready again with the model it has
        self.previous_model = state[0]
        self.use_button.setEnabled(state[1])
        self.back_button.setEnabled(state[2])
        show_error(f"sam-pets: model swap failed: {error}")

    def _swapped(self, annotator, predictor, new: bool) -> None:
        if not annotator.life.closed:  # its dock may have been closed during the swap
            annotator.set_predictor(predictor)
        self.back_button.setEnabled(new)
        self.use_button.setEnabled(not new and self.result is not None)
        show_info(
            "sam-pets: annotating with the " + ("fine-tuned" if new else "previous") + " model"
        )

    # --- automatic loop -----------------------------------------------------------------------
    def _watch_commits(self, event=None) -> None:
        annotator = annotator_for(self.viewer)
        if annotator is None or annotator is self._watched:
            return
        self._unwatch()
        annotator.committed.connect(self._on_commit)
        self._watched = annotator

    def _unwatch(self) -> None:
        if self._watched is not None:
            try:
                self._watched.committed.disconnect(self._on_commit)
            except (RuntimeError, TypeError):
                pass  # that Annotator is gone
            self._watched = None

    def _on_commit(self, _label: int) -> None:
        n = self.auto_spin.value()
        if not n:
            return
        self._commits += 1
        if self._commits >= n and not self.running:
            self._commits = 0
            self.start()


def _run_job(job: FinetuneJob, predictor):
    """Worker body: attach the annotator's cached embeddings, then run the job."""
    if predictor is not None:
        for item in job.items:
            if item.features is None:
                item.features = predictor.cached_features(item.image)
    return (yield from job)
