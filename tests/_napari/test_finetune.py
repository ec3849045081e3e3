"""The Fine-tune dock with real layers: progress, cancel / resume, hot-swap, GUI responsiveness."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

from conftest import convert_pets_dev

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    """Four real pet photos with their ground-truth objects as label images."""
    from sam_pets.eval.items import item_names, iter_items

    root = convert_pets_dev(tmp_path_factory, tiny=8)
    out = []
    for item in iter_items(root, item_names(root, "all")[:4]):
        labels = np.zeros(item.image.shape[:2], np.uint8)
        for oid, m in zip(item.object_ids, item.masks, strict=True):
            labels[m] = oid
        out.append((item.name, item.image, labels))
    return out


@pytest.fixture
def docks(make_napari_viewer, qtbot, pets, tmp_path, monkeypatch):
    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    monkeypatch.setenv("SAM_PETS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SAM_PETS_DATA_DIR", str(tmp_path / "data"))
    viewer = make_napari_viewer()
    for name, image, _ in pets:
        viewer.add_image(image, name=name, rgb=True)
    _, annotator = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    annotator.set_predictor(ImagePredictor(build_model("test", seed=0), device="cpu"))
    qtbot.waitUntil(lambda: annotator.state.ready, timeout=30000)
    for name, _, labels in pets:  # what committing objects on each photo leaves behind
        layer = viewer.add_labels(labels, name=f"{name} labels")
        annotator.targets.annotated[name] = (viewer.layers[name], layer)
    _, dock = viewer.window.add_plugin_dock_widget("sam-pets", "Fine-tune")
    yield viewer, annotator, dock
    dock.cancel()
    qtbot.waitUntil(lambda: not dock.running, timeout=60000)
    qtbot.waitUntil(lambda: not annotator.state.predicting, timeout=30000)


def _records(dock):
    seen = []
    dock.worker.yielded.connect(seen.append)
    return seen


def test_presets_fill_the_fields(docks):
    _, _, dock = docks
    keys = [dock.preset_combo.itemData(i) for i in range(dock.preset_combo.count())]
    assert keys == ["quick", "quick_new_domain", "full"]
    dock.preset_combo.setCurrentIndex(1)
    assert dock.preset == "quick_new_domain"
    assert dock.steps_spin.value() == 300 and dock.lr_spin.value() == 3e-4
    assert dock.freeze_checks["image_encoder"].isChecked()
    dock.preset_combo.setCurrentIndex(0)
    assert dock.steps_spin.value() == 150 and dock.lr_spin.value() == 1e-4


def test_finetune_cancel_resume_and_hot_swap(docks, qtbot, tmp_path):
    from qtpy.QtCore import QTimer

    viewer, annotator, dock = docks
    assert dock.preset == "quick" and dock.freeze_checks["image_encoder"].isChecked()
    dock.steps_spin.setValue(400)
    gc.collect()  # earlier tests' viewers: their collection is not this test's stall
    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    dock.start()
    seen = _records(dock)
    qtbot.waitUntil(lambda: sum(r.message == "train" for r in seen) >= 3, timeout=60000)
    t0 = time.perf_counter()
    dock.cancel()
    qtbot.waitUntil(lambda: not dock.running, timeout=10000)
    timer.stop()
    assert time.perf_counter() - t0 < 2.0  # cancel is honoured after the current step
    assert "cancelled" in dock.status.text()
    folder = dock.folder
    assert (folder / "run" / "last.pt").is_file() and (folder / "data" / "dataset.json").is_file()
    assert str(folder).startswith(str(tmp_path / "data" / "finetune"))
    start = next(r for r in seen if r.message == "start")
    # the photo on screen was embedded by the annotator and is reused; the others are computed
    assert start.metrics["reused"] == 1
    computed = sum(
        r.metrics["computed"] for r in seen if r.message.startswith("caching") and r.step == r.total
    )
    assert computed == 3
    gaps = np.diff(ticks)
    assert len(gaps) > 20 and gaps.max() < 0.1, f"GUI stalled {gaps.max() * 1e3:.0f} ms"
    assert dock.history["loss"] and dock.progress_bar.maximum() == 400
    assert dock.plot.history["loss"]  # the live curve got the steps...
    image = dock.plot.grab().toImage()  # ...and paints them (the curve is blue)
    blue = sum(
        image.pixelColor(x, y).blue() > 150 and image.pixelColor(x, y).red() < 100
        for x in range(0, image.width(), 2)
        for y in range(0, image.height(), 2)
    )
    assert blue > 10

    # resume with fewer steps left: edit the run's total through the job API
    from sam_pets.train.finetune import FinetuneJob

    stopped = max(r.step for r in seen if r.message == "train")
    job = FinetuneJob.resume(folder, steps=stopped + 3)
    dock._launch(job, None, resumed=True)
    seen = _records(dock)
    qtbot.waitUntil(lambda: not dock.running, timeout=60000)
    assert [r.step for r in seen if r.message == "train"] == [stopped + 1, stopped + 2, stopped + 3]
    result = dock.result
    assert result is not None and result.status == "done" and result.after is not None
    assert "before" in dock.result_label.text() and dock.use_button.isEnabled()

    # hot-swap: the annotator predicts with the new weights, then switches back
    old_model = annotator.predictor.model
    click = (np.array([[200.0, 150.0]]), np.array([1]))
    before = annotator.predictor.predict(*click).low_res_logits
    dock.use_new_model()
    qtbot.waitUntil(dock.back_button.isEnabled, timeout=30000)  # swapped, GUI updated
    assert annotator.predictor.model is result.model
    qtbot.waitUntil(lambda: annotator.state.ready and not annotator.state.predicting, timeout=30000)
    after = annotator.predictor.predict(*click).low_res_logits
    assert not np.allclose(before, after)
    assert dock.back_button.isEnabled()
    dock.use_previous_model()
    qtbot.waitUntil(dock.use_button.isEnabled, timeout=30000)
    assert annotator.predictor.model is old_model
    qtbot.waitUntil(lambda: annotator.state.ready, timeout=30000)
    qtbot.waitUntil(lambda: not annotator.state.predicting, timeout=30000)
    assert np.allclose(annotator.predictor.predict(*click).low_res_logits, before)


def test_needs_a_model_and_annotations(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    from napari.utils import notifications

    monkeypatch.setenv("SAM_PETS_DATA_DIR", str(tmp_path))
    warnings = []
    monkeypatch.setattr("sam_pets._napari._finetune.show_warning", warnings.append)
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("sam-pets", "Fine-tune")
    dock.start()
    assert not dock.running and "load a model" in warnings[-1]
    assert notifications is not None


def test_auto_finetune_after_n_commits(docks, qtbot, monkeypatch):
    viewer, annotator, dock = docks
    started = []
    monkeypatch.setattr(dock, "start", lambda: started.append(True))
    dock.auto_spin.setValue(2)
    annotator.committed.emit(1)
    assert not started
    annotator.committed.emit(2)
    assert started == [True]


def _start_and_train(dock, qtbot, steps=400, n=2):
    dock.steps_spin.setValue(steps)
    dock.start_button.click()
    seen = _records(dock)
    qtbot.waitUntil(lambda: sum(r.message == "train" for r in seen) >= n, timeout=60000)
    return seen


def test_closing_the_dock_stops_the_run_and_the_auto_loop(docks, qtbot, monkeypatch):
    viewer, annotator, dock = docks
    dock.auto_spin.setValue(1)
    _start_and_train(dock, qtbot)
    job, worker = dock.job, dock.worker
    viewer.window.remove_dock_widget(dock)  # what the dock's close button does
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10000)
    assert job.stop_requested and (job.folder / "run" / "last.pt").is_file()
    started = []
    monkeypatch.setattr(dock, "start", lambda: started.append(True))
    annotator.committed.emit(7)  # the closed dock no longer starts runs
    assert not started


def test_quitting_the_worker_keeps_the_last_finished_step(docks, qtbot):
    from sam_pets.train.finetune import FinetuneJob, can_resume

    viewer, annotator, dock = docks
    seen = _start_and_train(dock, qtbot)
    folder = dock.folder
    dock.worker.quit()  # what napari does to running workers when the viewer closes
    qtbot.waitUntil(lambda: not dock.running, timeout=10000)
    assert can_resume(folder) and (folder / "run" / "last.pt").is_file()
    stopped = max(r.step for r in seen if r.message == "train")
    job = FinetuneJob.resume(folder, steps=stopped + 1)
    dock._launch(job, None, resumed=True)
    seen = _records(dock)
    qtbot.waitUntil(lambda: not dock.running, timeout=60000)
    assert [r.step for r in seen if r.message == "train"] == [stopped + 1]


def test_a_runtime_error_in_training_is_reported(docks, qtbot, monkeypatch):
    from sam_pets._napari import _finetune
    from sam_pets.train.trainer import Trainer

    viewer, annotator, dock = docks
    errors = []
    monkeypatch.setattr(_finetune, "show_error", errors.append)

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")  # torch raises RuntimeError subclasses

    monkeypatch.setattr(Trainer, "train_step", out_of_memory)
    dock.steps_spin.setValue(5)
    dock.start_button.click()
    qtbot.waitUntil(lambda: not dock.running, timeout=30000)
    assert errors and "out of memory" in errors[-1]
    assert "failed" in dock.status.text() and dock.start_button.isEnabled()


def test_a_run_ending_while_its_progress_bar_repaints(docks, monkeypatch):
    # napari's activity-dock bar processes pending Qt events while it repaints: the run's
    # errored and finished handlers can run inside a progress handler (seen once in CI)
    from napari.utils import progress

    from sam_pets._napari import _finetune
    from sam_pets.progress import Progress

    viewer, annotator, dock = docks
    monkeypatch.setattr(_finetune, "show_error", lambda msg: None)
    dock._pbar = progress(total=0, desc="Fine-tuning")
    real = progress.set_description

    def repaint(self, desc):
        real(self, desc)
        if dock._pbar is not None:  # the error arrives during the repaint
            dock._on_error(RuntimeError("CUDA out of memory"))
            dock._on_worker_done()

    monkeypatch.setattr(progress, "set_description", repaint)
    rec = Progress(3, 10, "train", {"loss": 0.5, "images_per_s": 2.0, "eta_s": 1.0})
    dock._on_progress(rec)  # no AttributeError on the closed bar
    assert dock._pbar is None
    assert dock.status.text() == "failed: CUDA out of memory"  # not overwritten by the step


def test_resume_is_offered_only_for_a_resumable_run(docks, qtbot, monkeypatch, tmp_path):
    from sam_pets._napari import _finetune

    viewer, annotator, dock = docks
    errors = []
    monkeypatch.setattr(_finetune, "show_error", errors.append)
    dock.session_check.setChecked(False)
    dock.dataset_dir.setText(str(tmp_path / "missing"))
    dock.start_button.click()
    assert not dock.running and "not found" in errors[-1]
    (tmp_path / "empty").mkdir()  # a folder, but no dataset in it: fails in the worker
    dock.dataset_dir.setText(str(tmp_path / "empty"))
    dock.start_button.click()
    qtbot.waitUntil(lambda: not dock.running, timeout=30000)
    assert "failed" in dock.status.text() and errors
    assert not dock.resume_button.isEnabled() and dock.folder is None


def test_auto_finetune_counts_an_annotator_opened_later(make_napari_viewer, qtbot, monkeypatch):
    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("sam-pets", "Fine-tune")
    dock.auto_spin.setValue(2)
    started = []
    monkeypatch.setattr(dock, "start", lambda: started.append(True))
    _, annotator = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    viewer.add_image(np.zeros((64, 80, 3), np.uint8), name="photo", rgb=True)
    annotator.set_predictor(ImagePredictor(build_model("test", seed=0), device="cpu"))
    qtbot.waitUntil(lambda: annotator.state.ready, timeout=30000)
    annotator.committed.emit(1)
    annotator.committed.emit(2)
    assert started == [True]


def test_use_new_model_twice_keeps_the_previous_model(docks, qtbot):
    from pathlib import Path

    from sam_pets.model import build_model
    from sam_pets.train.finetune import FinetuneResult

    viewer, annotator, dock = docks
    old, new = annotator.predictor.model, build_model("test", seed=5)
    dock.result = FinetuneResult(Path("."), "done", 1, Path("best.pt"), None, None, new)
    dock.use_button.setEnabled(True)
    dock.use_button.click()
    deadline = time.monotonic() + 30
    while annotator.predictor.model is not new and time.monotonic() < deadline:
        time.sleep(0.01)  # the swap ran on the compute thread; the GUI has not heard yet
    dock.use_button.click()  # a double click
    qtbot.waitUntil(dock.back_button.isEnabled, timeout=30000)
    assert annotator.predictor.model is new
    dock.back_button.click()
    qtbot.waitUntil(dock.use_button.isEnabled, timeout=30000)
    assert annotator.predictor.model is old and dock.previous_model is old


def test_a_click_during_a_model_swap_waits_for_the_new_model(docks, qtbot, monkeypatch):
    """A click right after 'Use new model' (a new image encoder) is predicted once the image
    is embedded again (it was 'Prediction failed: call set_image() before predict()')."""
    from pathlib import Path

    from sam_pets._napari import _annotator
    from sam_pets.model import build_model
    from sam_pets.train.finetune import FinetuneResult

    viewer, annotator, dock = docks
    errors = []
    monkeypatch.setattr(_annotator, "show_error", errors.append)
    new = build_model("test", seed=5)  # other image-encoder weights: the embedding is dropped
    dock.result = FinetuneResult(Path("."), "done", 1, Path("best.pt"), None, None, new)
    dock.use_button.setEnabled(True)
    dock.use_button.click()
    annotator.points.add(np.array([[100.0, 100.0]]))
    qtbot.waitUntil(dock.back_button.isEnabled, timeout=30000)
    qtbot.waitUntil(
        lambda: not annotator.state.predicting and annotator.session.candidates is not None,
        timeout=30000,
    )
    assert errors == [] and annotator.predictor.model is new


def test_closing_the_annotator_during_a_model_swap(docks, qtbot, monkeypatch):
    # the swap's end must leave a closed Annotator alone (it started embedding for it)
    from pathlib import Path

    from sam_pets._napari import _finetune
    from sam_pets.model import build_model
    from sam_pets.train.finetune import FinetuneResult

    viewer, annotator, dock = docks
    monkeypatch.setattr(_finetune, "show_info", lambda msg: None)
    predictor, new = annotator.predictor, build_model("test", seed=5)
    dock.result = FinetuneResult(Path("."), "done", 1, Path("best.pt"), None, None, new)
    dock.use_button.setEnabled(True)
    dock.use_button.click()
    viewer.window.remove_dock_widget(annotator)  # before the swap's end reaches the GUI
    qtbot.waitUntil(dock.back_button.isEnabled, timeout=30000)
    assert not dock.life.closed and predictor.model is new
    assert annotator.state.embedding_key is None and not annotator.state.ready
