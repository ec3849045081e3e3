"""The Annotator dock: SAM 2 prompting into a Labels layer, with commit / undo / refine / export.

All model work (loading, image embedding, prediction) runs in napari thread workers on one
compute thread; the GUI thread only reads prompt layers and writes results into layers.

The dock is composed of parts, each given the dock: its controls (``ui``,
:mod:`._annotator_ui`), the prompt layers and predictions (``prompts``, :mod:`._prompting`),
the target Labels layers (``targets``, :mod:`._targets`), the Export section (``exporter``,
:mod:`._export`) and Segment everything (``everything``, :mod:`._everything`). What is being
predicted and what is stale is a :class:`~sam_pets.predict.state.PredictionState` (``state``).
"""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from pathlib import Path

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QWidget

from sam_pets._napari import _layers as L
from sam_pets._napari._annotator_ui import FIRST_CLICK_WINDOWS, KEYS, KEYS_DOC, AnnotatorLayout
from sam_pets._napari._export import Exporter, export_items
from sam_pets._napari._journal import JournalError, SessionJournal
from sam_pets._napari._models import (
    advance_pbar,
    default_choice,
    load_predictor_job,
    progress_text,
    remember_choice,
)
from sam_pets._napari._prompting import Prompts
from sam_pets._napari._targets import TargetLayers, find_layer, layer_id
from sam_pets._napari._widgets import DockLifetime, weak_slot
from sam_pets._napari._workers import function_worker, start_in_order, start_on_compute_thread
from sam_pets.predict.session import LabelOverflow, PromptSession
from sam_pets.predict.state import Embed, PredictionState

_LIVE: weakref.WeakSet = weakref.WeakSet()


def _unwrap(obj):
    """The object behind napari's plugin proxy (proxies differ per access)."""
    return getattr(obj, "__wrapped__", obj)


def _key_handler(name: str):
    """A viewer key binding that calls ``name`` on the viewer's open Annotator, if any.

    It holds no reference to a dock, so a closed dock is freed and a reopened one is served.
    """

    def handler(viewer):
        widget = annotator_for(viewer)
        if widget is not None:
            getattr(widget, name)()

    handler.__doc__ = KEYS_DOC.get(name, name)
    return handler


def annotator_for(viewer) -> AnnotatorWidget | None:
    """The open Annotator dock of ``viewer`` (other docks use its model and annotations)."""
    target = _unwrap(viewer)
    for widget in list(_LIVE):
        if not widget.life.closed and _unwrap(widget.viewer) is target:
            return widget
    return None


