"""The Annotator dock driven through real napari layers (Xvfb, test model)."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def predictor():
    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    return ImagePredictor(build_model("test", seed=0), device="cpu")


@pytest.fixture
def annotator(make_napari_viewer, qtbot, pet_image, predictor, tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_PETS_CONFIG_DIR", str(tmp_path / "config"))
    viewer = make_napari_viewer()
    viewer.add_image(pet_image, name="pet", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    widget.set_predictor(predictor)
    qtbot.waitUntil(lambda: widget.state.ready, timeout=30000)
    yield viewer, widget
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)


def _wait_prediction(qtbot, widget):
    qtbot.waitUntil(
        lambda: not widget.state.predicting and widget.session.candidates is not None, timeout=30000
    )


def test_dock_opens_and_creates_layers(annotator):
    viewer, widget = annotator
    names = [ly.name for ly in viewer.layers]
    assert {"sam-pets prompts", "sam-pets box", "sam-pets preview", "pet labels"} <= set(names)
    assert widget.target_layer().data.shape == (375, 500)


def test_positive_point_gives_preview_then_commit_undo(annotator, qtbot):
    viewer, widget = annotator
    empty_thumbnail = widget.preview.thumbnail.copy()
    widget.points.add(np.array([[190.0, 250.0]]))  # (row, col)
    _wait_prediction(qtbot, widget)
    assert widget.preview.data.any()
    assert widget.preview.data.dtype == np.uint8  # napari colours it without hashing pixels
    np.testing.assert_array_equal(widget.preview.data, widget.session.candidates.mask)
    assert len(widget.session.candidates.masks) == 3
    # the layer list's thumbnail follows the preview once the clicks pause
    qtbot.waitUntil(
        lambda: not np.array_equal(widget.preview.thumbnail, empty_thumbnail), timeout=5000
    )
    label = widget.commit()
    target = widget.target_layer().data
    assert label == 1 and (target == 1).sum() > 0
    assert len(widget.points.data) == 0 and not widget.preview.data.any()
    widget.undo()
    assert not widget.target_layer().data.any()


def test_second_object_does_not_overwrite_first(annotator, qtbot):
    viewer, widget = annotator
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    widget.commit()
    first = widget.target_layer().data.copy()
    widget.points.add(np.array([[150.0, 200.0]]))
    _wait_prediction(qtbot, widget)
    assert widget.commit() == 2
    after = widget.target_layer().data
    assert np.array_equal(after[first == 1], first[first == 1])


def test_target_layer_is_uint16_and_grows_to_int32_when_full(annotator, qtbot):
    viewer, widget = annotator
    target = widget.target_layer()
    assert target.data.dtype == np.uint16  # napari colours it without hashing every pixel
    full = target.data.copy()
    full[0, 0] = np.iinfo(np.uint16).max  # an object with the largest id uint16 holds
    target.data = full
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    assert widget.commit() == 65536
    assert target.data.dtype == np.int32 and (target.data == 65536).any()
    assert target.data[0, 0] == 65535
    widget.undo()
    assert not (target.data == 65536).any() and target.data[0, 0] == 65535


def test_cycle_and_polarity_keys(annotator, qtbot):
    viewer, widget = annotator
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    cands = widget.session.candidates
    before = cands.index
    threads, source = [], cands.source
    cands.source = lambda k: threads.append(threading.get_ident()) or source(k)
    widget.cycle()
    assert cands.index == (before + 1) % 3
    # the newly selected candidate is made off the GUI thread, then shown
    qtbot.waitUntil(lambda: cands.made(cands.index), timeout=30000)
    qtbot.waitUntil(
        lambda: np.array_equal(widget.preview.data > 0, cands.candidate(cands.index)),
        timeout=30000,
    )
    assert threads and threading.get_ident() not in threads
    widget.toggle_polarity()
    widget.points.add(np.array([[20.0, 20.0]]))
    assert list(widget.points.features["label"]) == [1, 0]
    assert np.allclose(widget.points.face_color[1], [1, 0, 0, 1])  # negative shows red
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)
    assert list(widget.session.labels) == [1, 0]


def test_model_work_runs_on_one_compute_thread(annotator, qtbot, predictor, monkeypatch):
    """Embedding and every prediction share one long-lived thread, never the GUI thread."""
    import threading

    viewer, widget = annotator
    seen = []
    for name in ("predict", "set_image"):
        orig = getattr(predictor, name)

        def record(*a, _orig=orig, **k):
            seen.append(threading.get_ident())
            return _orig(*a, **k)

        monkeypatch.setattr(predictor, name, record)
    for row in (190.0, 150.0, 120.0):
        widget.points.add(np.array([[row, 250.0]]))
        _wait_prediction(qtbot, widget)
    widget.state.forget_embeddings()  # force a new embedding of the same image
    widget._embed_current()
    qtbot.waitUntil(lambda: widget.state.ready, timeout=30000)
    assert len(seen) >= 4
    assert len(set(seen)) == 1 and seen[0] != threading.get_ident()


def test_quitting_waits_for_model_jobs(annotator, qtbot):
    """On quit, running jobs on the compute thread are asked to stop and waited for."""
    import time as _time

    from sam_pets._napari import _workers

    _, widget = annotator
    started = []

    def slow():
        started.append(1)
        _time.sleep(0.3)
        started.append(2)

    _workers.start_on_compute_thread(_workers.function_worker(slow))
    qtbot.waitUntil(lambda: bool(started), timeout=5000)
    _workers._await_workers()
    assert started == [1, 2]  # it returned only after the job had finished
    assert _workers.compute_pool().activeThreadCount() == 0


def test_free_compute_team_releases_on_the_compute_thread(annotator, qtbot, monkeypatch):
    import threading

    from sam_pets._napari import _workers

    compute, released = [], []
    _workers.start_on_compute_thread(
        _workers.function_worker(lambda: compute.append(threading.get_ident()))
    )
    qtbot.waitUntil(lambda: bool(compute), timeout=5000)
    monkeypatch.setattr(
        _workers, "release_cpu_threads", lambda: released.append(threading.get_ident())
    )
    _workers.free_compute_team()
    qtbot.waitUntil(lambda: compute[0] in released, timeout=5000)
    assert threading.get_ident() in released  # the GUI thread's own team too


def _canvas_pos(viewer) -> tuple[float, float]:
    """A canvas position (x, y pixels) over the middle part of the photo."""
    canvas = viewer.window._qt_viewer.canvas
    w, h = canvas._scene_canvas.size
    rng = np.random.default_rng(0)
    for _ in range(1000):
        pos = (float(rng.uniform(0, w)), float(rng.uniform(0, h)))
        row, col = canvas._map_canvas2world(pos, canvas.view)[-2:]
        if 100 < row < 275 and 120 < col < 380:
            return pos
    raise AssertionError("no canvas position over the photo")


def _press(viewer, pos, button=1, modifiers=()):
    viewer.window._qt_viewer.canvas._scene_canvas.events.mouse_press(
        pos=pos, modifiers=modifiers, button=button
    )


def _release(viewer, pos, button=1, modifiers=()):
    viewer.window._qt_viewer.canvas._scene_canvas.events.mouse_release(
        pos=pos, modifiers=modifiers, button=button
    )


def test_canvas_click_predicts_from_the_press(annotator, qtbot):
    viewer, widget = annotator
    pos = _canvas_pos(viewer)
    _press(viewer, pos)
    _wait_prediction(qtbot, widget)  # the mask comes while the button is still down
    assert len(widget.points.data) == 0 and widget.preview.data.any()
    candidates, key = widget.session.candidates, widget.state.predicted_key
    _release(viewer, pos)
    assert len(widget.points.data) == 1 and list(widget.points.features["label"]) == [1]
    qtbot.wait(50)
    # the point napari added is the one already predicted: no second prediction
    assert not widget.state.predicting and widget.session.candidates is candidates
    assert widget.state.predicted_key == key
    assert np.allclose(widget.session.points_xy[0], widget.points.data[0, ::-1], atol=1e-3)


def test_deleting_a_point_with_the_delete_key_predicts_again(annotator, qtbot):
    from qtpy.QtCore import Qt

    viewer, widget = annotator
    pos = _canvas_pos(viewer)
    for p in (pos, (pos[0] + 30, pos[1] + 10)):
        _press(viewer, p)
        _release(viewer, p)
        qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)
    assert len(widget.session.points_xy) == 2
    points = viewer.layers["sam-pets prompts"]  # the layer itself, as the layer list holds it
    viewer.layers.selection.active = points
    points.mode = "select"
    points.selected_data = {1}
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: len(points.data) == 1, timeout=5000)
    qtbot.waitUntil(lambda: len(widget.session.points_xy) == 1, timeout=5000)
    _wait_prediction(qtbot, widget)
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)
    # the preview is what the one remaining click gives on its own
    xy = points.data[:, ::-1].astype(np.float32)
    alone = widget.predictor.predict(xy, np.array([1]), multimask=True)
    np.testing.assert_array_equal(widget.preview.data, alone.masks[np.argmax(alone.scores)])


def test_dragging_a_point_in_select_mode_predicts_again(annotator, qtbot):
    viewer, widget = annotator
    pos = _canvas_pos(viewer)
    _press(viewer, pos)
    _release(viewer, pos)
    _wait_prediction(qtbot, widget)
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)
    before = widget.session.candidates
    points = viewer.layers["sam-pets prompts"]
    viewer.layers.selection.active = points
    points.mode = "select"
    target = (pos[0] + 40, pos[1] + 25)
    _drag(qtbot, viewer, pos, target)
    canvas = viewer.window._qt_viewer.canvas
    row, col = canvas._map_canvas2world(target, canvas.view)[-2:]
    np.testing.assert_allclose(points.data[0], [row, col], atol=1.0)
    qtbot.waitUntil(
        lambda: np.allclose(widget.session.points_xy[0], [col, row], atol=1.0), timeout=5000
    )
    qtbot.waitUntil(
        lambda: not widget.state.predicting and widget.session.candidates is not before,
        timeout=30000,
    )
    xy = points.data[:, ::-1].astype(np.float32)
    alone = widget.predictor.predict(xy, np.array([1]), multimask=True)
    np.testing.assert_array_equal(widget.preview.data, alone.masks[np.argmax(alone.scores)])


def test_a_click_beside_the_image_is_not_a_prompt(annotator, qtbot):
    viewer, widget = annotator
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)
    shown = widget.session.candidates
    widget.points.add(np.array([[-30.0, 250.0]]))  # above the photo
    qtbot.waitUntil(lambda: len(widget.points.data) == 1, timeout=5000)
    qtbot.wait(50)
    assert not widget.state.predicting and widget.session.candidates is shown
    assert len(widget.session.points_xy) == 1
    # the pixel rows at the photo's edges still count
    widget.points.add(np.array([[374.4, 10.0]]))
    qtbot.waitUntil(lambda: len(widget.session.points_xy) == 2, timeout=5000)
    assert len(widget.points.data) == 2


def test_right_click_and_shift_click_add_one_negative_point(annotator, qtbot):
    viewer, widget = annotator
    pos = _canvas_pos(viewer)
    _press(viewer, pos, button=2)
    _release(viewer, pos, button=2)
    assert list(widget.points.features["label"]) == [0]
    _press(viewer, (pos[0] + 20, pos[1]), modifiers=("Shift",))
    _release(viewer, (pos[0] + 20, pos[1]), modifiers=("Shift",))
    assert list(widget.points.features["label"]) == [0, 0]
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)
    assert list(widget.session.labels) == [0, 0]
    # the next plain click is positive again
    qtbot.waitUntil(lambda: widget.points.feature_defaults["label"][0] == 1, timeout=5000)
    _press(viewer, (pos[0], pos[1] + 20))
    _release(viewer, (pos[0], pos[1] + 20))
    assert list(widget.points.features["label"]) == [0, 0, 1]


def test_drag_adds_no_point_and_drops_its_preview(annotator, qtbot):
    from vispy.app.canvas import MouseEvent

    viewer, widget = annotator
    pos = _canvas_pos(viewer)
    _press(viewer, pos)
    _wait_prediction(qtbot, widget)
    end = (pos[0] + 40, pos[1] + 30)
    viewer.window._qt_viewer.canvas._scene_canvas.events.mouse_move(
        pos=end, modifiers=(), button=1, press_event=MouseEvent(pos=pos, type="mouse_press")
    )
    _release(viewer, end)
    qtbot.waitUntil(
        lambda: not widget.state.predicting and widget.session.candidates is None, timeout=30000
    )
    assert len(widget.points.data) == 0 and not widget.preview.data.any()


def test_auto_polarity_is_decided_at_the_press(annotator, qtbot):
    viewer, widget = annotator
    widget.auto_check.setChecked(True)
    pos = _canvas_pos(viewer)
    _press(viewer, pos)
    _wait_prediction(qtbot, widget)
    # the click's own mask now covers it; that must not turn the click negative
    widget.session.auto_label = lambda xy: 0
    _release(viewer, pos)
    assert list(widget.points.features["label"]) == [1]


def test_box_and_negative_point(annotator, qtbot):
    viewer, widget = annotator
    widget.boxes.add_rectangles(np.array([[40.0, 60.0], [340.0, 420.0]]))
    widget.add_point(np.array([100.0, 300.0]), label=0)
    _wait_prediction(qtbot, widget)
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)
    s = widget.session
    assert s.box_xyxy is not None and list(s.labels) == [0]
    assert len(s.candidates.masks) == 1
    colors = widget.boxes.edge_color
    expected = [0, 1, 0, 1] if s.candidates.object_score > 0 else [1, 0, 0, 1]
    assert np.allclose(colors[0], expected)


def _drag(qtbot, viewer, start, end, steps=4):
    """A left-button drag on the canvas from ``start`` to ``end`` (canvas pixels).

    The event loop runs between the moves, as between a real mouse's (napari applies a move
    only after the previous one has been processed).
    """
    scene = viewer.window._qt_viewer.canvas._scene_canvas
    press = last = scene.events.mouse_press(pos=start, modifiers=(), button=1)
    for t in np.linspace(0, 1, steps + 1)[1:]:
        pos = tuple(a + t * (b - a) for a, b in zip(start, end, strict=True))
        last = scene.events.mouse_move(
            pos=pos, modifiers=(), button=1, buttons=[1], press_event=press, last_event=last
        )
        qtbot.wait(20)
    scene.events.mouse_release(pos=end, modifiers=(), button=1, press_event=press, last_event=last)


def test_a_new_box_replaces_the_old_one(annotator, qtbot):
    viewer, widget = annotator
    canvas = viewer.window._qt_viewer.canvas
    boxes = viewer.layers["sam-pets box"]  # the layer itself, as the layer list selects it
    viewer.layers.selection.active = boxes
    boxes.mode = "add_rectangle"  # napari's rectangle tool: the camera does not pan
    w, h = canvas._scene_canvas.size
    corners = []
    for a, b in (((0.35, 0.35), (0.6, 0.6)), ((0.4, 0.3), (0.7, 0.65))):
        start, end = (w * a[0], h * a[1]), (w * b[0], h * b[1])
        corners.append([canvas._map_canvas2world(p, canvas.view)[-2:] for p in (start, end)])
        _drag(qtbot, viewer, start, end)
        qtbot.waitUntil(lambda: len(widget.boxes.data) == 1, timeout=5000)
        _wait_prediction(qtbot, widget)
        qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)
    (box,) = widget.boxes.data
    (r0, c0), (r1, c1) = corners[-1]
    np.testing.assert_allclose(box.min(0), [min(r0, r1), min(c0, c1)], atol=1)
    np.testing.assert_allclose(box.max(0), [max(r0, r1), max(c0, c1)], atol=1)
    np.testing.assert_allclose(widget.session.box_xyxy, [c0, r0, c1, r1], atol=1)


def _box3d(z, r0, c0, r1, c1):
    """A rectangle on slice ``z`` as napari wants it in 3D: four corners."""
    return np.array([[z, r0, c0], [z, r0, c1], [z, r1, c1], [z, r1, c0]], float)


def test_boxes_on_other_slices_stay(stack_annotator, qtbot):
    viewer, widget = stack_annotator
    _go_to(qtbot, viewer, widget, 0)
    widget.boxes.add_rectangles(_box3d(0, 40, 60, 340, 420))
    _wait_prediction(qtbot, widget)
    before = np.array(widget.boxes.edge_color[0])
    _go_to(qtbot, viewer, widget, 1)
    widget.boxes.add_rectangles(_box3d(1, 50, 70, 300, 400))
    widget.boxes.add_rectangles(_box3d(1, 60, 80, 310, 410))
    qtbot.waitUntil(lambda: len(widget.boxes.data) == 2, timeout=5000)
    first, second = widget.boxes.data
    assert np.all(first[:, 0] == 0) and np.all(second[:, 0] == 1)
    assert second[:, 1].min() == 60.0  # the newer box of slice 1
    _wait_prediction(qtbot, widget)
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)
    # slice 0's box keeps the colour of its own prediction
    np.testing.assert_allclose(widget.boxes.edge_color[0], before)


def test_auto_polarity(annotator, qtbot):
    viewer, widget = annotator
    widget.auto_check.setChecked(True)
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    mask = widget.session.candidates.mask
    ys, xs = np.nonzero(mask)
    widget.points.add(np.array([[ys[0], xs[0]]], float))  # on the mask: removes
    assert widget.points.features["label"].iloc[-1] == 0


def test_refine_selected_label(annotator, qtbot):
    viewer, widget = annotator
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    widget.commit()
    target = widget.target_layer()
    target.selected_label = 1
    widget.refine()
    assert widget.session.refining_label == 1 and widget.session.mask_prompt is not None
    assert len(widget.boxes.data) == 1
    _wait_prediction(qtbot, widget)
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)
    assert widget.commit() == 1  # written back under the same id
    assert set(np.unique(target.data)) <= {0, 1}


@pytest.mark.parametrize("dtype", ["uint16", "grey", "rgba"])
def test_other_image_types(make_napari_viewer, qtbot, predictor, pet_image, dtype):
    image = {
        "uint16": (pet_image[..., 0].astype(np.uint16) * 257),
        "grey": pet_image.mean(-1).astype(np.uint8),
        "rgba": np.dstack([pet_image, np.full(pet_image.shape[:2], 255, np.uint8)]),
    }[dtype]
    viewer = make_napari_viewer()
    viewer.add_image(image, name="img", rgb=dtype == "rgba")
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    widget.set_predictor(predictor)
    qtbot.waitUntil(lambda: widget.state.ready, timeout=30000)
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    assert widget.commit() == 1


@pytest.fixture
def stack_annotator(make_napari_viewer, qtbot, predictor, pet_image):
    stack = np.stack([pet_image[..., 0], pet_image[..., 1], pet_image[..., 2]])
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="stack")
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    widget.set_predictor(predictor)
    qtbot.waitUntil(lambda: widget.state.ready, timeout=30000)
    yield viewer, widget
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)


def _go_to(qtbot, viewer, widget, z):
    viewer.dims.set_current_step(0, z)
    qtbot.waitUntil(lambda: widget.state.ready_for(widget.plane_key()), timeout=30000)
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)


def test_stack_embeds_per_slice(stack_annotator, qtbot):
    viewer, widget = stack_annotator
    _go_to(qtbot, viewer, widget, 1)
    widget.points.add(np.array([[1.0, 190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    widget.commit()
    target = widget.target_layer().data
    assert target.shape == (3, 375, 500)
    assert target[1].any() and not target[0].any() and not target[2].any()
    _go_to(qtbot, viewer, widget, 2)
    assert widget.state.ready_key[1] == (2,)


def test_export_writes_dataset(annotator, qtbot, tmp_path):
    import json

    viewer, widget = annotator
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    widget.commit()
    out = tmp_path / "dataset"
    widget.export_dir.setText(str(out))
    widget.coco_check.setChecked(True)
    widget.export(all_images=True)
    qtbot.waitUntil(lambda: "pet" in widget.export_status.text(), timeout=30000)
    manifest = json.loads((out / "dataset.json").read_text())
    assert [it["name"] for it in manifest["items"]] == ["pet"]
    assert (out / "JPEGImages" / "pet" / "00000.jpg").is_file()
    assert (out / "Annotations" / "pet" / "00000.png").is_file()
    assert (out / "coco.json").is_file()
    widget.export(all_images=False)  # re-export replaces, never duplicates
    qtbot.waitUntil(lambda: "replaced" in widget.export_status.text(), timeout=30000)
    manifest = json.loads((out / "dataset.json").read_text())
    assert len(manifest["items"]) == 1


def test_label_writer(tmp_path):
    from sam_pets._napari._writer import write_labels
    from sam_pets.data.formats.label_images import read_label_image

    labels = np.zeros((20, 30), np.int32)
    labels[5:10, 5:10] = 3
    (path,) = write_labels(str(tmp_path / "labels.png"), labels, {})
    assert np.array_equal(read_label_image(path), labels)


def test_label_writer_through_napari(make_napari_viewer, tmp_path):
    """Save a Labels layer as napari's File > Save does; a stack as PNG says why not."""
    from sam_pets.data.formats.label_images import read_label_image
    from sam_pets.progress import Notice

    viewer = make_napari_viewer()
    stack = np.zeros((3, 10, 12), np.uint16)
    stack[1, 2:5, 3:6] = 7
    viewer.add_labels(stack)
    (tif,) = viewer.layers.save(str(tmp_path / "stack.tif"), selected=True, plugin="sam-pets")
    assert np.array_equal(read_label_image(tif), stack)
    # napari dropped the writer's error and only said "not a valid writer"
    with pytest.warns(Notice, match=r"stack.png not saved: .*3-D \(3, 10, 12\): save it as .tif"):
        assert viewer.layers.save(str(tmp_path / "stack.png"), selected=True) == []
    assert not (tmp_path / "stack.png").exists()
    viewer.add_labels(stack[1])
    (png,) = viewer.layers.save(str(tmp_path / "slice.png"), selected=True, plugin="sam-pets")
    assert np.array_equal(read_label_image(png), stack[1])


