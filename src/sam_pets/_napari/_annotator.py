"""The Annotator dock: SAM 2 prompting into a Labels layer, with commit / undo / refine / export.

All model work (loading, image embedding, prediction) runs in napari thread workers; the GUI
thread only reads prompt layers and writes results into layers.
"""

from __future__ import annotations

import dataclasses
import weakref
from pathlib import Path

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sam_pets._napari import _layers as L
from sam_pets._napari._export import export_items, export_job
from sam_pets._napari._models import (
    available_devices,
    load_predictor_job,
    model_choices,
    show_progress,
)
from sam_pets._napari._session import PromptSession
from sam_pets._napari._widgets import DockHelpers
from sam_pets._napari._workers import model_worker, start_on_compute_thread

KEYS = {
    "n": ("commit", "commit the object (new label id, prompts cleared)"),
    "q": ("cycle", "cycle among the candidate masks"),
    "w": ("toggle_polarity", "toggle the polarity of the next point"),
    "Shift-N": ("clear", "clear the prompts (discard the object)"),
    "u": ("undo", "undo the last commit"),
    "g": ("refine", "refine the selected label of the target layer"),
}
_CLICK_DISTANCE = 5  # canvas pixels; a press moved further is a drag, not a click (as napari)
AUTO_RULE = "auto polarity: a click on the current mask removes it, a click off it adds"


_LIVE: weakref.WeakSet = weakref.WeakSet()


def _unwrap(obj):
    """The object behind napari's plugin proxy (proxies differ per access)."""
    return getattr(obj, "__wrapped__", obj)


def annotator_for(viewer) -> AnnotatorWidget | None:
    """The open Annotator dock of ``viewer`` (other docks use its model and annotations)."""
    target = _unwrap(viewer)
    for widget in list(_LIVE):
        if not widget._dead and _unwrap(widget.viewer) is target:
            return widget
    return None