class _Control:
    """A control of the dock's ``ui``, read as an attribute of the dock (``dock.load_button``)."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, dock, owner=None):
        return self if dock is None else getattr(dock.ui, self.name)


class AnnotatorWidget(QWidget):
    """Dock widget driving SAM 2 from point and box prompts.

    Signals:
        committed(int): a new object was committed under this label id.
        previewed(): the preview layer now shows the current prediction (or none).
    """

    committed = Signal(int)
    previewed = Signal()

    # the controls that scripts and tests drive; ``ui`` builds and holds them
    model_combo = _Control()
    device_combo = _Control()
    precision_combo = _Control()
    load_button = _Control()
    model_status = _Control()
    zoom_check = _Control()
    window_combo = _Control()
    image_combo = _Control()
    labels_combo = _Control()
    overwrite_check = _Control()
    auto_check = _Control()
    polarity_label = _Control()
    candidate_label = _Control()
    restore_button = _Control()
    export_dir = _Control()
    coco_check = _Control()
    export_status = _Control()

    def __init__(self, napari_viewer) -> None:
        from sam_pets._napari._everything import EverythingBox  # heavy: when a dock opens
        from sam_pets._napari._propagate import PropagateBox

        super().__init__()
        self.viewer = napari_viewer
        self.life = DockLifetime(self)
        _LIVE.add(self)
        self.predictor = None
        self.session = PromptSession()
        # what runs next and what is stale (plane keys: (image layer id, plane))
        self.state = PredictionState()
        self.image_id = None  # the image the prompts and the preview belong to
        self._pixels_of = None  # the image layer whose data changes are followed
        self._adding_layers = False
        self.last_worker = None
        self.journal = SessionJournal()
        self._offered = None  # (image layer id, plane, journal record) the restore button offers
        self._load_seq = 0  # loads started; a load's result is used only if it is the latest
        self.everything = EverythingBox(self)
        self.propagation = PropagateBox(self)
        self.ui = AnnotatorLayout(self, self.everything, self.propagation)
        self.targets = TargetLayers(self)
        self.prompts = Prompts(self)
        self.exporter = Exporter(self)
        self._connect_ui()
        self.life.undocked.connect(self._on_undocked)
        self.destroyed.connect(self._on_destroyed)
        self._bind_keys()
        self.viewer.layers.events.inserted.connect(self.refresh_layer_choices)
        self.viewer.layers.events.removed.connect(self.refresh_layer_choices)
        self.viewer.dims.events.current_step.connect(self._on_step)
        self.refresh_layer_choices()
        if os.environ.get("SAM_PETS_AUTOLOAD", "1") != "0":
            QTimer.singleShot(0, self.life.alive(self._autoload))

    def _connect_ui(self) -> None:
        ui = self.ui
        ui.load_button.clicked.connect(self.load_model)
        ui.zoom_check.toggled.connect(weak_slot(self, "_on_zoom_toggled"))
        ui.window_combo.currentIndexChanged.connect(weak_slot(self, "_on_window_changed"))
        ui.image_combo.currentIndexChanged.connect(weak_slot(self, "_on_image_changed"))
        ui.labels_combo.activated.connect(weak_slot(self.targets, "on_chosen"))
        ui.restore_button.clicked.connect(weak_slot(self, "restore_session"))
        ui.export_image_button.clicked.connect(weak_slot(self, "export", all_images=False))
        ui.export_all_button.clicked.connect(weak_slot(self, "export", all_images=True))

    def _bind_keys(self) -> None:
        for key, (name, _) in KEYS.items():
            self.viewer.bind_key(key, _key_handler(name), overwrite=True)

    # the prompt layers (``prompts`` adds and removes them)
    @property
    def points(self):
        """The clicks layer (None before the first image is embedded)."""
        return self.prompts.points

    @property
    def boxes(self):
        """The boxes layer (None before the first image is embedded)."""
        return self.prompts.boxes

    @property
    def preview(self):
        """The layer showing the selected candidate mask (None before the first embedding)."""
        return self.prompts.preview

    def _on_undocked(self) -> None:
        """The dock was closed: stop serving the viewer and remove the prompt layers.

        Keys and layer events stop; the prompt and preview layers go. Committed objects stay
        in their Labels layers. A running segment-everything job stops at its next batch.
        """
        self.everything.cancel()
        self.propagation.cancel()
        self._on_destroyed()
        self.prompts.remove_layers()
        self.deleteLater()  # napari is done with it; Qt frees it while the app still runs

    def _on_destroyed(self, *args) -> None:
        self.life.closed = True
        self._watch_pixels(None)
        for emitter, slot in (
            (self.viewer.layers.events.inserted, self.refresh_layer_choices),
            (self.viewer.layers.events.removed, self.refresh_layer_choices),
            (self.viewer.dims.events.current_step, self._on_step),
        ):
            try:
                emitter.disconnect(slot)
            except (RuntimeError, TypeError, ValueError):
                pass

    def _autoload(self) -> None:
        """First use: load the default (or last used) model without waiting for a click.

        ``$SAM_PETS_AUTOLOAD=0`` turns it off. A model chosen or set meanwhile wins.
        """
        if self.life.closed or self.predictor is not None or self._load_seq:
            return
        choice = default_choice()
        combo = self.ui.model_combo
        if combo.findText(choice) < 0:
            combo.insertItem(0, choice)
        combo.setCurrentText(choice)
        self.load_model()

    def load_model(self) -> None:
        """Load the chosen model in a worker; then embed the current image."""
        ui, alive = self.ui, self.life.alive
        choice, device = ui.model_combo.currentText(), ui.device_combo.currentText()
        ui.model_status.setText(f"loading {Path(choice).name}…")
        ui.load_button.setEnabled(False)
        self._load_seq += 1
        seq = self._load_seq

        worker = function_worker(  # downloads an official checkpoint first if needed
            load_predictor_job,
            choice,
            device,
            ui.precision_combo.currentText(),
            _progress={"desc": "Loading SAM 2 model", "total": 0},
        )
        worker.yielded.connect(alive(lambda rec: self._on_load_progress(worker, rec)))
        worker.returned.connect(alive(lambda p: self._on_loaded(seq, choice, p)))
        worker.errored.connect(alive(lambda e: self._on_load_failed(choice, e)))
        worker.finished.connect(alive(lambda: self.ui.load_button.setEnabled(True)))
        self.start(worker)

    def _on_load_progress(self, worker, rec) -> None:
        self.ui.model_status.setText(progress_text(rec))
        if "warning" in rec.metrics:
            show_warning(f"sam-pets: {rec.metrics['warning']}")
        advance_pbar(worker, rec)  # last: it may run the load's end handlers

    def _on_load_failed(self, choice: str, error: Exception) -> None:
        self.fail(f"Could not load {choice}", error)
        self._show_model()

    def _show_model(self) -> None:
        p = self.predictor
        self.ui.model_status.setText(
            "no model loaded" if p is None else f"{p.model.cfg.name} on {p.device} ({p.precision})"
        )

    def _on_loaded(self, seq: int, choice: str, predictor) -> None:
        if seq != self._load_seq:  # another model was chosen or set meanwhile
            return
        remember_choice(choice)
        self._on_model_loaded(predictor)

    def _on_model_loaded(self, predictor) -> None:
        self.predictor = predictor
        self._show_model()
        zoom = self.ui.zoom_check
        zoom.blockSignals(True)
        zoom.setChecked(bool(predictor.zoom))
        zoom.blockSignals(False)
        zoom.setEnabled(True)
        self._sync_window_combo()
        self.state.forget_embeddings()  # an embedding under way is the old model's
        self._embed_current()

    def _on_zoom_toggled(self) -> None:
        """Zoom in (or not) from the next prediction on; the current prompts again now."""
        if self.predictor is None:
            return
        self.predictor.zoom = self.ui.zoom_check.isChecked()
        self._sync_window_combo()
        self.state.forget_prediction()
        self.prompts.request_predict()

    def _sync_window_combo(self) -> None:
        """Show the predictor's first-click window; usable only while zooming in."""
        combo, p = self.ui.window_combo, self.predictor
        values = list(FIRST_CLICK_WINDOWS.values())
        share = p.first_click_window if p is not None else 0.0
        index = min(range(len(values)), key=lambda i: abs(values[i] - share))
        combo.blockSignals(True)
        combo.setCurrentIndex(index)
        combo.blockSignals(False)
        combo.setEnabled(p is not None and bool(p.zoom))

    def _on_window_changed(self) -> None:
        """Look for first clicks' objects in the chosen window; the current prompts again."""
        if self.predictor is None:
            return
        self.predictor.first_click_window = FIRST_CLICK_WINDOWS[self.ui.window_combo.currentText()]
        self.state.forget_prediction()
        self.prompts.request_predict()

    def model_swapping(self) -> None:
        """The predictor's model is being swapped on the compute thread: predict nothing.

        A prediction would meet a predictor without an image; :meth:`set_predictor` follows.
        """
        self.state.forget_embeddings()

    def set_predictor(self, predictor) -> None:
        """Use an existing predictor (hot-swap after fine-tuning, tests)."""
        self._load_seq += 1  # a load under way (e.g. the first-use one) is dropped
        self._on_model_loaded(predictor)

    # --- the current image and plane -----------------------------------------------------------
    def image_layer(self) -> Image | None:
        """The image being annotated (the one chosen in the Annotate box), if any."""
        name = self.ui.image_combo.currentText()
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        return layer if isinstance(layer, Image) else None

    def plane(self, image: Image) -> tuple[int, ...]:
        """The index of the plane of ``image`` the viewer shows (``()`` for a 2D image)."""
        return L.plane_index(image, self.viewer.dims.current_step)

    def plane_key(self) -> tuple | None:
        """(image layer id, plane) of the plane being annotated; None without an image."""
        image = self.image_layer()
        if image is None:
            return None
        return (layer_id(image), self.plane(image))

    def _on_image_changed(self) -> None:
        """Another image is current: its prompts, preview and target replace the old ones."""
        image = self.image_layer()
        uid = None if image is None else layer_id(image)
        if uid != self.image_id:
            self.image_id = uid
            self.session.clear()
            self.prompts.remove(all_planes=True)
            self.targets.show()
        self._watch_pixels(image)
        self._offer_restore()
        self.exporter.suggest_folder(image)
        self._embed_current()

    def _watch_pixels(self, image: Image | None) -> None:
        """Follow the current image's pixels: new data means a new embedding."""
        image = _unwrap(image)  # napari hands plugins proxies, a new one per access
        old = self._pixels_of
        if old is image:
            return
        if old is not None:
            with contextlib.suppress(RuntimeError, TypeError, ValueError):
                old.events.data.disconnect(self._on_pixels_changed)
        self._pixels_of = image
        if image is not None:
            image.events.data.connect(self._on_pixels_changed)

    def _on_pixels_changed(self, event=None) -> None:
        """The current image's data was replaced (e.g. by a filter): embed it again."""
        image = self.image_layer()
        if self.life.closed or image is None or self._pixels_of is not _unwrap(image):
            return
        self.state.forget_embeddings()  # a prediction under way is dropped
        self.state.forget_prediction()
        self.session.candidates = None
        self.prompts.show_preview()
        self._embed_current()  # the same pixels again come from the predictor's cache

    def _embed_current(self) -> None:
        image = self.image_layer()
        if image is None or self.predictor is None:
            return
        self._ensure_layers(image)
        key = self.plane_key()
        if not self.state.want_embedding(key):
            return
        pixels = L.plane_data(image, key[1])
        predictor, alive = self.predictor, self.life.alive
        worker = function_worker(
            predictor.set_image,
            pixels,
            _progress={"desc": f"Embedding {image.name}", "total": 0},
        )
        worker.returned.connect(alive(lambda _r, k=key, p=predictor: self._on_embedded(k, p)))
        name = image.name
        worker.errored.connect(alive(lambda e, k=key: self._on_embed_failed(k, name, e)))
        self.start(worker)

    def _on_embed_failed(self, key, name: str, error: Exception) -> None:
        self.state.embedding_failed(key)  # a later model load or image switch tries again
        self.fail(f"Could not embed {name}", error)

    def _on_embedded(self, key, predictor) -> None:
        outcome = self.state.embedded(key, predictor, self.predictor, self.plane_key())
        if outcome is Embed.MOVED:  # the user moved on meanwhile
            self._embed_current()
        elif outcome is Embed.READY:
            self.session.candidates = None
            self.prompts.request_predict()

    def _on_step(self, event=None) -> None:
        self._offer_restore()
        if not self.state.ready_for(self.plane_key()):
            self.session.clear()
            self._restore_refine()
            self.prompts.show_preview()
            self._embed_current()

    # --- layers --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def adding_layers(self):
        """Add layers without offering them in the boxes one by one (refresh after it)."""
        adding, self._adding_layers = self._adding_layers, True
        try:
            yield
        finally:
            self._adding_layers = adding

    def refresh_layer_choices(self, event=None) -> None:
        """Offer the viewer's image and Labels layers in the Annotate box (after a change)."""
        if self._adding_layers or self.life.closed:
            return
        images = [ly.name for ly in self.viewer.layers if isinstance(ly, Image)]
        labels = [
            ly.name for ly in self.viewer.layers if isinstance(ly, Labels) and not L.is_helper(ly)
        ]
        added = getattr(event, "type", "") == "inserted"
        new_image = event.value.name if added and isinstance(event.value, Image) else None
        image_combo, labels_combo = self.ui.image_combo, self.ui.labels_combo
        for combo, names in ((image_combo, images), (labels_combo, labels)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if combo is image_combo and new_image in names:
                combo.setCurrentText(new_image)  # a newly opened image is the one to annotate
            elif current in names:
                combo.setCurrentText(current)
            elif combo is labels_combo:
                combo.setCurrentIndex(-1)  # the target went: never adopt another one silently
            combo.blockSignals(False)
        self.targets.show()
        if new_image is not None:
            # napari makes the new layer active after this event: take the clicks back then
            QTimer.singleShot(0, self.life.alive(self.prompts.activate))
        image = self.image_layer()
        if (None if image is None else layer_id(image)) != self.image_id:
            self._on_image_changed()

    def _ensure_layers(self, image: Image) -> None:
        with self.adding_layers():
            self.prompts.add_layers(image)
            self.targets.ensure(image)
        self.refresh_layer_choices()
        self.viewer.layers.selection.active = self.prompts.points

    # --- key actions ---------------------------------------------------------------------------
    def commit(self) -> int:
        """Write the selected candidate into the target Labels layer under a new id."""
        image = self.image_layer()
        if not self.state.want_commit(None if image is None else self.plane_key()):
            return 0  # the mask shown is from before the latest prompt edit: commit the new one
        if image is None or self.session.candidates is None:
            show_warning("sam-pets: nothing to commit (no prediction yet)")
            return 0
        target = self.targets.ensure(image)  # a new one if the user deleted it
        plane, overwrite = self.plane(image), self.ui.overwrite_check.isChecked()
        owner = layer_id(target)
        meta = self._object_meta()
        try:
            label = self.session.commit(target.data, plane, overwrite, owner)
        except LabelOverflow:  # more objects than the layer's dtype holds: widen it and retry
            wider = np.int32 if target.data.dtype.itemsize < 4 else np.int64
            target.data = target.data.astype(wider)
            label = self.session.commit(target.data, plane, overwrite, owner)
        except ValueError as e:
            show_error(f"sam-pets: {e}")
            return 0
        if not label:
            show_warning(
                "sam-pets: nothing committed: the mask lies on other objects only "
                "(tick 'new objects may overwrite others' to replace them)"
                if self.session.candidates.mask.any()
                else "sam-pets: nothing committed: the mask is empty"
            )
            return 0
        target.refresh()
        self.targets.mark_annotated(image, target)
        self.journal_commit(image, target, plane, label, meta)
        self.prompts.remove()
        self.committed.emit(label)
        return label

    def _object_meta(self) -> dict:
        """How the object being committed was made: prompts, model, zoom (for the journal)."""
        s, p = self.session, self.predictor
        return {
            "prompts": {
                "points": s.points_xy.tolist(),
                "labels": s.labels.tolist(),
                "box": None if s.box_xyxy is None else s.box_xyxy.tolist(),
            },
            "refined": bool(s.refining_label),
            "model": None if p is None else p.model.cfg.name,
            "zoom": None if p is None else bool(p.zoom),
            "zoom_candidates": None if p is None else bool(p.zoom and p.zoom_candidates),
            "first_click_window": None if p is None else float(p.first_click_window),
        }

    def journal_commit(self, image, target, plane, label: int | None, meta=None) -> None:
        """Journal the plane after a commit (``label``) or another change (``label`` None)."""
        for message in self.journal.errors():  # a write of an earlier commit failed
            show_warning(f"sam-pets: {message}")
        if label is None:
            self.journal.changed(image, target, plane)
        else:
            self.journal.committed(image, target, plane, label, meta or {})

    def _offer_restore(self) -> None:
        """Show the restore button when the journal holds objects this plane does not show."""
        image = self.image_layer()
        self._offered = None
        rec = None
        if image is not None:
            plane = self.plane(image)
            try:
                rec = self.journal.pending(image, self.targets.current(), plane)
            except JournalError as e:
                show_warning(f"sam-pets: {e}")
            if rec is not None:
                self._offered = (layer_id(image), plane, rec)
        button = self.ui.restore_button
        button.setVisible(rec is not None)
        if rec is not None:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.updated))
            button.setText(f"Restore {rec.n_objects} objects saved {when}")

    def restore_session(self) -> int:
        """Put the journaled objects of the current plane back in its target layer.

        Returns the number of objects restored (0 when there is nothing to restore).
        """
        image = self.image_layer()
        offered = self._offered
        if image is None or offered is None or offered[:2] != (layer_id(image), self.plane(image)):
            self._offer_restore()
            return 0
        _, plane, rec = offered
        target = self.targets.ensure(image)
        self.journal.restore(image, target, plane, rec)
        self.targets.mark_annotated(image, target)
        self._offered = None
        self.ui.restore_button.setVisible(False)
        show_info(f"sam-pets: restored {rec.n_objects} objects of {image.name!r}")
        return rec.n_objects

    def annotated_items(self) -> list[tuple]:
        """Copies of every annotated plane: (name, pixels, labels, metadata).

        A snapshot taken on the GUI thread, so later edits never reach a running job.
        """
        items = []
        for image, target in self.targets.annotated.values():
            if image in self.viewer.layers and target in self.viewer.layers:
                for name, pixels, labels, meta in export_items(image, target):
                    items.append((name, np.array(pixels), labels, meta))  # labels: copies
        return items

    def target_layer(self) -> Labels | None:
        """The Labels layer that receives the current image's committed objects."""
        return self.targets.current()

    def add_point(self, coords_layer: np.ndarray, label: int | None = None) -> None:
        """Add a click at layer coordinates with ``label`` (default: the current polarity)."""
        self.prompts.add_point(coords_layer, label)

    def export(self, all_images: bool = False) -> None:
        """Export the current (or every annotated) image + labels to the dataset folder."""
        self.exporter.export(all_images)

    def cycle(self) -> None:
        """Show the next candidate mask (made on the compute thread if not shown before)."""
        cands = self.session.candidates
        if cands is None:
            return
        k = cands.cycle()
        if cands.made(k):
            self.prompts.show_preview()
            return
        # upsampling a candidate takes ~15 ms on a 12 MP photo: not on the GUI thread
        alive = self.life.alive
        worker = function_worker(cands.candidate, k)
        worker.returned.connect(alive(lambda _m, c=cands: self._on_candidate_made(c)))
        worker.errored.connect(alive(lambda e: self.fail("Showing a candidate failed", e)))
        self.start(worker)

    def _on_candidate_made(self, cands) -> None:
        # shown unless a new prediction replaced them, or the user cycled on meanwhile (then
        # the worker making that one shows it)
        if self.session.candidates is cands and cands.made(cands.index):
            self.prompts.show_preview()

    def toggle_polarity(self) -> None:
        """Switch the next point between positive and negative."""
        self.prompts.toggle_polarity()

    def clear(self) -> None:
        """Discard the object being annotated (the prompts on this plane)."""
        self.session.clear()
        self.prompts.remove()

    def undo(self) -> None:
        """Undo the last commit (in the layer it went into)."""
        if not self.session.can_undo:
            show_info("sam-pets: nothing to undo")
            return
        layer = find_layer(self.viewer, self.session.last_owner)
        if not isinstance(layer, Labels):
            self.session.drop_last()
            show_warning("sam-pets: the layer of the last commit was deleted; nothing undone")
            return
        plane = self.session.last_plane
        try:
            self.session.undo(layer.data)
        except ValueError as e:
            show_warning(f"sam-pets: cannot undo in {layer.name!r}: {e}")
            return
        layer.refresh()
        annotated = self.targets.annotated.values()
        image = next((i for i, t in annotated if t is layer), None)
        if image is not None and image in self.viewer.layers:
            self.journal_commit(image, layer, plane, None)

    def refine(self) -> None:
        """Correct the selected label: its mask becomes the prompt; commit writes it back."""
        target, image = self.targets.current(), self.image_layer()
        if target is None or image is None or self.predictor is None:
            return
        plane = self.plane(image)
        view = target.data[plane] if plane else target.data
        try:
            self.session.start_refine(
                view, target.selected_label, self.predictor.model.cfg.mask_size
            )
        except ValueError as e:
            show_warning(f"sam-pets: {e}")
            return
        x0, y0, x1, y1 = self.session.box_xyxy
        corners = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]])  # napari wants 4 in nD
        if plane:
            corners = np.hstack([np.tile(np.asarray(plane, float), (4, 1)), corners])
        state = (self.session.mask_prompt, self.session.refining_label, self.session.box_xyxy)
        self.prompts.remove()
        self.session.mask_prompt, self.session.refining_label, self.session.box_xyxy = state
        # kept with its plane: stepping to another slice and back resumes the refinement
        self.state.start_refine(self.plane_key(), state[0], state[1])
        self.prompts.boxes.add_rectangles(corners)

    def _restore_refine(self) -> None:
        """Back on the plane of an unfinished refinement: its mask prompt and label again."""
        refine = self.state.refine_on(self.plane_key())
        if refine is not None:
            self.session.mask_prompt, self.session.refining_label = refine

    # --- plumbing ------------------------------------------------------------------------------
    def start(self, worker, *, in_order: bool = False) -> None:
        """Start a job: a model job on the compute thread, else after the earlier ``in_order``."""
        self.last_worker = worker
        (start_in_order if in_order else start_on_compute_thread)(worker)

    def fail(self, what: str, error: Exception) -> None:
        """Notify that ``what`` failed with ``error``."""
        show_error(f"sam-pets: {what}: {error}")