def test_bad_checkpoint_is_a_notification(annotator, qtbot, tmp_path, monkeypatch):
    from sam_pets._napari import _annotator

    viewer, widget = annotator
    bad = tmp_path / "broken.pt"
    bad.write_text("not a checkpoint")
    errors = []
    monkeypatch.setattr(_annotator, "show_error", errors.append)
    widget.model_combo.insertItem(0, str(bad))
    widget.model_combo.setCurrentIndex(0)
    widget.load_model()
    qtbot.waitUntil(lambda: bool(errors), timeout=30000)
    assert "broken.pt" in errors[0]
    assert widget.predictor is not None  # the previous model stays


def test_gui_thread_keeps_ticking_during_embedding(make_napari_viewer, qtbot, pet_image):
    """A QTimer on the GUI thread never stalls > 100 ms while an embedding runs.

    The embedding (512 px model) must take over 100 ms, so that running it on the GUI thread
    would show as a gap of that size.
    """
    from qtpy.QtCore import QTimer

    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    viewer = make_napari_viewer()
    viewer.add_image(pet_image, name="pet", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    # collect the earlier tests' garbage now: a full collection of it during the measurement
    # would pause every Python thread (~300 ms seen), which is not the GUI waiting on the model
    gc.collect()
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    widget.set_predictor(ImagePredictor(build_model("cpu_small", seed=0), device="cpu"))
    start = time.perf_counter()
    qtbot.waitUntil(lambda: widget.state.ready, timeout=120000)
    elapsed = time.perf_counter() - start
    timer.stop()
    gaps = np.diff(ticks)
    assert elapsed > 0.1 and len(gaps) > 5
    assert gaps.max() < 0.1, f"GUI stalled {gaps.max() * 1e3:.0f} ms"


@pytest.mark.slow
@pytest.mark.parametrize("config", ["tiny", "base_plus"])
def test_full_size_model_in_the_widget(make_napari_viewer, qtbot, pet_image, config):
    """A 1024-px SAM 2.1 architecture (random weights) through the whole widget path."""
    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    viewer = make_napari_viewer()
    viewer.add_image(pet_image, name="pet", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    widget.set_predictor(ImagePredictor(build_model(config, seed=0), device="cpu"))
    qtbot.waitUntil(lambda: widget.state.ready, timeout=300000)
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=60000)
    assert np.shape(widget.session.candidates.masks) == (3, 375, 500)
    assert widget.commit() == 1


def _click_and_predict(qtbot, widget, row=190.0, col=250.0):
    widget.points.add(np.array([[row, col]]))
    _wait_prediction(qtbot, widget)
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)


