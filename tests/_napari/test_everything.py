"""The Annotator's "Segment everything" section on real layers (Xvfb, built-in pets model)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def pets_predictor():
    from sam_pets.model import resolve_model
    from sam_pets.predict import ImagePredictor

    return ImagePredictor(resolve_model("pets"), device="cpu")


@pytest.fixture
def annotator(make_napari_viewer, qtbot, pet_image, pets_predictor, tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_PETS_CONFIG_DIR", str(tmp_path / "config"))
    viewer = make_napari_viewer()
    viewer.add_image(pet_image, name="pet", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    widget.set_predictor(pets_predictor)
    qtbot.waitUntil(lambda: widget.state.ready, timeout=30000)
    box = widget.everything
    box.points_spin.setValue(8)  # the built-in model's logits are softer than Meta's
    box.iou_spin.setValue(0.5)
    box.stability_spin.setValue(0.5)
    yield viewer, widget
    qtbot.waitUntil(lambda: widget.everything.worker is None, timeout=60000)
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)


def _run(qtbot, widget):
    assert widget.everything.run() is not None
    qtbot.waitUntil(lambda: widget.everything.worker is None, timeout=60000)


def test_fills_a_new_layer_that_becomes_the_target(annotator, qtbot, pet_image):
    viewer, widget = annotator
    _run(qtbot, widget)
    layer = viewer.layers["pet everything"]
    ids = np.unique(layer.data)
    assert len(ids) > 1 and layer.data.shape == (375, 500)
    assert widget.target_layer() is layer
    assert not viewer.layers["pet labels"].data.any()  # nothing committed was touched
    assert "objects from" in widget.everything.status.text()
    # the predictor is back on the image: a click predicts on it, and commits into the layer
    assert widget.predictor.orig_hw == (375, 500)
    widget.points.add(np.array([[190.0, 250.0]]))
    qtbot.waitUntil(
        lambda: not widget.state.predicting and widget.session.candidates is not None,
        timeout=30000,
    )
    widget.overwrite_check.setChecked(True)
    label = widget.commit()
    assert label == ids.max() + 1 and (layer.data == label).any()


def test_adding_to_the_target_keeps_committed_objects(annotator, qtbot):
    viewer, widget = annotator
    target = viewer.layers["pet labels"]
    target.data[150:250, 200:300] = 1  # an object committed by hand over the cat
    widget.everything.new_layer_check.setChecked(False)
    _run(qtbot, widget)
    assert (target.data[150:250, 200:300] == 1).all()
    assert target.data.max() > 1 and "pet everything" not in viewer.layers


def test_cancel_writes_nothing(annotator, qtbot):
    viewer, widget = annotator
    box = widget.everything
    box.points_spin.setValue(32)  # 16 batches: time to cancel
    box.run()
    box.cancel()
    qtbot.waitUntil(lambda: box.worker is None, timeout=60000)
    assert "pet everything" not in viewer.layers
    assert box.status.text() == "cancelled; nothing written"
    assert box.run_button.isEnabled()
