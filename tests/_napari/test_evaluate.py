"""The Evaluate dock: runs in a worker, fills the table and plots, opens the worst cases."""

from __future__ import annotations

import pytest
from qtpy.QtCore import QThreadPool

from eval.conftest import synthetic_items, write_dataset

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldock") / "ds"
    write_dataset(root, synthetic_items())
    return root


@pytest.fixture
def dock(make_napari_viewer, tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("SAM_PETS_CONFIG_DIR", str(tmp_path / "config"))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Evaluate")
    return viewer, widget


def _run(qtbot, widget):
    widget.run()
    qtbot.waitUntil(lambda: widget.run_button.isEnabled(), timeout=60000)


def test_evaluate_random_model_then_open_worst(dock, dataset, qtbot, tmp_path, monkeypatch):
    viewer, widget = dock
    assert widget.model_combo.currentText() == "pets (built-in)"
    widget.model_combo.setCurrentText("random weights: test")
    widget.dataset_edit.setText(str(dataset))
    for p, check in widget.protocol_checks.items():
        check.setChecked(p in ("box", "clicks"))
    widget.clicks_spin.setValue(2)
    _run(qtbot, widget)
    assert widget.result is not None, widget.status.text()
    assert widget.result.n_images == 3
    cells = [widget.table.item(r, 1).text() for r in range(widget.table.rowCount())]
    assert cells == ["box", "clicks"]
    assert widget.table.item(1, 6).text() != ""  # NoC@85 filled for clicks
    assert all(not lab.pixmap().isNull() for lab in widget.plot_labels)
    assert widget.progress_bar.value() == 3
    layers = widget.open_worst(2)
    assert len(layers) == 6 and layers[0].name.startswith("worst 1: ")
    assert layers[2].data.shape == (32, 40)
    out = tmp_path / "report"
    errors = []
    monkeypatch.setattr("sam_pets._napari._evaluate.show_error", errors.append)
    worker = widget.save_report(str(out))
    # a second save into the same folder while the first writes: both passed the check once
    assert widget.save_report(str(out) + "/") is None
    assert errors.pop() == f"sam-pets: a report is still being written into {out}/"
    qtbot.waitUntil(lambda: (out / "index.html").exists(), timeout=30000)
    qtbot.waitUntil(lambda: worker.is_running is False, timeout=30000)
    assert widget.save_report(str(out)) is None  # never over an existing report
    assert "already holds a report; choose another folder" in errors[0]
    assert "--" not in errors[0]  # no command-line flags in a window


@pytest.mark.parametrize("finder", [True, False], ids=["annotator_for", "dock_search"])
def test_annotator_model_is_the_default(
    make_napari_viewer, dataset, qtbot, tmp_path, monkeypatch, one_torch_thread, finder
):
    from sam_pets._napari import _annotator
    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    if not finder:
        monkeypatch.delattr(_annotator, "annotator_for", raising=False)

    monkeypatch.setenv("SAM_PETS_CONFIG_DIR", str(tmp_path / "config"))
    viewer = make_napari_viewer()
    _, annot = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    predictor = ImagePredictor(build_model("test", seed=1), device="cpu")
    annot.set_predictor(predictor)
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Evaluate")
    assert widget.model_combo.currentText() == "Annotator's current model"
    widget.dataset_edit.setText(str(dataset))
    for p, check in widget.protocol_checks.items():
        check.setChecked(p == "center")
    _run(qtbot, widget)
    assert widget.result is not None and list(widget.result.models) == ["annotator"]
    assert predictor.orig_hw is None or predictor.orig_hw != (32, 40)  # its image untouched


def test_missing_dataset_is_reported(dock, tmp_path, qtbot):
    _, widget = dock
    widget.dataset_edit.setText(str(tmp_path / "nothing"))
    widget.run()
    assert widget.worker is None and widget.run_button.isEnabled()
    widget.dataset_edit.setText(str(tmp_path))  # a folder, but not a dataset
    widget.model_combo.setCurrentText("random weights: test")
    _run(qtbot, widget)
    assert widget.result is None and "dataset.json" in widget.status.text()


def test_an_unreadable_item_is_skipped_with_a_warning(dock, dataset, qtbot, tmp_path, monkeypatch):
    import shutil

    from sam_pets._napari import _evaluate
    from sam_pets.data.formats import sam2_folder as canon

    _, widget = dock
    broken = tmp_path / "ds"
    shutil.copytree(dataset, broken)
    canon.item_paths(broken, "cat_a").image.unlink()
    warnings = []
    monkeypatch.setattr(_evaluate, "show_warning", warnings.append)
    widget.model_combo.setCurrentText("random weights: test")
    widget.dataset_edit.setText(str(broken))
    _run(qtbot, widget)
    assert widget.result is not None and widget.result.n_images == 2
    assert any("cat_a" in w and "missing" in w for w in warnings)
    assert "1 unreadable, skipped" in widget.status.text()


def test_plots_are_drawn_in_the_worker(dock, dataset, qtbot, monkeypatch):
    import threading

    from sam_pets.eval import report

    _, widget = dock
    threads = []
    draw = report.write_plots

    def spy(*args):
        threads.append(threading.current_thread() is threading.main_thread())
        return draw(*args)

    monkeypatch.setattr(report, "write_plots", spy)
    widget.model_combo.setCurrentText("random weights: test")
    widget.dataset_edit.setText(str(dataset))
    for p, check in widget.protocol_checks.items():
        check.setChecked(p == "box")
    _run(qtbot, widget)
    assert widget.result is not None and threads == [False]  # matplotlib: not on the GUI
    assert not widget.plot_labels[0].pixmap().isNull()


def test_closing_the_dock_stops_the_evaluation(dock, dataset, qtbot):
    viewer, widget = dock
    widget.model_combo.setCurrentText("random weights: test")
    widget.dataset_edit.setText(str(dataset))
    widget.run()
    worker = widget.worker
    # on a thread of our own: napari's activity dock waits on Qt's global pool
    qtbot.waitUntil(lambda: worker.is_running, timeout=30000)
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    viewer.window.remove_dock_widget(widget)  # what the dock's close button does
    assert worker.abort_requested
    qtbot.waitUntil(lambda: not worker.is_running, timeout=30000)


def test_a_cancelled_run_does_not_show_the_last_results(dock, dataset, qtbot):
    _, widget = dock
    widget.model_combo.setCurrentText("random weights: test")
    widget.dataset_edit.setText(str(dataset))
    _run(qtbot, widget)
    assert widget.table.rowCount() > 0 and widget.save_button.isEnabled()
    widget.run()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.run_button.isEnabled(), timeout=60000)
    assert widget.result is None and widget.table.rowCount() == 0
    assert widget.plot_labels[0].pixmap() is None or widget.plot_labels[0].pixmap().isNull()
    assert not widget.save_button.isEnabled() and widget.status.text() == "cancelled"


def test_cancel_during_an_image_ends_as_cancelled(dock, dataset, qtbot, monkeypatch):
    """The image under way when Cancel is pressed still reports; the status stays cancelled."""
    import threading

    from sam_pets._napari import _evaluate
    from sam_pets.progress import Progress

    _, widget = dock
    image_done = threading.Event()

    def evaluation(models, folder, cfg):
        yield Progress(1, 10, "box")
        image_done.wait(30)  # the image being evaluated when Cancel is pressed
        yield Progress(2, 10, "box")

    monkeypatch.setattr(_evaluate, "iter_evaluate", evaluation)
    widget.model_combo.setCurrentText("random weights: test")
    widget.dataset_edit.setText(str(dataset))
    widget.run()
    qtbot.waitUntil(lambda: widget.status.text() == "box", timeout=60000)
    widget.cancel()
    assert widget.status.text().startswith("cancelling") and not widget.cancel_button.isEnabled()
    image_done.set()
    qtbot.waitUntil(lambda: widget.run_button.isEnabled(), timeout=60000)
    assert widget.status.text() == "cancelled"
    assert widget.progress_bar.value() == 1
