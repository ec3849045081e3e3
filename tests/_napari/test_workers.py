"""Workers let go of what they ran, and a closed viewer with the docks is freed (Xvfb)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from qtpy.QtCore import QCoreApplication, QEvent
from qtpy.QtWidgets import QApplication

pytestmark = pytest.mark.gui


def _settle() -> None:
    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QApplication.processEvents()
    gc.collect()


class _Big:
    """Stands for a model or a mask: something a finished worker must not keep."""


def test_a_finished_worker_lets_go_of_its_function_and_arguments(make_napari_viewer, qtbot):
    from sam_pets._napari._workers import function_worker, start_on_compute_thread

    viewer = make_napari_viewer()  # current: napari lists the worker in its window's tasks
    big = _Big()
    ref = weakref.ref(big)
    seen = []
    worker = function_worker(lambda b: seen.append(type(b).__name__), big)
    del big
    with qtbot.waitSignal(worker.finished, timeout=10000):
        start_on_compute_thread(worker)
    _settle()
    assert seen == ["_Big"]
    assert ref() is None
    assert viewer.window._task_status_manager._tasks  # napari still holds the worker itself


def test_a_generator_job_reports_its_answers_and_a_runtime_error(make_napari_viewer, qtbot):
    from sam_pets._napari._workers import JobError, function_worker, start_on_compute_thread

    make_napari_viewer()

    def answers(fail: bool):
        yield "quick"
        if fail:
            raise RuntimeError("out of memory")  # what torch raises
        yield "best"
        return "best"

    got, returned = [], []
    worker = function_worker(answers, False)
    worker.yielded.connect(got.append)
    worker.returned.connect(returned.append)
    with qtbot.waitSignal(worker.finished, timeout=10000):
        start_on_compute_thread(worker)
    assert got == ["quick", "best"] and returned == ["best"]
    # a RuntimeError reaches errored, and finished still comes (the dock's state moves on)
    errors = []
    worker = function_worker(answers, True)
    worker.errored.connect(errors.append)
    with qtbot.waitSignal(worker.finished, timeout=10000):
        start_on_compute_thread(worker)
    assert len(errors) == 1 and isinstance(errors[0], JobError)
    assert "out of memory" in str(errors[0])


def _predict_once(qtbot, viewer):
    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    widget.set_predictor(ImagePredictor(build_model("test", seed=0), device="cpu"))
    qtbot.waitUntil(lambda: widget.state.ready, timeout=30000)
    for yx in ([190.0, 250.0], [150.0, 200.0], [120.0, 300.0]):
        widget.points.add(np.array([yx]))
        qtbot.waitUntil(
            lambda: not widget.state.predicting and widget.session.candidates is not None,
            timeout=30000,
        )
    return widget


def test_clicks_do_not_pile_up_predictions(make_napari_viewer, qtbot, pet_image):
    from sam_pets.predict.session import Candidates

    viewer = make_napari_viewer()
    viewer.add_image(pet_image, name="pet", rgb=True)
    widget = _predict_once(qtbot, viewer)
    _settle()
    alive = [o for o in gc.get_objects() if isinstance(o, Candidates)]
    assert widget.session.candidates in alive
    assert len(alive) <= 2  # the shown one (and the request it came from)


def test_a_closed_viewer_with_the_docks_is_freed(qtbot, pet_image):
    import napari

    viewer = napari.Viewer(show=False)
    viewer.add_image(pet_image, name="pet", rgb=True)
    widget = _predict_once(qtbot, viewer)
    refs = [weakref.ref(viewer), weakref.ref(widget), weakref.ref(widget.predictor)]
    for name in ("Fine-tune", "Evaluate"):
        refs.append(weakref.ref(viewer.window.add_plugin_dock_widget("sam-pets", name)[1]))
    del widget
    viewer.close()
    del viewer
    _settle()
    assert [r() is None for r in refs] == [True] * 5