def _record(monkeypatch, name):
    """Collect the notifications ``name`` (e.g. show_warning) of the Annotator's modules."""
    from sam_pets._napari import _annotator, _export, _targets

    seen = []
    for module in (_annotator, _export, _targets):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, seen.append)
    return seen


def test_undo_only_touches_the_layer_it_committed_into(annotator, qtbot, monkeypatch):
    viewer, widget = annotator
    warnings = _record(monkeypatch, "show_warning")
    _click_and_predict(qtbot, widget)
    assert widget.commit() == 1
    viewer.layers.remove(widget.target_layer())
    own = viewer.add_labels(np.zeros((375, 500), np.int32), name="my labels")
    own.data[150:250, 200:300] = 7
    widget.undo()
    assert (own.data == 7).sum() == 100 * 100  # never the user's layer
    assert warnings and "deleted" in warnings[-1]
    assert not widget.session.can_undo


def test_undo_keeps_later_edits(annotator, qtbot):
    viewer, widget = annotator
    _click_and_predict(qtbot, widget)
    widget.commit()
    target = widget.target_layer()
    ys, xs = np.nonzero(target.data == 1)
    target.data[ys[0], xs[0]] = 9  # painted by hand after the commit
    widget.undo()
    assert target.data[ys[0], xs[0]] == 9 and not (target.data == 1).any()


