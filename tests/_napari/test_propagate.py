"""The Annotator's "Propagate" section on a real stack (Xvfb, small random SAM 2 video model)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def video_predictor():
    """sam2.1-tiny layout at 256 px, random image and video weights."""
    from sam_pets.model import build_model
    from sam_pets.model.config import get_config
    from sam_pets.model.convert import init_video_state
    from sam_pets.predict import ImagePredictor

    model = build_model(get_config("sam2.1_hiera_tiny").replace(image_size=256), seed=0)
    model.extra_state = init_video_state("2.1")
    return ImagePredictor(model, device="cpu")


@pytest.fixture
def stack_annotator(make_napari_viewer, qtbot, pet_image, video_predictor, tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_PETS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SAM_PETS_DATA_DIR", str(tmp_path / "data"))
    viewer = make_napari_viewer()
    stack = np.stack([pet_image[8 * t : 8 * t + 96, 6 * t : 6 * t + 128] for t in range(5)])
    viewer.add_image(stack, name="clip", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    widget.set_predictor(video_predictor)
    qtbot.waitUntil(lambda: widget.state.ready, timeout=30000)
    yield viewer, widget
    qtbot.waitUntil(lambda: widget.propagation.worker is None, timeout=60000)
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)


def _run(qtbot, widget):
    assert widget.propagation.run() is not None
    qtbot.waitUntil(lambda: widget.propagation.worker is None, timeout=120000)


def test_propagates_both_ways_and_keeps_hand_committed_objects(stack_annotator, qtbot):
    viewer, widget = stack_annotator
    viewer.dims.set_current_step(0, 2)
    target = widget.target_layer() or widget.targets.ensure(viewer.layers["clip"])
    target.data[2, 30:70, 40:90] = 4  # an object committed on slice 2
    target.data[4, 0:10, 0:10] = 9  # another committed by hand on slice 4
    before_2 = target.data[2].copy()
    _run(qtbot, widget)
    box = widget.propagation
    assert box.progress_bar.value() == 4, box.status.text()  # slices 0, 1, 3 and 4
    np.testing.assert_array_equal(target.data[2], before_2)  # the prompt slice is the person's
    assert (target.data[4, 0:10, 0:10] == 9).all()  # never overwritten
    assert set(np.unique(target.data)) <= {0, 4, 9}
    # propagating again replaces only what propagation wrote: pixels set to 4 on slice 3 by
    # the first run are cleared first, hand-set pixels elsewhere stay
    target.data[3, 90:96, 120:128] = 7
    box.direction_combo.setCurrentText("forward")
    _run(qtbot, widget)
    assert (target.data[3, 90:96, 120:128] == 7).all()
    assert box.progress_bar.value() == 2  # slices 3 and 4
    assert "propagated" in box.status.text()


def test_refuses_without_video_weights_or_objects(stack_annotator, qtbot):
    viewer, widget = stack_annotator
    box = widget.propagation
    assert box.run() is None and "commit at least one object" in box.status.text()
    model = widget.predictor.model
    saved, model.extra_state = model.extra_state, {}
    try:
        target = widget.target_layer() or widget.targets.ensure(viewer.layers["clip"])
        target.data[0, 10:20, 10:20] = 1
        assert box.run() is None and "no video weights" in box.status.text()
    finally:
        model.extra_state = saved


def test_write_slice_rule():
    from types import SimpleNamespace

    from sam_pets._napari._propagate import PropagateBox

    data = np.zeros((2, 4, 4), np.int32)
    data[1, 0, 0] = 5  # by hand
    target = SimpleNamespace(data=data, refresh=lambda: None)
    box = SimpleNamespace(_auto={})
    lab = np.full((4, 4), 3, np.uint8)
    assert PropagateBox.write_slice(box, target, (1,), lab, [3]) == 15
    assert data[1, 0, 0] == 5 and (data[1] == 3).sum() == 15
    lab2 = np.zeros((4, 4), np.uint8)
    lab2[3, 3] = 3
    PropagateBox.write_slice(box, target, (1,), lab2, [3])
    assert (data[1] == 3).sum() == 1 and data[1, 0, 0] == 5


def test_precision_choice_reaches_the_tracker(stack_annotator, qtbot, monkeypatch):
    from sam_pets._napari import _propagate
    from sam_pets.model.device import cpu_has_fast_bf16
    from sam_pets.predict import video

    viewer, widget = stack_annotator
    box = widget.propagation
    expected = "bf16" if cpu_has_fast_bf16() and not _cuda() else "fp32"
    assert box.precision_combo.currentText() == expected == _propagate.default_precision()
    seen = []
    init = video.VideoPredictor.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        seen.append(self.precision)

    monkeypatch.setattr(video.VideoPredictor, "__init__", spy)
    viewer.dims.set_current_step(0, 1)
    target = widget.target_layer() or widget.targets.ensure(viewer.layers["clip"])
    target.data[1, 30:70, 40:90] = 3
    box.direction_combo.setCurrentText("forward")
    for choice in ("fp32", "bf16"):
        box.precision_combo.setCurrentText(choice)
        _run(qtbot, widget)
        assert seen[-1] == choice, box.status.text()
    assert box.progress_bar.value() == 3  # slices 2, 3 and 4


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
