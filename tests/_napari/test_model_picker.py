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
    qtbot.waitUntil(lambda: w.load_button.isEnabled() and not w._busy, timeout=30000)
    qtbot.waitUntil(lambda: w._embedding_key is None, timeout=30000)


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