def test_each_image_has_its_own_target_and_prompts(annotator, qtbot, pet_image):
    viewer, widget = annotator
    _click_and_predict(qtbot, widget)
    assert widget.commit() == 1
    widget.points.add(np.array([[150.0, 200.0]]))  # an unfinished object on "pet"
    flipped = viewer.add_image(pet_image[:, ::-1], name="flipped", rgb=True)
    # a newly opened image is the one to annotate; the old image's prompts go
    assert widget.image_combo.currentText() == "flipped"
    assert len(widget.points.data) == 0 and widget.session.candidates is None
    qtbot.waitUntil(lambda: widget.state.ready_for(widget.plane_key()), timeout=30000)
    qtbot.wait(0)
    assert viewer.layers.selection.active.name == "sam-pets prompts"  # clicks go there
    target = widget.target_layer()
    assert target.name == "flipped labels" and not target.data.any()
    _click_and_predict(qtbot, widget)
    assert widget.commit() == 1
    widget.image_combo.setCurrentText("pet")
    assert widget.target_layer().name == "pet labels"
    assert widget.labels_combo.currentText() == "pet labels"
    items = {name: labels.max() for name, _, labels, _ in widget.annotated_items()}
    assert items == {"pet": 1, "flipped": 1}
    assert flipped in viewer.layers


