"""Prompting in the Annotator: clicks and boxes in, predictions in a worker, preview out."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer

from sam_pets._napari import _layers as L
from sam_pets._napari._targets import layer_id
from sam_pets._napari._workers import function_worker
from sam_pets.predict.session import PromptSession
from sam_pets.predict.state import Predict

if TYPE_CHECKING:
    from napari.layers import Image

    from sam_pets._napari._annotator import AnnotatorWidget

_CLICK_DISTANCE = 5  # canvas pixels; a press moved further is a drag, not a click (as napari)
_THUMBNAIL_DELAY_MS = 300  # the preview layer's thumbnail is redrawn once clicks pause this long


class Prompts:
    """The Annotator's prompt layers (clicks, boxes, preview) and the predictions from them.

    Edits of the clicks and boxes are predicted on the compute thread (a click from its mouse
    press on; bursts of edits coalesced by the dock's :class:`PredictionState`), and the
    preview layer shows the selected candidate.

    Args:
        dock: The Annotator dock: its viewer, prompt session, prediction state, model,
            current image and plane, controls, and the compute thread its jobs run on.
    """

    def __init__(self, dock: AnnotatorWidget) -> None:
        self._dock = dock
        self._viewer, self._session, self._state = dock.viewer, dock.session, dock.state
        self._ui, self._alive = dock.ui, dock.life.alive
        self.points = self.boxes = self.preview = None
        self._polarity = 1  # of the next point: 1 positive, 0 negative
        self._preview_plane: tuple | None = None  # (preview layer, plane) of a stack's preview
        self._thumbnail_timer: QTimer | None = None
        self.show_polarity()

    # --- layers --------------------------------------------------------------------------------
    def _exists(self, layer) -> bool:
        return layer is not None and layer in self._viewer.layers

    def add_layers(self, image: Image) -> None:
        """Add the prompt and preview layers ``image`` lacks (new ones for another frame)."""
        viewer, shape = self._viewer, L.spatial_shape(image)
        if self.points is not None and not L.same_frame(self.points, image):
            self._drop_layer(self.points)  # made for another image's axes or scale
        if not self._exists(self.points):
            self.points = viewer.add_layer(L.make_points(image))
            self.points.events.data.connect(self._on_points_changed)
            self.points.mouse_drag_callbacks.append(self._on_points_mouse)
            self.points.mode = "add"
        if self.boxes is not None and not L.same_frame(self.boxes, image):
            self._drop_layer(self.boxes)
        if not self._exists(self.boxes):
            self.boxes = viewer.add_layer(L.make_boxes(image))
            self.boxes.events.data.connect(self._on_boxes_changed)
        if self.preview is not None and not (
            self.preview.data.shape == shape and L.same_frame(self.preview, image)
        ):
            self._drop_layer(self.preview)
        if not self._exists(self.preview):
            self.preview = viewer.add_layer(L.make_preview(image))
            self.preview.editable = False

    def _drop_layer(self, layer) -> None:
        if layer in self._viewer.layers:
            self._viewer.layers.remove(layer)

    def remove_layers(self) -> None:
        """Remove the prompt and preview layers (the dock was closed)."""
        for layer in (self.points, self.boxes, self.preview):
            if self._exists(layer):
                self._viewer.layers.remove(layer)
        self.points = self.boxes = self.preview = None

    def activate(self) -> None:
        """Make the clicks layer the active one (clicks on the canvas go to it)."""
        if self._exists(self.points):
            self._viewer.layers.selection.active = self.points

    # --- polarity ------------------------------------------------------------------------------
    def toggle_polarity(self) -> None:
        """Switch the next point between positive and negative."""
        self._polarity = 1 - self._polarity
        self.show_polarity()
        if self._exists(self.points):
            self.points.feature_defaults = {"label": self._polarity}
            # the current colour is for new points: napari also paints the selected ones
            self.points.selected_data = set()
            self.points.current_face_color = L.POSITIVE if self._polarity else L.NEGATIVE

    def _restore_polarity(self) -> None:
        if self._exists(self.points):
            self.points.feature_defaults = {"label": self._polarity}

    def show_polarity(self) -> None:
        """Say the next point's polarity in the Annotate box."""
        sign = "positive (+)" if self._polarity else "negative (-)"
        self._ui.polarity_label.setText(f"next point: {sign}")

    # --- prompt edits --------------------------------------------------------------------------
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
        coords = np.asarray(layer.world_to_data(event.position), float)
        label = 0 if negative else self._polarity
        if self._ui.auto_check.isChecked():
            # the model decides unless the click says negative itself (right-click, Shift)
            if not negative:
                label = self._session.auto_label(L.yx_to_xy(coords[None, -2:])[0])
            self._state.press(coords, label)
        layer.feature_defaults = {"label": label}
        start = np.asarray(event.pos, float)
        self._predict_ahead(coords, label)
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
        if action == "added" and self._outside_points().any():
            # not a prompt (a mask cannot reach it): taken out once napari is done adding it
            QTimer.singleShot(0, self._alive(self._drop_outside_points))
        if action == "added" and self._ui.auto_check.isChecked() and len(self.points.data):
            xy, _ = L.read_points(self.points, ())
            pressed = self._state.take_press()
            if pressed is not None and np.array_equal(pressed[0], self.points.data[-1]):
                label = pressed[1]  # decided at the press, before its own prediction came back
            else:
                label = self._session.auto_label(xy[-1])
            feats = self.points.features
            feats.loc[feats.index[-1], "label"] = label
        L.color_points(self.points)
        self._on_prompts_changed(event)

    def _outside_points(self) -> np.ndarray:
        """Which clicks lie beside the current image (none without an image)."""
        image = self._dock.image_layer()
        data = np.asarray(self.points.data, float)
        if image is None or not len(data):
            return np.zeros(len(data), bool)
        return ~L.inside(data, L.spatial_shape(image))

    def _drop_outside_points(self) -> None:
        if not self._exists(self.points):
            return
        outside = self._outside_points()
        if outside.any():
            self.points.selected_data = set(np.flatnonzero(outside).tolist())
            self.points.remove_selected()
            show_info("sam-pets: a click beside the image is not a prompt")

    def _on_prompts_changed(self, event=None) -> None:
        action = str(getattr(event, "action", "") or "")
        if not action.endswith("ing"):
            self.request_predict()

    def _on_boxes_changed(self, event=None) -> None:
        if str(getattr(event, "action", "") or "") == "added":
            # once napari is done with the event (a box drawn with the mouse is reported as
            # added at the release)
            QTimer.singleShot(0, self._alive(self._keep_newest_box))
        self._on_prompts_changed(event)

    def _keep_newest_box(self) -> None:
        """One box per object: a box added on a plane replaces the older boxes there."""
        layer = self.boxes
        if layer is None or layer not in self._viewer.layers or len(layer.data) < 2:
            return
        shapes = L.prompt_coords(layer)
        ndim = shapes[-1].shape[1]
        plane = tuple(int(round(v)) for v in shapes[-1][0, : ndim - 2])
        kinds = list(layer.shape_type)
        drop = {
            i
            for i, d in enumerate(shapes[:-1])
            if kinds[i] == "rectangle" and L.on_plane(d, plane).all()
        }
        if drop:
            layer.selected_data = drop
            layer.remove_selected()

    def remove(self, all_planes: bool = False) -> None:
        """Remove the clicks and boxes on the current plane (or on every plane).

        Prompts on other planes of a stack are objects still being annotated there.
        """
        image = self._dock.image_layer()
        plane = () if all_planes or image is None else self._dock.plane(image)
        # committed or discarded
        self._state.end_refine(None if all_planes else self._dock.plane_key())
        for layer in (self.points, self.boxes):
            if layer is None or layer not in self._viewer.layers or not len(layer.data):
                continue
            drop = {i for i, d in enumerate(L.prompt_coords(layer)) if L.on_plane(d, plane).all()}
            if drop:
                layer.selected_data = drop
                layer.remove_selected()
        self._session.candidates = None
        self._state.prompts_removed()  # the prompts a pending commit waited for are gone
        self.show_preview()

    # --- prediction ----------------------------------------------------------------------------
    def _read_prompts(self) -> None:
        image = self._dock.image_layer()
        plane = self._dock.plane(image)
        shape = None if image is None else L.spatial_shape(image)
        xy, labels = L.read_points(self.points, plane, shape)
        self._session.set_prompts(xy, labels, L.read_box(self.boxes, plane))

    def _can_predict(self) -> bool:
        return self._dock.predictor is not None and self._state.ready_for(self._dock.plane_key())

    def request_predict(self) -> None:
        """Predict from the current prompts in a worker (coalescing bursts of edits)."""
        if self._can_predict():
            self._read_prompts()
            self._predict_session()

    def _predict_ahead(self, coords: np.ndarray, label: int) -> None:
        """Predict with a click that napari is about to add (layer coordinates)."""
        image = self._dock.image_layer()
        if image is None or not self._can_predict():
            return
        plane = self._dock.plane(image)
        shape = L.spatial_shape(image)
        if not (L.on_plane(coords[None], plane) & L.inside(coords[None], shape)).all():
            return
        xy_new = L.yx_to_xy(coords[None, -2:])
        xy, labels = L.read_points(self.points, plane, shape)
        self._session.set_prompts(
            np.vstack([xy, xy_new]), np.append(labels, label), L.read_box(self.boxes, plane)
        )
        self._predict_session()

    def _predict_session(self) -> None:
        session = self._session
        decision = self._state.want_prediction(
            session.prompt_key(), session.candidates is not None, session.has_prompt
        )
        if decision is Predict.CLEAR:
            session.candidates = None
            self.show_preview()
        if decision is not Predict.RUN:
            return
        request = dataclasses.replace(session)
        predictor = self._dock.predictor
        ready = (self._state.ready_key, predictor)  # the plane and model it is made for
        # a zoomed first click may answer twice: its quick crop, then the best of all three
        state, dock = self._state, self._dock

        def stale() -> bool:  # newer prompts wait, or the plane or model changed meanwhile
            return state.dirty or not state.result_is_current(*ready, dock.predictor)

        worker = function_worker(request.predict_steps, predictor, stale)
        worker.yielded.connect(self._alive(lambda c, r=request: self._on_predicted(r, c, ready)))
        worker.errored.connect(self._alive(self._on_predict_failed))
        worker.finished.connect(self._alive(self._on_predict_finished))
        self._dock.start(worker)

    def _on_predict_failed(self, error: Exception) -> None:
        self._state.prediction_failed()
        self._dock.fail("Prediction failed", error)

    def _on_predicted(self, request: PromptSession, candidates, ready: tuple) -> None:
        if not self._state.result_is_current(ready[0], ready[1], self._dock.predictor):
            return  # the user moved to another image, plane or model meanwhile: not theirs
        self._session.candidates = candidates
        self._session._last = request._last
        self.show_preview()

    def _on_predict_finished(self) -> None:
        if self._state.prediction_done():
            self.request_predict()
        # not if the user moved to another image or slice meanwhile
        if self._state.commit_due(self._dock.plane_key()):
            self._dock.commit()

    def show_preview(self) -> None:
        """Show the selected candidate of the current prediction (or none) in the preview."""
        if not self._exists(self.preview):
            return
        image = self._dock.image_layer()
        if image is not None and self.preview.data.shape != L.spatial_shape(image):
            return  # made for the previous image; the next embedding replaces it
        cands = self._session.candidates
        plane = self._dock.plane(image) if image is not None else ()
        data = self.preview.data
        shown = self._preview_plane
        if shown is not None and shown[0] == layer_id(self.preview) and shown[1] != plane:
            data[shown[1]] = 0  # the slice left behind (a 3D view shows every slice)
        self._preview_plane = (layer_id(self.preview), plane) if plane else None
        view = data[plane] if plane else data
        if cands is not None:
            view[...] = cands.mask  # 1 on the mask, 0 elsewhere: one pass, also for big images
            scores = ", ".join(
                ("[%.2f]" if i == cands.index else "%.2f") % s for i, s in enumerate(cands.scores)
            )
            seen = "object" if cands.object_score > 0 else "no object"
            self._ui.candidate_label.setText(f"candidates (IoU): {scores}; model sees {seen}")
            if self.boxes is not None:
                L.color_boxes(self.boxes, cands.object_score > 0, plane)
        else:
            view[...] = 0
            self._ui.candidate_label.setText("no prediction")
        # Only the pixels change: skip napari's extent and thumbnail work on every click
        # (~3 ms of the GUI thread); the thumbnail follows once the clicks pause.
        self.preview.refresh(thumbnail=False, extent=False, highlight=False)
        if self._thumbnail_timer is None:
            self._thumbnail_timer = QTimer(self._dock)
            self._thumbnail_timer.setSingleShot(True)
            self._thumbnail_timer.setInterval(_THUMBNAIL_DELAY_MS)
            self._thumbnail_timer.timeout.connect(self._alive(self._refresh_preview_thumbnail))
        self._thumbnail_timer.start()
        self._dock.previewed.emit()

    def _refresh_preview_thumbnail(self) -> None:
        if self.preview is not None:
            self.preview.refresh(data_displayed=False, extent=False, highlight=False)
