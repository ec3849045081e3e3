"""The annotator's model picker: built-in first, official checkpoints downloaded in the worker."""

from __future__ import annotations

import numpy as np
import pytest

from local_http import checkpoint_bytes, serve_official, unused_port, use_fake_builtin
from sam_pets._napari import _models
from sam_pets.model import hub

NAME = "sam2.1_hiera_small"


@pytest.fixture(scope="module")
def ckpt_bytes(tmp_path_factory) -> bytes:
    return checkpoint_bytes(tmp_path_factory.mktemp("c"))


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_PETS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SAM_PETS_CACHE_DIR", str(tmp_path / "cache"))
    use_fake_builtin(tmp_path, monkeypatch, seed=2)
    return tmp_path


@pytest.fixture
def server(env, monkeypatch, ckpt_bytes):
    with serve_official(monkeypatch, NAME, ckpt_bytes) as srv:
        yield srv


def test_choices_order_and_meaning(env, ckpt_bytes):
    recent = env / "mine.pt"
    recent.write_bytes(ckpt_bytes)
    _models.remember_checkpoint(str(recent))
    choices = _models.model_choices()
    assert choices[0] == _models.BUILTIN_LABEL
    specs = [_models.choice_spec(c) for c in choices]
    assert specs[1:9] == list(hub.OFFICIAL)
    assert specs[9] == str(recent.resolve())
    assert all(s.startswith(hub.RANDOM_PREFIX) for s in specs[10:]) and len(specs) == 13
    assert "downloads ~" in choices[1]
    assert _models.choice_spec(choices[0]) == "pets"
    assert _models.load_choice(choices[0]).cfg.name == "test"
    assert _models.load_choice(choices[10]).cfg.name == "test"


@pytest.fixture
def widget(make_napari_viewer, qtbot, env):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (96, 128), np.uint8), name="img")
    _, w = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    yield w
    qtbot.waitUntil(lambda: w.load_button.isEnabled() and not w.state.predicting, timeout=30000)
    qtbot.waitUntil(lambda: w.state.embedding_key is None, timeout=30000)


def _pick(widget, spec):
    for i in range(widget.model_combo.count()):
        if _models.choice_spec(widget.model_combo.itemText(i)) == spec:
            widget.model_combo.setCurrentIndex(i)
            return
    raise AssertionError(spec)


@pytest.mark.gui
def test_builtin_is_the_default_and_loads(widget, qtbot):
    assert widget.model_combo.currentText() == _models.BUILTIN_LABEL
    widget.load_model()
    qtbot.waitUntil(lambda: widget.predictor is not None, timeout=30000)
    assert widget.predictor.model.cfg.name == "test"


@pytest.mark.gui
def test_chosen_precision_reaches_the_predictor(widget, qtbot):
    assert widget.precision_combo.currentText() == "auto"
    widget.precision_combo.setCurrentText("bf16")
    widget.load_model()
    qtbot.waitUntil(lambda: widget.predictor is not None, timeout=30000)
    assert widget.predictor.precision == "bf16"
    qtbot.waitUntil(lambda: widget.model_status.text().endswith("(bf16)"), timeout=30000)


@pytest.mark.gui
def test_official_checkpoint_is_downloaded_in_the_worker(widget, qtbot, server, env, monkeypatch):
    monkeypatch.setattr(hub, "CHUNK_BYTES", 4096)
    statuses = []
    widget.model_status.setText = lambda text, f=widget.model_status.setText: (
        statuses.append(text),
        f(text),
    )
    _pick(widget, NAME)
    widget.load_model()
    qtbot.waitUntil(lambda: widget.predictor is not None, timeout=30000)
    assert (env / "cache" / "checkpoints" / f"{NAME}.pt").is_file()
    assert any(s.startswith(f"downloading {NAME}") and "MB" in s for s in statuses)
    assert widget.predictor.model.cfg.name == "test"
    qtbot.wait(50)
    # the last word is the loaded model's, not a download record handled late
    assert widget.model_status.text().startswith("test on cpu"), statuses[-3:]


@pytest.mark.gui
def test_download_failure_is_a_notification(widget, qtbot, env, monkeypatch):
    from sam_pets._napari import _annotator

    monkeypatch.setenv("SAM_PETS_DOWNLOAD_URL", f"http://127.0.0.1:{unused_port()}")
    errors = []
    monkeypatch.setattr(_annotator, "show_error", errors.append)
    _pick(widget, NAME)
    widget.load_model()
    qtbot.waitUntil(lambda: bool(errors), timeout=30000)
    assert "unreachable" in errors[0] and "--checkpoint FILE" in errors[0]
    assert widget.predictor is None


@pytest.mark.gui
def test_opening_the_dock_loads_the_default_then_the_last_model(
    make_napari_viewer, qtbot, env, monkeypatch
):
    monkeypatch.setenv("SAM_PETS_AUTOLOAD", "1")
    assert _models.default_choice() == _models.BUILTIN_LABEL
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (96, 128), np.uint8), name="img")
    _, w = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    # no click: the built-in model loads and the image is embedded, ready for the first click
    qtbot.waitUntil(lambda: w.state.ready, timeout=60000)
    assert w.predictor is not None and w.model_combo.currentText() == _models.BUILTIN_LABEL
    # another model chosen by hand becomes the next dock's default
    _pick(w, hub.RANDOM_PREFIX + "cpu_small")
    w.load_model()
    qtbot.waitUntil(lambda: w.predictor.model.cfg.name == "cpu_small", timeout=60000)
    qtbot.waitUntil(lambda: w.load_button.isEnabled() and not w.state.predicting, timeout=30000)
    assert _models.default_choice() == _models.RANDOM_PREFIX + "cpu_small"
    viewer2 = make_napari_viewer()
    viewer2.add_image(np.zeros((64, 64), np.uint8), name="img2")
    _, w2 = viewer2.window.add_plugin_dock_widget("sam-pets", "Annotator")
    qtbot.waitUntil(lambda: w2.predictor is not None, timeout=60000)
    assert w2.predictor.model.cfg.name == "cpu_small"
    qtbot.waitUntil(lambda: w2.load_button.isEnabled() and not w2.state.predicting, timeout=30000)


@pytest.mark.gui
def test_a_model_set_while_the_first_one_loads_wins(make_napari_viewer, qtbot, env, monkeypatch):
    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    monkeypatch.setenv("SAM_PETS_AUTOLOAD", "1")
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), np.uint8), name="img")
    _, w = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    mine = ImagePredictor(build_model("test", seed=5), device="cpu")
    w.set_predictor(mine)  # before the first-use load has returned
    qtbot.waitUntil(lambda: w.load_button.isEnabled() and not w.state.predicting, timeout=60000)
    assert w.predictor is mine


def test_an_unusable_last_model_falls_back_to_the_builtin(env, tmp_path):
    gone = tmp_path / "gone.pt"
    gone.write_bytes(b"x")
    _models.remember_choice(str(gone))
    assert _models.default_choice() == str(gone)
    gone.unlink()
    assert _models.default_choice() == _models.BUILTIN_LABEL
    _models.remember_choice(_models.official_label(NAME))  # not cached: no download at open
    assert _models.default_choice() == _models.BUILTIN_LABEL
    (tmp_path / "config" / "last_model.json").write_text("{broken")
    assert _models.default_choice() == _models.BUILTIN_LABEL