def test_a_chosen_target_must_fit_the_image(annotator, qtbot, monkeypatch):
    viewer, widget = annotator
    warnings = _record(monkeypatch, "show_warning")
    viewer.add_labels(np.zeros((10, 10), np.uint8), name="small")
    widget.labels_combo.setCurrentText("small")
    widget.labels_combo.activated.emit(widget.labels_combo.currentIndex())
    assert warnings and "does not fit" in warnings[-1]
    assert widget.target_layer().name == "pet labels"
    own = viewer.add_labels(np.zeros((375, 500), np.uint16), name="mine")
    widget.labels_combo.setCurrentText("mine")
    widget.labels_combo.activated.emit(widget.labels_combo.currentIndex())
    assert widget.target_layer() is own


def test_deleting_the_current_image_moves_on(annotator, qtbot, pet_image):
    viewer, widget = annotator
    viewer.add_image(pet_image[::-1], name="other", rgb=True)
    widget.image_combo.setCurrentText("pet")
    qtbot.waitUntil(lambda: widget.state.ready_for(widget.plane_key()), timeout=30000)
    _click_and_predict(qtbot, widget)
    assert widget.preview.data.any()
    viewer.layers.remove("pet")
    assert widget.image_combo.currentText() == "other"
    assert widget.session.candidates is None and not widget.preview.data.any()
    qtbot.waitUntil(lambda: widget.state.ready_for(widget.plane_key()), timeout=30000)
    _click_and_predict(qtbot, widget)
    assert widget.commit() == 1
    assert widget.target_layer().name == "other labels"


def test_commit_that_changes_nothing_keeps_the_prompts(annotator, qtbot, monkeypatch):
    viewer, widget = annotator
    warnings = _record(monkeypatch, "show_warning")
    target = widget.target_layer()
    target.data = np.ones_like(target.data)  # every pixel belongs to object 1
    _click_and_predict(qtbot, widget)
    committed = []
    widget.committed.connect(committed.append)
    assert widget.commit() == 0
    assert not committed and len(widget.points.data) == 1
    assert warnings and "overwrite" in warnings[-1]
    assert not widget.session.can_undo


def test_polarity_key_after_a_commit(annotator, qtbot):
    viewer, widget = annotator
    _click_and_predict(qtbot, widget)
    widget.points.selected_data = {0}  # as napari leaves a point added with the mouse
    widget.commit()
    widget.toggle_polarity()  # no point is selected any more: nothing to repaint
    assert widget.polarity_label.text().endswith("negative (-)")
    widget.points.add(np.array([[20.0, 20.0]]))
    assert list(widget.points.features["label"]) == [0]
    assert np.allclose(widget.points.face_color[0], [1, 0, 0, 1])


