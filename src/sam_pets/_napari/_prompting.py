"""Prompting in the Annotator: clicks and boxes in, predictions in a worker, preview out."""

from __future__ import annotations

import dataclasses

import numpy as np
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer

from sam_pets._napari import _layers as L
from sam_pets._napari._targets import layer_id
from sam_pets._napari._workers import function_worker
from sam_pets.predict.session import PromptSession
from sam_pets.predict.state import Predict

_CLICK_DISTANCE = 5  # canvas pixels; a press moved further is a drag, not a click (as napari)
_THUMBNAIL_DELAY_MS = 300  # the preview layer's thumbnail is redrawn once clicks pause this long


class PromptingMixin:
    """Mixin of the Annotator: prompt layers' events, predict-ahead, coalesced predictions."""

    _thumbnail_timer: QTimer | None = None
    _preview_plane: tuple | None = None  # (preview layer, plane) of a stack's shown preview

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
        if self.auto_check.isChecked():
            # the model decides unless the click says negative itself (right-click, Shift)
            if not negative:
                label = self.session.auto_label(L.yx_to_xy(coords[None, -2:])[0])
            self.state.press(coords, label)
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
        if action == "added" and self.auto_check.isChecked() and len(self.points.data):
            xy, _ = L.read_points(self.points, ())
            pressed = self.state.take_press()
            if pressed is not None and np.array_equal(pressed[0], self.points.data[-1]):
                label = pressed[1]  # decided at the press, before its own prediction came back
            else:
                label = self.session.auto_label(xy[-1])
            feats = self.points.features
            feats.loc[feats.index[-1], "label"] = label
        L.color_points(self.points)
        self._on_prompts_changed(event)

    def _outside_points(self) -> np.ndarray:
        """Which clicks lie beside the current image (none without an image)."""
        image = self._image_layer()
        data = np.asarray(self.points.data, float)
        if image is None or not len(data):
            return np.zeros(len(data), bool)
        return ~L.inside(data, L.spatial_shape(image))

    def _drop_outside_points(self) -> None:
        if self.points is None or self.points not in self.viewer.layers:
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
        if layer is None or layer not in self.viewer.layers or len(layer.data) < 2:
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

    def _remove_prompts(self, all_planes: bool = False) -> None:
        """Remove the clicks and boxes on the current plane (or on every plane).

        Prompts on other planes of a stack are objects still being annotated there.
        """
        image = self._image_layer()
        plane = () if all_planes or image is None else self._plane(image)
        self.state.end_refine(None if all_planes else self._key())  # committed or discarded
        for layer in (self.points, self.boxes):
            if layer is None or layer not in self.viewer.layers or not len(layer.data):
                continue
            drop = {i for i, d in enumerate(L.prompt_coords(layer)) if L.on_plane(d, plane).all()}
            if drop:
                layer.selected_data = drop
                layer.remove_selected()
        self.session.candidates = None
        self.state.prompts_removed()  # the prompts a pending commit waited for are gone
        self._show_preview()

    # --- prediction ----------------------------------------------------------------------------
    def _read_prompts(self) -> None:
        image = self._image_layer()
        plane = self._plane(image)
        shape = None if image is None else L.spatial_shape(image)
        xy, labels = L.read_points(self.points, plane, shape)
        self.session.set_prompts(xy, labels, L.read_box(self.boxes, plane))

    def _can_predict(self) -> bool:
        return self.predictor is not None and self.state.ready_for(self._key())

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
        shape = L.spatial_shape(image)
        if not (L.on_plane(coords[None], plane) & L.inside(coords[None], shape)).all():
            return
        xy_new = L.yx_to_xy(coords[None, -2:])
        xy, labels = L.read_points(self.points, plane, shape)
        self.session.set_prompts(
            np.vstack([xy, xy_new]), np.append(labels, label), L.read_box(self.boxes, plane)
        )
        self._predict_session()

    def _predict_session(self) -> None:
        decision = self.state.want_prediction(
            self.session.prompt_key(), self.session.candidates is not None, self.session.has_prompt
        )
        if decision is Predict.CLEAR:
            self.session.candidates = None
            self._show_preview()
        if decision is not Predict.RUN:
            return
        request = dataclasses.replace(self.session)
        ready = (self.state.ready_key, self.predictor)  # the plane and model it is made for
        worker = function_worker(request.predict, self.predictor)
        worker.returned.connect(self._alive(lambda _c, r=request: self._on_predicted(r, ready)))
        worker.errored.connect(self._alive(self._on_predict_failed))
        worker.finished.connect(self._alive(self._on_predict_finished))
        self._start(worker)

    def _on_predict_failed(self, error: Exception) -> None:
        self.state.prediction_failed()
        self._fail("Prediction failed", error)

    def _on_predicted(self, request: PromptSession, ready: tuple) -> None:
        if not self.state.result_is_current(ready[0], ready[1], self.predictor):
            return  # the user moved to another image, plane or model meanwhile: not theirs
        self.session.candidates = request.candidates
        self.session._last = request._last
        self._show_preview()

    def _on_predict_finished(self) -> None:
        if self.state.prediction_done():
            self.request_predict()
        if self.state.commit_due(self._key()):  # not if the user moved to another image or slice
            self.commit()

    def _show_preview(self) -> None:
        if self.preview is None or self.preview not in self.viewer.layers:
            return
        image = self._image_layer()
        if image is not None and self.preview.data.shape != L.spatial_shape(image):
            return  # made for the previous image; the next embedding replaces it
        cands = self.session.candidates
        plane = self._plane(image) if image is not None else ()
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
            self.candidate_label.setText(f"candidates (IoU): {scores}; model sees {seen}")
            if self.boxes is not None:
                L.color_boxes(self.boxes, cands.object_score > 0, plane)
        else:
            view[...] = 0
            self.candidate_label.setText("no prediction")
        # Only the pixels change: skip napari's extent and thumbnail work on every click
        # (~3 ms of the GUI thread); the thumbnail follows once the clicks pause.
        self.preview.refresh(thumbnail=False, extent=False, highlight=False)
        if self._thumbnail_timer is None:
            self._thumbnail_timer = QTimer(self)
            self._thumbnail_timer.setSingleShot(True)
            self._thumbnail_timer.setInterval(_THUMBNAIL_DELAY_MS)
            self._thumbnail_timer.timeout.connect(self._alive(self._refresh_preview_thumbnail))
        self._thumbnail_timer.start()
        self.previewed.emit()

    def _refresh_preview_thumbnail(self) -> None:
        if self.preview is not None:
            self.preview.refresh(data_displayed=False, extent=False, highlight=False)
