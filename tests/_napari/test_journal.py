"""Crash-proof annotation: the Annotator journals commits; a new session restores them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sam_pets.data.fsutil import image_key
from sam_pets.data.journal import Journal

pytestmark = pytest.mark.gui


def _dock(make_napari_viewer, qtbot, image, predictor=None):
    viewer = make_napari_viewer()
    viewer.add_image(image, name="pet", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    if predictor is not None:
        widget.set_predictor(predictor)
        qtbot.waitUntil(lambda: widget.state.ready, timeout=30000)
    return viewer, widget


def _commit_at(qtbot, widget, row_col) -> int:
    widget.points.add(np.array([row_col], float))
    qtbot.waitUntil(
        lambda: not widget.state.predicting and widget.session.candidates is not None, timeout=30000
    )
    return widget.commit()


@pytest.fixture
def predictor():
    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    return ImagePredictor(build_model("test", seed=0), device="cpu")


def test_commits_and_undos_are_journaled_and_a_new_dock_restores_them(
    make_napari_viewer, qtbot, pet_image, predictor
):
    viewer, widget = _dock(make_napari_viewer, qtbot, pet_image, predictor)
    assert widget.restore_button.isHidden()  # nothing journaled for this photo yet
    assert _commit_at(qtbot, widget, (190.0, 250.0)) == 1
    assert _commit_at(qtbot, widget, (60.0, 60.0)) == 2
    assert widget.journal.writer.flush(10)
    key = image_key(pet_image)
    rec = Journal().load(key)
    np.testing.assert_array_equal(rec.labels, widget.target_layer().data)
    assert set(rec.objects) == {1, 2} and rec.info["name"] == "pet"
    assert rec.objects[1]["prompts"]["points"] == [[250.0, 190.0]]  # (x, y)
    assert rec.objects[1]["model"] == "test" and rec.events == 2
    widget.undo()
    assert widget.journal.writer.flush(10)
    rec = Journal().load(key)
    np.testing.assert_array_equal(rec.labels, widget.target_layer().data)
    assert set(rec.objects) == {1}
    expected = widget.target_layer().data.copy()

    # the same photo in a new viewer (from anywhere: the key is its content)
    viewer2, widget2 = _dock(make_napari_viewer, qtbot, pet_image.copy())
    assert not widget2.restore_button.isHidden()
    assert "Restore 1 objects" in widget2.restore_button.text()
    assert widget2.restore_session() == 1
    np.testing.assert_array_equal(widget2.target_layer().data, expected)
    assert widget2.restore_button.isHidden()
    # a restored object keeps its history: refining it later adds to the record
    assert widget2.journal._objects[key][1]["model"] == "test"


def test_export_prunes_the_journal(make_napari_viewer, qtbot, pet_image, predictor, tmp_path):
    viewer, widget = _dock(make_napari_viewer, qtbot, pet_image, predictor)
    assert _commit_at(qtbot, widget, (190.0, 250.0)) == 1
    assert widget.journal.writer.flush(10)
    assert Journal().keys() == [image_key(pet_image)]
    widget.export_dir.setText(str(tmp_path / "ds"))
    widget.export()
    qtbot.waitUntil(lambda: "added" in widget.export_status.text(), timeout=30000)
    assert widget.journal.writer.flush(10)  # the record is removed on the journal's thread
    assert Journal().keys() == []
    # a commit after the export starts a new record
    assert _commit_at(qtbot, widget, (60.0, 60.0)) == 2
    assert widget.journal.writer.flush(10)
    assert Journal().keys() == [image_key(pet_image)]


SESSION = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import napari
    from qtpy.QtWidgets import QApplication
    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor
    from sam_pets.samples import sample_path
    from PIL import Image

    mode, out = sys.argv[1], sys.argv[2]
    image = np.asarray(Image.open(sample_path()).convert("RGB"))
    viewer = napari.Viewer(show=False)
    viewer.add_image(image, name="pet", rgb=True)
    _, w = viewer.window.add_plugin_dock_widget("sam-pets", "Annotator")
    app = QApplication.instance()

    def wait(cond, seconds=120):
        end = time.time() + seconds
        while not cond():
            app.processEvents()
            time.sleep(0.01)
            if time.time() > end:
                raise SystemExit("timed out")

    if mode == "annotate":
        w.set_predictor(ImagePredictor(build_model("test", seed=0), device="cpu"))
        wait(lambda: w.state.ready)
        for rc in [(190.0, 250.0), (60.0, 60.0), (300.0, 420.0)]:
            w.points.add(np.array([rc]))
            wait(lambda: not w.state.predicting and w.session.candidates is not None)
            assert w.commit() > 0
        wait(lambda: w.journal.writer.flush(0.01))
        np.save(out, w.target_layer().data)
        print("COMMITTED", flush=True)
        while True:  # napari keeps running until it is killed
            app.processEvents()
            time.sleep(0.02)
    else:
        assert not w.restore_button.isHidden(), "no restore offered"
        print("RESTORED", w.restore_session(), flush=True)
        np.save(out, w.target_layer().data)
    """
)


def test_objects_survive_a_killed_napari_process(tmp_path):
    """SIGKILL a napari process after its commits; a new process restores them pixel-exact."""
    script = tmp_path / "session.py"
    script.write_text(SESSION)
    env = dict(os.environ, SAM_PETS_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    env["SAM_PETS_CONFIG_DIR"] = str(tmp_path / "config")
    committed, restored = tmp_path / "committed.npy", tmp_path / "restored.npy"
    proc = subprocess.Popen(
        [sys.executable, str(script), "annotate", str(committed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("COMMITTED"):
                break
        assert committed.is_file(), "".join(lines[-30:])
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(60)
    assert proc.returncode == -signal.SIGKILL
    run = subprocess.run(
        [sys.executable, str(script), "restore", str(restored)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "RESTORED 3" in run.stdout
    before, after = np.load(committed), np.load(restored)
    assert before.max() == 3
    np.testing.assert_array_equal(after, before)
    assert len(list(Path(tmp_path / "data" / "journal").glob("*.npz"))) == 1