def test_polarity_key_does_not_repaint_the_last_point(annotator, qtbot):
    viewer, widget = annotator
    widget.points.add(np.array([[190.0, 250.0]]))
    widget.points.selected_data = {0}
    widget.toggle_polarity()
    assert np.allclose(widget.points.face_color[0], [0, 1, 0, 1])  # still positive
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)


def test_commit_on_a_slice_keeps_other_slices_prompts(stack_annotator, qtbot):
    viewer, widget = stack_annotator
    widget.points.add(np.array([[0.0, 190.0, 250.0]]))  # unfinished on slice 0
    _go_to(qtbot, viewer, widget, 2)
    widget.points.add(np.array([[2.0, 150.0, 200.0]]))
    _wait_prediction(qtbot, widget)
    assert widget.commit() == 1
    assert widget.points.data.tolist() == [[0.0, 190.0, 250.0]]
    assert widget.target_layer().data[2].any() and not widget.target_layer().data[0].any()


def _commit_and_refine_on_slice_1(qtbot, widget):
    """Commit one object on slice 1 of the stack and start refining it; returns the target."""
    widget.points.add(np.array([[1.0, 190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    assert widget.commit() == 1
    target = widget.target_layer()
    target.selected_label = 1
    widget.refine()
    return target


def test_refine_on_a_stack(stack_annotator, qtbot):
    viewer, widget = stack_annotator
    _go_to(qtbot, viewer, widget, 1)
    target = _commit_and_refine_on_slice_1(qtbot, widget)
    assert widget.session.refining_label == 1
    (box,) = widget.boxes.data
    assert box.shape == (4, 3) and np.all(box[:, 0] == 1)
    _wait_prediction(qtbot, widget)
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)
    assert widget.commit() == 1
    assert target.data[1].any() and not target.data[0].any() and not target.data[2].any()


def test_closing_the_dock_shuts_it_down(annotator, qtbot):
    from sam_pets._napari._annotator import _key_handler, annotator_for

    viewer, widget = annotator
    _click_and_predict(qtbot, widget)
    widget.commit()
    target = widget.target_layer()
    viewer.window.remove_dock_widget(widget)
    qtbot.waitUntil(lambda: annotator_for(viewer) is None, timeout=5000)
    names = [ly.name for ly in viewer.layers]
    assert names == ["pet", "pet labels"]  # the prompt and preview layers went with it
    _key_handler("undo")(viewer)  # the keys no longer reach it
    assert (target.data == 1).any()
    # a new dock continues in the same labels layer, with one set of prompt layers
    _, again = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    again.set_predictor(widget.predictor)
    qtbot.waitUntil(lambda: again.state.ready, timeout=30000)
    names = [ly.name for ly in viewer.layers]
    assert names.count("sam-pets prompts") == 1 and again.target_layer() is target
    assert annotator_for(viewer) is again


def test_failed_load_keeps_the_model_status(annotator, qtbot, tmp_path, monkeypatch):
    viewer, widget = annotator
    errors = _record(monkeypatch, "show_error")
    status = widget.model_status.text()
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\0" * 64)
    widget.model_combo.insertItem(0, str(bad))
    widget.model_combo.setCurrentIndex(0)
    widget.load_model()
    qtbot.waitUntil(lambda: bool(errors) and widget.load_button.isEnabled(), timeout=30000)
    assert widget.model_status.text() == status


def test_auto_polarity_respects_a_right_click(annotator, qtbot):
    viewer, widget = annotator
    widget.auto_check.setChecked(True)
    pos = _canvas_pos(viewer)
    _press(viewer, pos, button=2)
    _release(viewer, pos, button=2)
    assert list(widget.points.features["label"]) == [0]


def test_export_name_clash_is_a_warning(annotator, qtbot, tmp_path, monkeypatch, pet_image):
    from sam_pets.data.export import export_annotation

    viewer, widget = annotator
    warnings = _record(monkeypatch, "show_warning")
    out = tmp_path / "ds"
    other = np.ascontiguousarray(pet_image[::-1])
    export_annotation(out, other, np.ones(other.shape[:2], np.uint8), "pet", {})
    _click_and_predict(qtbot, widget)
    widget.commit()
    widget.export_dir.setText(str(out))
    widget.export()
    qtbot.waitUntil(lambda: bool(warnings), timeout=30000)
    assert "skipped pet" in warnings[-1] and "rename the image layer" in warnings[-1]


def test_a_stack_after_clearing_every_layer(annotator, qtbot, pet_image, monkeypatch):
    import sys

    viewer, widget = annotator
    errors = []  # napari hands exceptions in its event callbacks to sys.excepthook
    monkeypatch.setattr(sys, "excepthook", lambda *exc: errors.append(exc))
    viewer.layers.clear()
    grey = pet_image.mean(-1).astype(np.uint8)
    viewer.add_image(np.stack([np.stack([grey, grey[::-1]])] * 2), name="tz")  # (t, z, y, x)
    viewer.dims.set_current_step(1, 1)
    _go_to(qtbot, viewer, widget, 1)  # (t, z) = (1, 1)
    assert widget.preview.data.shape == (2, 2, 375, 500)
    widget.points.add(np.array([[1.0, 1.0, 190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    assert widget.commit() == 1
    target = widget.target_layer()
    assert (
        target.name == "tz labels"
        and target.data[1, 1].any()
        and target.data.sum() == (target.data[1, 1].sum())
    )
    assert not errors


def test_a_prediction_for_the_previous_image_is_not_shown(annotator, qtbot, pet_image, monkeypatch):
    """A click's mask that arrives after the user opened another image is dropped (else 'n'
    would commit the old image's object into the new image's labels)."""
    viewer, widget = annotator
    predict, set_image = widget.predictor.predict, widget.predictor.set_image
    predicting, embedding = threading.Event(), threading.Event()
    monkeypatch.setattr(
        widget.predictor, "predict", lambda *a, **k: predicting.wait(10) and predict(*a, **k)
    )
    widget.points.add(np.array([[190.0, 250.0]]))
    assert widget.state.predicting
    monkeypatch.setattr(
        widget.predictor, "set_image", lambda img: embedding.wait(10) and set_image(img)
    )
    viewer.add_image(pet_image[::-1].copy(), name="other", rgb=True)  # same size
    predicting.set()  # the old click's prediction ends while "other" is being embedded
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=10000)
    qtbot.wait(50)
    assert widget.session.candidates is None and not widget.preview.data.any()
    assert widget.commit() == 0
    assert not widget.target_layer().data.any()
    embedding.set()
    qtbot.waitUntil(lambda: widget.state.ready, timeout=30000)


def test_exports_clicked_in_a_row_run_one_at_a_time(annotator, qtbot, pet_image, tmp_path):
    """Several Export clicks before the first ends: every image stays in the manifest (two
    exports at once each rewrote the manifest, dropping the other's items for good)."""
    import json

    viewer, widget = annotator
    for i in range(3):
        if i:
            previous = widget.state.ready_key
            viewer.add_image(np.roll(pet_image, 40 * i, axis=1), name=f"img{i}", rgb=True)
            qtbot.waitUntil(
                lambda p=previous: widget.state.ready_key not in (None, p), timeout=30000
            )
        widget.points.add(np.array([[190.0, 250.0]]))
        _wait_prediction(qtbot, widget)
        assert widget.commit()
    widget.export_dir.setText(str(tmp_path / "ds"))
    reports = []
    for k in range(6):
        widget.export(all_images=bool(k % 2))
        widget.last_worker.returned.connect(reports.append)
    qtbot.waitUntil(lambda: len(reports) == 6, timeout=60000)
    assert not [line for r in reports for line in r if "skipped" in line]
    manifest = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert sorted(r["name"] for r in manifest["items"]) == ["img1", "img2", "pet"]


def test_an_export_writes_the_labels_of_its_click(annotator, qtbot, tmp_path):
    """An object committed while an export waits for the one before it is not exported."""
    from sam_pets._napari._workers import function_worker, start_in_order

    viewer, widget = annotator
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    assert widget.commit()
    widget.export_dir.setText(str(tmp_path / "ds"))
    hold = threading.Event()
    start_in_order(function_worker(hold.wait, 30))  # the export waits behind this job
    widget.export()
    export = widget.last_worker
    widget.points.add(np.array([[60.0, 60.0]]))
    _wait_prediction(qtbot, widget)
    assert widget.commit() == 2
    with qtbot.waitSignal(export.finished, timeout=60000):
        hold.set()
    assert widget.export_status.text() == "added pet (1 objects)"


def test_loading_a_model_again_retries_a_failed_embedding(annotator, qtbot, pet_image, monkeypatch):
    viewer, widget = annotator
    errors = _record(monkeypatch, "show_error")
    grey = pet_image.mean(-1).astype(np.float32)
    grey[0, 0] = np.nan
    layer = viewer.add_image(grey, name="nan")
    qtbot.waitUntil(lambda: bool(errors), timeout=30000)
    assert "Could not embed nan" in errors[0] and not widget.state.ready
    layer.data = np.nan_to_num(grey)
    widget.set_predictor(widget.predictor)  # as Load model does
    qtbot.waitUntil(lambda: widget.state.ready_for(widget.plane_key()), timeout=30000)
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)


def test_new_pixels_in_the_image_are_embedded_again(annotator, qtbot, pet_image):
    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    viewer, widget = annotator
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    new = np.ascontiguousarray(pet_image[::-1, ::-1])  # e.g. a filter replaced the pixels
    viewer.layers["pet"].data = new
    assert not widget.state.ready  # no click meets the old embedding meanwhile
    qtbot.waitUntil(lambda: widget.state.ready, timeout=30000)
    _wait_prediction(qtbot, widget)
    fresh = ImagePredictor(build_model("test", seed=0), device="cpu")
    fresh.set_image(new)
    expected = fresh.predict(np.array([[250.0, 190.0]]), np.array([1]))
    np.testing.assert_array_equal(
        np.sort(widget.session.candidates.scores), np.sort(expected.scores)
    )
    np.testing.assert_array_equal(widget.preview.data > 0, expected.masks[int(expected.best())])


def test_moving_to_another_slice_clears_the_last_slices_preview(stack_annotator, qtbot):
    viewer, widget = stack_annotator
    _go_to(qtbot, viewer, widget, 0)  # napari opens a stack at its middle slice
    widget.points.add(np.array([[0.0, 190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    assert widget.preview.data[0].any()
    _go_to(qtbot, viewer, widget, 1)
    assert not widget.preview.data.any()  # a 3D view would still show slice 0's preview


def test_refining_resumes_after_visiting_another_slice(stack_annotator, qtbot):
    viewer, widget = stack_annotator
    target = _commit_and_refine_on_slice_1(qtbot, widget)
    _wait_prediction(qtbot, widget)
    _go_to(qtbot, viewer, widget, 2)
    _go_to(qtbot, viewer, widget, 1)
    _wait_prediction(qtbot, widget)
    assert widget.session.refining_label == 1 and widget.session.mask_prompt is not None
    assert widget.commit() == 1  # still written back under the refined id, not a new one
    assert set(np.unique(target.data)) <= {0, 1}
    # the refinement ended with its commit: a new object on that slice gets a new id
    widget.points.add(np.array([[1.0, 20.0, 20.0]]))
    _wait_prediction(qtbot, widget)
    assert widget.session.refining_label is None and widget.session.mask_prompt is None


def test_commit_during_a_prediction_writes_the_latest_prompts(annotator, qtbot):
    viewer, widget = annotator
    widget.points.add(np.array([[190.0, 250.0]]))
    _wait_prediction(qtbot, widget)
    first = widget.session.candidates.mask.copy()
    shown = []
    widget.previewed.connect(
        lambda: (
            widget.session.candidates is not None
            and shown.append(widget.session.candidates.mask.copy())
        )
    )
    widget.points.add(np.array([[120.0, 300.0]]))  # 'n' pressed before its mask came back
    assert widget.state.predicting
    widget.commit()
    widget.commit()  # pressed twice: still one object
    qtbot.waitUntil(
        lambda: not widget.state.predicting and len(widget.points.data) == 0, timeout=30000
    )
    qtbot.wait(100)
    both = shown[-1]  # the mask of both clicks
    assert not np.array_equal(both, first)
    np.testing.assert_array_equal(widget.target_layer().data, both.astype(np.uint16))
    assert not widget.preview.data.any() and widget.session.candidates is None


@pytest.fixture
def zoom_annotator(make_napari_viewer, qtbot, pet_image, tmp_path, monkeypatch):
    """The Annotator with the built-in model, which zooms in on objects by default."""
    from sam_pets.model import resolve_model
    from sam_pets.predict import ImagePredictor
    from sam_pets.predict.zoom import default_for

    monkeypatch.setenv("SAM_PETS_CONFIG_DIR", str(tmp_path / "config"))
    model = resolve_model("pets")
    viewer = make_napari_viewer()
    viewer.add_image(pet_image, name="pet", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    assert not widget.zoom_check.isEnabled()  # no model yet
    widget.set_predictor(ImagePredictor(model, device="cpu", zoom=default_for(model)))
    qtbot.waitUntil(lambda: widget.state.ready, timeout=30000)
    yield viewer, widget
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)


def test_zoom_check_box_follows_the_model_and_drives_the_predictions(zoom_annotator, qtbot):
    viewer, widget = zoom_annotator
    p = widget.predictor
    assert widget.zoom_check.isEnabled() and widget.zoom_check.isChecked() and p.zoom
    box = np.array([60.0, 40.0, 420.0, 340.0], np.float32)  # (x0, y0, x1, y1)
    widget.boxes.add_rectangles(np.array([[box[1], box[0]], [box[3], box[2]]]))
    _wait_prediction(qtbot, widget)
    zoomed = p.predict(box_xyxy=box, multimask=False)
    assert zoomed.window is not None
    assert widget.session.candidates.window == zoomed.window
    np.testing.assert_array_equal(widget.preview.data > 0, zoomed.masks[0])
    # clicks inside the box, each answered in the box's crop
    widget.add_point(np.array([300.0, 400.0]), label=0)  # (row, col)
    qtbot.waitUntil(
        lambda: len(widget.session.labels) == 1 and not widget.state.predicting, timeout=30000
    )
    first = widget.session.candidates
    np.testing.assert_array_equal(
        widget.preview.data > 0,
        p.predict(np.array([[400.0, 300.0]]), np.array([0]), box, multimask=False).masks[0],
    )
    widget.add_point(np.array([80.0, 380.0]), label=0)
    qtbot.waitUntil(
        lambda: len(widget.session.labels) == 2 and not widget.state.predicting, timeout=30000
    )
    assert widget.session.candidates is not first
    # zoomed, a correction is answered from all the prompts again, without the previous mask
    assert not p.mask_feedback
    again = p.predict(
        np.array([[400.0, 300.0], [380.0, 80.0]]), np.array([0, 0]), box, multimask=False
    )
    assert first.window is not None
    np.testing.assert_array_equal(widget.preview.data > 0, again.masks[0])
    # off: the same prompts again, on the whole image
    widget.zoom_check.setChecked(False)
    assert not p.zoom
    qtbot.waitUntil(
        lambda: (
            not widget.state.predicting
            and widget.session.candidates is not None
            and widget.session.candidates.window is None
        ),
        timeout=30000,
    )
    plain = p.predict(
        np.array([[400.0, 300.0], [380.0, 80.0]]), np.array([0, 0]), box, multimask=False
    )
    np.testing.assert_array_equal(widget.preview.data > 0, plain.masks[0])
    assert widget.commit() == 1
    np.testing.assert_array_equal(widget.target_layer().data == 1, plain.masks[0])


def test_first_click_shows_its_quick_crop_then_the_best_of_each_candidates(zoom_annotator, qtbot):
    viewer, widget = zoom_annotator
    p = widget.predictor
    assert p.zoom_candidates  # the built-in model: each candidate of a first click zoomed
    shown = []
    widget.previewed.connect(lambda: shown.append(widget.preview.data > 0))
    widget.add_point(np.array([200.0, 250.0]), label=1)  # (row, col) on the pet
    qtbot.waitUntil(
        lambda: len(widget.session.labels) == 1 and not widget.state.predicting, timeout=30000
    )
    click, label = np.array([[250.0, 200.0]]), np.array([1])
    quick = p.predict(click, label, multimask=True, zoom_candidates=False)
    best = p.predict(click, label, multimask=True)
    assert len(shown) == 2  # the quick answer at once, then the best of the three crops
    np.testing.assert_array_equal(shown[0], quick.masks[0])
    np.testing.assert_array_equal(shown[1], best.masks[0])
    assert widget.session.candidates.window == best.window
    assert widget.commit() == 1
    np.testing.assert_array_equal(widget.target_layer().data == 1, best.masks[0])


def test_first_click_window_menu_drives_the_predictor(zoom_annotator, qtbot):
    viewer, widget = zoom_annotator
    p, combo = widget.predictor, widget.window_combo
    assert combo.isEnabled() and combo.currentText() == "the whole image"
    assert p.first_click_window == 0.0
    combo.setCurrentText("1/4 of the image")
    assert p.first_click_window == 0.25
    widget.add_point(np.array([200.0, 250.0]), label=1)  # (row, col) on the pet
    qtbot.waitUntil(
        lambda: len(widget.session.labels) == 1 and not widget.state.predicting, timeout=30000
    )
    _wait_prediction(qtbot, widget)
    ref = p.predict(np.array([[250.0, 200.0]]), np.array([1]), multimask=True)
    shown = widget.session.candidates
    assert shown.window == ref.window
    np.testing.assert_array_equal(widget.preview.data > 0, ref.masks[ref.best()])
    widget.zoom_check.setChecked(False)  # the window is part of zooming in
    assert not combo.isEnabled()
    widget.zoom_check.setChecked(True)
    assert combo.isEnabled() and combo.currentText() == "1/4 of the image"
    _wait_prediction(qtbot, widget)
    assert widget._object_meta()["first_click_window"] == 0.25  # what the journal records
    assert widget.commit() == 1