class AnnotatorWidget(DockHelpers, QWidget):
    """Dock widget driving SAM 2 from point and box prompts.

    Signals:
        committed(int): a new object was committed under this label id.
        previewed(): the preview layer now shows the current prediction (or none).
    """

    committed = Signal(int)
    previewed = Signal()

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        _LIVE.add(self)
        self.predictor = None
        self.session = PromptSession()
        self.points = self.boxes = self.preview = None
        self._ready_key = None  # (image layer id, plane) embedded in the predictor
        self._embedding_key = None
        self._busy = self._dirty = False
        self._predicted_key = None  # prompt key of the running / last prediction
        self._pressed = None  # (layer coords, auto label) of a click not yet added
        self._polarity = 1
        self._annotated: dict[str, tuple[Image, Labels]] = {}
        self._adding_layers = False
        self._dead = False
        self.destroyed.connect(self._on_destroyed)
        self.last_worker = None
        self._build_ui()
        self._bind_keys()
        self.viewer.layers.events.inserted.connect(self._refresh_layer_choices)
        self.viewer.layers.events.removed.connect(self._refresh_layer_choices)
        self.viewer.dims.events.current_step.connect(self._on_step)
        self._refresh_layer_choices()

    # --- layout -------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        root = QVBoxLayout(self)
        root.addWidget(self._model_box())
        root.addWidget(self._image_box())
        root.addWidget(self._keys_box())
        root.addWidget(self._export_box())
        root.addStretch(1)

    def _model_box(self) -> QGroupBox:
        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.model_combo = QComboBox()
        self.model_combo.addItems(model_choices())
        self.model_combo.setToolTip(
            "The built-in pets model, Meta's checkpoints (downloaded on first use), "
            "recent checkpoint files, or a randomly initialised config"
        )
        browse = QPushButton("Open checkpoint…")
        browse.setToolTip("Meta .pt, Hugging Face .safetensors or sam-pets checkpoint")
        browse.clicked.connect(self._browse_checkpoint)
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.load_button = QPushButton("Load model")
        self.load_button.clicked.connect(self.load_model)
        self.model_status = QLabel("no model loaded")
        form.addRow(self.model_combo)
        form.addRow(browse)
        form.addRow("Device", self.device_combo)
        form.addRow(self.load_button)
        form.addRow(self.model_status)
        return box

    def _image_box(self) -> QGroupBox:
        box = QGroupBox("Annotate")
        form = QFormLayout(box)
        self.image_combo = QComboBox()
        self.image_combo.currentIndexChanged.connect(lambda _: self._embed_current())
        self.labels_combo = QComboBox()
        self.labels_combo.setToolTip("Committed objects go here (a new layer if empty)")
        self.overwrite_check = QCheckBox("new objects may overwrite others")
        self.auto_check = QCheckBox("auto polarity")
        self.auto_check.setToolTip(AUTO_RULE)
        self.polarity_label = QLabel()
        self.candidate_label = QLabel("no prediction")
        form.addRow("Image", self.image_combo)
        form.addRow("Labels", self.labels_combo)
        form.addRow(self.overwrite_check)
        form.addRow(self.auto_check)
        form.addRow(self.polarity_label)
        form.addRow(self.candidate_label)
        self._show_polarity()
        return box

    def _keys_box(self) -> QGroupBox:
        box = QGroupBox("Keys")
        lines = [f"<b>{k}</b>: {doc}" for k, (_, doc) in KEYS.items()]
        lines += ["<b>right-click</b> or <b>Shift-click</b> (add mode): negative point", AUTO_RULE]
        text = QLabel("<br>".join(lines))
        text.setWordWrap(True)
        QVBoxLayout(box).addWidget(text)
        return box

    def _export_box(self) -> QGroupBox:
        box = QGroupBox("Export")
        form = QFormLayout(box)
        self.export_dir = QLineEdit()
        self.export_dir.setPlaceholderText("dataset folder (SAM 2 format)")
        form.addRow(self._folder_row(self.export_dir, "Dataset folder"))
        self.coco_check = QCheckBox("also write coco.json")
        form.addRow(self.coco_check)
        buttons = QHBoxLayout()
        one = QPushButton("Export image")
        one.clicked.connect(lambda: self.export(all_images=False))
        every = QPushButton("Export all annotated")
        every.clicked.connect(lambda: self.export(all_images=True))
        buttons.addWidget(one)
        buttons.addWidget(every)
        form.addRow(buttons)
        self.export_status = QLabel("")
        self.export_status.setWordWrap(True)
        form.addRow(self.export_status)
        return box

    def _bind_keys(self) -> None:
        for key, (name, _) in KEYS.items():
            self.viewer.bind_key(key, self._key_handler(name), overwrite=True)

    def _key_handler(self, name: str):
        def handler(viewer):
            getattr(self, name)()

        handler.__doc__ = KEYS_DOC.get(name, name)
        return handler

    def _on_destroyed(self, *args) -> None:
        self._dead = True
        for emitter, slot in (
            (self.viewer.layers.events.inserted, self._refresh_layer_choices),
            (self.viewer.layers.events.removed, self._refresh_layer_choices),
            (self.viewer.dims.events.current_step, self._on_step),
        ):
            try:
                emitter.disconnect(slot)
            except (RuntimeError, TypeError, ValueError):
                pass

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "SAM 2 checkpoint", "", "Checkpoints (*.pt *.pth *.safetensors);;All (*)"
        )
        if path:
            self.model_combo.insertItem(0, path)
            self.model_combo.setCurrentIndex(0)

    def load_model(self) -> None:
        """Load the chosen model in a worker; then embed the current image."""
        choice, device = self.model_combo.currentText(), self.device_combo.currentText()
        self.model_status.setText(f"loading {Path(choice).name}…")
        self.load_button.setEnabled(False)

        worker = model_worker(  # downloads an official checkpoint first if needed
            load_predictor_job,
            choice,
            device,
            _progress={"desc": "Loading SAM 2 model", "total": 0},
        )
        worker.yielded.connect(self._alive(lambda rec: self._on_load_progress(worker, rec)))
        worker.returned.connect(self._alive(self._on_model_loaded))
        worker.errored.connect(self._alive(lambda e: self._fail(f"Could not load {choice}", e)))
        worker.finished.connect(self._alive(lambda: self.load_button.setEnabled(True)))
        self._start(worker)

    def _on_load_progress(self, worker, rec) -> None:
        self.model_status.setText(show_progress(worker, rec))
        if "warning" in rec.metrics:
            show_warning(f"sam-pets: {rec.metrics['warning']}")

    def _on_model_loaded(self, predictor) -> None:
        self.predictor = predictor
        cfg = predictor.model.cfg
        self.model_status.setText(f"{cfg.name} on {predictor.device} ({predictor.precision})")
        self._ready_key = None
        self._embed_current()

    def set_predictor(self, predictor) -> None:
        """Use an existing predictor (hot-swap after fine-tuning, tests)."""
        self._on_model_loaded(predictor)

    def _image_layer(self) -> Image | None:
        name = self.image_combo.currentText()
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        return layer if isinstance(layer, Image) else None

    def _plane(self, image: Image) -> tuple[int, ...]:
        return L.plane_index(image, self.viewer.dims.current_step)

    def _key(self):
        image = self._image_layer()
        if image is None:
            return None
        # napari hands plugins proxies (a new object per access): key on the layer's own id
        return (str(getattr(image, "unique_id", image.name)), self._plane(image))

    def _embed_current(self) -> None:
        image = self._image_layer()
        if image is None or self.predictor is None:
            return
        self._ensure_layers(image)
        key = self._key()
        if key == self._ready_key or key == self._embedding_key:
            return
        pixels = L.plane_data(image, key[1])
        self._embedding_key = key
        self._ready_key = None
        predictor = self.predictor
        worker = model_worker(
            predictor.set_image,
            pixels,
            _progress={"desc": f"Embedding {image.name}", "total": 0},
        )
        worker.returned.connect(self._alive(lambda _r, k=key, p=predictor: self._on_embedded(k, p)))
        name = image.name
        worker.errored.connect(self._alive(lambda e: self._fail(f"Could not embed {name}", e)))
        self._start(worker)

    def _on_embedded(self, key, predictor) -> None:
        if predictor is not self.predictor or key != self._embedding_key:
            return
        self._embedding_key = None
        if key != self._key():  # the user moved on meanwhile
            self._embed_current()
            return
        self._ready_key = key
        self.session.candidates = None
        self._predicted_key = None
        self.request_predict()

    def _on_step(self, event=None) -> None:
        if self._key() != self._ready_key:
            self.session.clear()
            self._show_preview()
            self._embed_current()

    # --- layers --------------------------------------------------------------------------------
    def _refresh_layer_choices(self, event=None) -> None:
        if self._adding_layers:
            return
        ours = (L.POINTS_NAME, L.BOXES_NAME, L.PREVIEW_NAME)
        images = [ly.name for ly in self.viewer.layers if isinstance(ly, Image)]
        labels = [
            ly.name for ly in self.viewer.layers if isinstance(ly, Labels) and ly.name not in ours
        ]
        for combo, names in ((self.image_combo, images), (self.labels_combo, labels)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        added = getattr(event, "type", "") == "inserted"
        if added and isinstance(event.value, Image) and self.predictor is not None:
            self._embed_current()

    def _ensure_layers(self, image: Image) -> None:
        self._adding_layers = True
        try:
            self._add_missing_layers(image)
        finally:
            self._adding_layers = False
        self._refresh_layer_choices()
        self.viewer.layers.selection.active = self.points

    def _add_missing_layers(self, image: Image) -> None:
        shape = L.spatial_shape(image)
        if self.points is None or self.points not in self.viewer.layers:
            self.points = self.viewer.add_layer(L.make_points(image))
            self.points.events.data.connect(self._on_points_changed)
            self.points.mouse_drag_callbacks.append(self._on_points_mouse)
            self.points.mode = "add"
        if self.boxes is None or self.boxes not in self.viewer.layers:
            self.boxes = self.viewer.add_layer(L.make_boxes(image))
            self.boxes.events.data.connect(self._on_prompts_changed)
        if (
            self.preview is None
            or self.preview not in self.viewer.layers
            or (self.preview.data.shape != shape)
        ):
            if self.preview is not None and self.preview in self.viewer.layers:
                self.viewer.layers.remove(self.preview)
            self.preview = self.viewer.add_layer(L.make_labels(image, L.PREVIEW_NAME, 0.5))
            self.preview.editable = False
        if not self.labels_combo.currentText():
            target = self.viewer.add_layer(L.make_labels(image, f"{image.name} labels"))
            self.labels_combo.addItem(target.name)
            self.labels_combo.setCurrentText(target.name)

    def target_layer(self) -> Labels | None:
        """The Labels layer that receives committed objects."""
        name = self.labels_combo.currentText()
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        return layer if isinstance(layer, Labels) else None

    def _on_points_mouse(self, layer, event):
        """Clicks in add mode, predicted from the press on.

        The press sets the new point's polarity (right-click or Shift: negative) and starts
        predicting with it at once, so the mask is usually ready by the time the button is
        released.  On release napari's own add-mode callback (after this one) adds the point,
        and that edit finds its prediction done or under way; a press that became a drag
        (napari pans) adds no point, and the preview goes back to the layers' prompts.
        """
        if layer.mode != "add" or event.button not in (1, 2):
            return
        negative = event.button == 2 or "Shift" in event.modifiers
        label = 0 if negative else self._polarity
        layer.feature_defaults = {"label": label}
        start = np.asarray(event.pos, float)
        self._predict_ahead(np.asarray(layer.world_to_data(event.position), float), label)
        yield
        while event.type == "mouse_move":
            yield
        if np.linalg.norm(np.asarray(event.pos, float) - start) >= _CLICK_DISTANCE:
            self.request_predict()  # a drag: no point is added
        # napari's add (still to come) leaves the new point's label as the default: restore it
        QTimer.singleShot(0, self._alive(self._restore_polarity))

    def add_point(self, coords_layer: np.ndarray, label: int | None = None) -> None:
        """Add a click at layer coordinates with ``label`` (default: the current polarity)."""
        if label is None:
            label = self._polarity
        self.points.feature_defaults = {"label": int(label)}
        self.points.add(np.atleast_2d(coords_layer))
        self.points.feature_defaults = {"label": self._polarity}

    def _on_points_changed(self, event=None) -> None:
        action = str(getattr(event, "action", "") or "")
        if action.endswith("ing"):
            return
        if action == "added" and self.auto_check.isChecked() and len(self.points.data):
            xy, _ = L.read_points(self.points, ())
            pressed, self._pressed = self._pressed, None
            if pressed is not None and np.array_equal(pressed[0], self.points.data[-1]):
                label = pressed[1]  # decided at the press, before its own prediction came back
            else:
                label = self.session.auto_label(xy[-1])
            feats = self.points.features
            feats.loc[feats.index[-1], "label"] = label
        L.color_points(self.points)
        self._on_prompts_changed(event)

    def _on_prompts_changed(self, event=None) -> None:
        action = str(getattr(event, "action", "") or "")
        if not action.endswith("ing"):
            self.request_predict()

    # --- prediction ----------------------------------------------------------------------------
    def _read_prompts(self) -> None:
        image = self._image_layer()
        plane = self._plane(image)
        xy, labels = L.read_points(self.points, plane)
        self.session.set_prompts(xy, labels, L.read_box(self.boxes, plane))

    def _can_predict(self) -> bool:
        return (
            self.predictor is not None
            and self._ready_key is not None
            and self._ready_key == self._key()
        )

    def request_predict(self) -> None:
        """Predict from the current prompts in a worker (coalescing bursts of edits)."""
        if self._can_predict():
            self._read_prompts()
            self._predict_session()

    def _predict_ahead(self, coords: np.ndarray, label: int) -> None:
        """Predict with a click that napari is about to add (layer coordinates)."""
        image = self._image_layer()
        if image is None or not self._can_predict():
            return
        plane = self._plane(image)
        if not L.on_plane(coords[None], plane).all():
            return
        xy_new = L.yx_to_xy(coords[None, -2:])
        if self.auto_check.isChecked():
            label = self.session.auto_label(xy_new[0])
            self._pressed = (coords, label)
        xy, labels = L.read_points(self.points, plane)
        self.session.set_prompts(
            np.vstack([xy, xy_new]), np.append(labels, label), L.read_box(self.boxes, plane)
        )
        self._predict_session()

    def _predict_session(self) -> None:
        key = self.session.prompt_key()
        if key == self._predicted_key and (self._busy or self.session.candidates is not None):
            return  # these prompts are being (or were) predicted already
        if self._busy:
            self._dirty = True
            return
        self._predicted_key = None
        if not self.session.has_prompt:
            self.session.candidates = None
            self._show_preview()
            return
        self._busy = True
        self._predicted_key = key
        request = dataclasses.replace(self.session)
        worker = model_worker(request.predict, self.predictor)
        worker.returned.connect(self._alive(lambda _c, r=request: self._on_predicted(r)))
        worker.errored.connect(self._alive(self._on_predict_failed))
        worker.finished.connect(self._alive(self._on_predict_finished))
        self._start(worker)

    def _on_predict_failed(self, error: Exception) -> None:
        self._predicted_key = None
        self._fail("Prediction failed", error)

    def _on_predicted(self, request: PromptSession) -> None:
        self.session.candidates = request.candidates
        self.session._last = request._last
        self._show_preview()

    def _on_predict_finished(self) -> None:
        self._busy = False
        if self._dirty:
            self._dirty = False
            self.request_predict()

    def _show_preview(self) -> None:
        if self.preview is None:
            return
        image = self._image_layer()
        cands = self.session.candidates
        plane = self._plane(image) if image is not None else ()
        data = self.preview.data
        view = data[plane] if plane else data
        view[...] = 0
        if cands is not None:
            view[cands.mask] = 1
            scores = ", ".join(
                ("[%.2f]" if i == cands.index else "%.2f") % s for i, s in enumerate(cands.scores)
            )
            seen = "object" if cands.object_score > 0 else "no object"
            self.candidate_label.setText(f"candidates (IoU): {scores}; model sees {seen}")
            if self.boxes is not None:
                L.color_boxes(self.boxes, cands.object_score > 0)
        else:
            self.candidate_label.setText("no prediction")
        self.preview.refresh()
        self.previewed.emit()

    # --- key actions ---------------------------------------------------------------------------
    def commit(self) -> int:
        """Write the selected candidate into the target Labels layer under a new id."""
        target, image = self.target_layer(), self._image_layer()
        if target is None or image is None or self.session.candidates is None:
            show_warning("sam-pets: nothing to commit (no prediction yet)")
            return 0
        try:
            label = self.session.commit(
                target.data, self._plane(image), self.overwrite_check.isChecked()
            )
        except ValueError as e:
            show_error(f"sam-pets: {e}")
            return 0
        target.refresh()
        self._annotated[image.name] = (image, target)
        self._clear_layers()
        self.committed.emit(label)
        return label

    def annotated_items(self) -> list[tuple]:
        """Copies of every annotated plane: (name, pixels, labels, source).

        A snapshot taken on the GUI thread, so later edits never reach a running job.
        """
        items = []
        for image, target in self._annotated.values():
            if image.name in self.viewer.layers and target.name in self.viewer.layers:
                for name, pixels, labels, source in export_items(image, target):
                    items.append((name, np.array(pixels), np.array(labels), source))
        return items

    def cycle(self) -> None:
        """Show the next candidate mask."""
        if self.session.candidates is not None:
            self.session.candidates.cycle()
            self._show_preview()

    def toggle_polarity(self) -> None:
        """Switch the next point between positive and negative."""
        self._polarity = 1 - self._polarity
        if self.points is not None:
            self.points.feature_defaults = {"label": self._polarity}
            self.points.current_face_color = L.POSITIVE if self._polarity else L.NEGATIVE
        self._show_polarity()

    def _restore_polarity(self) -> None:
        if self.points is not None and self.points in self.viewer.layers:
            self.points.feature_defaults = {"label": self._polarity}

    def _show_polarity(self) -> None:
        sign = "positive (+)" if self._polarity else "negative (-)"
        self.polarity_label.setText(f"next point: {sign}")

    def clear(self) -> None:
        """Discard the object being annotated."""
        self.session.clear()
        self._clear_layers()

    def _clear_layers(self) -> None:
        if self.points is not None:
            self.points.data = np.zeros((0, self.points.ndim))
        if self.boxes is not None:
            self.boxes.data = []
        self.session.candidates = None
        self._show_preview()

    def undo(self) -> None:
        """Undo the last commit."""
        target = self.target_layer()
        if target is not None and self.session.undo(target.data):
            target.refresh()

    def refine(self) -> None:
        """Correct the selected label: its mask becomes the prompt; commit writes it back."""
        target, image = self.target_layer(), self._image_layer()
        if target is None or image is None or self.predictor is None:
            return
        plane = self._plane(image)
        view = target.data[plane] if plane else target.data
        try:
            self.session.start_refine(
                view, target.selected_label, self.predictor.model.cfg.mask_size
            )
        except ValueError as e:
            show_warning(f"sam-pets: {e}")
            return
        x0, y0, x1, y1 = self.session.box_xyxy
        corners = np.array([[y0, x0], [y1, x1]])
        if plane:
            corners = np.hstack([np.tile(np.asarray(plane, float), (2, 1)), corners])
        mask_prompt, label = self.session.mask_prompt, self.session.refining_label
        self.points.data = np.zeros((0, self.points.ndim))
        self.boxes.data = []
        self.session.mask_prompt, self.session.refining_label = mask_prompt, label
        self.boxes.add_rectangles(corners)

    # --- export --------------------------------------------------------------------------------
    def export(self, all_images: bool = False) -> None:
        """Export the current (or every annotated) image + labels to the dataset folder."""
        folder = self.export_dir.text().strip()
        if not folder:
            show_warning("sam-pets: choose a dataset folder first")
            return
        pairs = (
            list(self._annotated.values())
            if all_images
            else [(self._image_layer(), self.target_layer())]
        )
        pairs = [(i, t) for i, t in pairs if i is not None and t is not None]
        items = [it for i, t in pairs for it in export_items(i, t)]
        if not items:
            show_warning("sam-pets: no annotated image to export")
            return
        worker = model_worker(
            export_job,
            folder,
            items,
            self.coco_check.isChecked(),
            _progress={"total": len(items), "desc": "Exporting"},
        )
        worker.returned.connect(self._alive(self._on_exported))
        worker.errored.connect(self._alive(lambda e: self._fail("Export failed", e)))
        self._start(worker, compute=False)

    def _on_exported(self, report: list[str]) -> None:
        self.export_status.setText("\n".join(report))
        show_info("sam-pets: " + "; ".join(report))

    # --- plumbing ------------------------------------------------------------------------------
    def _start(self, worker, compute: bool = True) -> None:
        """Start a worker: model work on the compute thread, the rest on napari's pool."""
        self.last_worker = worker
        if compute:
            start_on_compute_thread(worker)
        else:
            worker.start()

    def _fail(self, what: str, error: Exception) -> None:
        show_error(f"sam-pets: {what}: {error}")


KEYS_DOC = {name: doc for name, doc in KEYS.values()}
