"""Run directory rules: never clobber silently, resume needs a state, tolerant metrics reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sam_pets.train.config import TrainConfig
from sam_pets.train.rundir import RunDir


def _cfg(out):
    return TrainConfig(dataset="d", out=str(out), model_config="test", steps=1)


def test_prepare_refuses_overwrites_and_resumes(tmp_path):
    run = RunDir(tmp_path / "run")
    cfg = _cfg(run.path)
    with pytest.raises(FileNotFoundError, match="state.pt"):
        run.prepare(cfg, resume=True, overwrite=False)
    run.prepare(cfg, resume=False, overwrite=False)
    assert run.read_config() == cfg
    run.log({"step": 1, "loss": 2.0})
    with pytest.raises(FileExistsError, match="--overwrite"):
        run.prepare(cfg, resume=False, overwrite=False)
    run.prepare(cfg.replace(steps=5), resume=False, overwrite=True)
    assert run.records() == [] and run.read_config().steps == 5
    (run.path / "notes.txt").write_text("mine")  # files that are not ours survive
    run.prepare(cfg, resume=False, overwrite=True)
    assert (run.path / "notes.txt").read_text() == "mine"


def test_check_writes_nothing_and_discard_removes_only_a_new_run(tmp_path):
    run = RunDir(tmp_path / "run")
    run.check(resume=False, overwrite=False)
    assert not run.path.exists()
    run.create(_cfg(run.path), resume=False)
    run.log({"step": 0})
    run.discard()
    assert not run.path.exists()  # made by this run and empty again
    run.path.mkdir()
    (run.path / "notes.txt").write_text("mine")
    run = RunDir(run.path)
    run.create(_cfg(run.path), resume=False)
    run.discard()
    assert sorted(p.name for p in run.path.iterdir()) == ["notes.txt"]
    run.create(_cfg(run.path), resume=False)
    run.save_state({"step": 1})
    run.discard()  # something to resume from: nothing is removed
    assert run.file("config.yaml").exists() and run.file("state.pt").exists()


def test_metrics_reader_and_truncation(tmp_path):
    run = RunDir(tmp_path)
    for s in (1, 2, 3):
        run.log({"step": s, "loss": float(s)})
    with open(run.file("metrics.jsonl"), "a") as f:
        f.write('{"step": 4, "lo')  # cut short by a crash
    assert [r["step"] for r in run.records()] == [1, 2, 3]
    run.truncate_log(2)
    lines = run.file("metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]


def test_non_main_rank_writes_nothing(tmp_path):
    run = RunDir(tmp_path / "r1", write=False)
    run.prepare(_cfg(run.path), resume=False, overwrite=False)
    run.log({"step": 1})
    run.save_state({"step": 1})
    assert not run.path.exists()


@pytest.mark.parametrize("content", ["truncated", "pickle"])
def test_bad_resume_state_is_one_clear_error(tmp_path, content):
    import pickle

    import torch

    from sam_pets.model import CheckpointError

    run = RunDir(tmp_path / "run")
    run.prepare(_cfg(run.path), resume=False, overwrite=False)
    run.save_state({"model": {"w": torch.zeros(3)}, "step": 1})
    state = run.file("state.pt")
    if content == "truncated":
        state.write_bytes(state.read_bytes()[:200])
    else:
        state.write_bytes(pickle.dumps({"model": print}, protocol=2))  # a global: not weights
    with pytest.raises(CheckpointError, match="state.pt"):
        run.load_state()


def test_a_file_or_a_folder_that_is_not_a_run_is_never_replaced(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(NotADirectoryError, match="afile exists and is not a folder"):
        RunDir(afile).check(resume=False, overwrite=True)
    # the user's own best.pt beside their notes: --overwrite once deleted it as "a run"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "best.pt").write_text("my model")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="holds best.pt but no sam-pets run"):
            RunDir(mine).check(resume=False, overwrite=overwrite)
    assert (mine / "best.pt").read_text() == "my model"


def _lock(run_path, pid):
    import socket

    (run_path / ".lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))


def test_a_folder_a_live_run_writes_is_refused_even_with_overwrite(tmp_path):
    """Two runs into one folder interleaved their files; --overwrite deleted a live run's."""
    import subprocess
    import sys

    from sam_pets.train.rundir import RunInUseError

    first = RunDir(tmp_path / "run")
    first.prepare(_cfg(first.path), resume=False, overwrite=False)
    first.log({"step": 1})
    second = RunDir(tmp_path / "run")
    with pytest.raises(RunInUseError, match="in use by another run in this process"):
        second.check(resume=False, overwrite=True)
    first.release()
    assert not (first.path / ".lock").exists()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(first.path, live.pid)
        for resume in (True, False):
            with pytest.raises(RunInUseError, match=f"in use by process {live.pid}"):
                second.prepare(_cfg(second.path), resume=resume, overwrite=True)
        assert second.records() == [{"step": 1}]  # nothing removed
    finally:
        live.kill()
        live.wait()
    # the process is gone: its lock is stale and taken over
    second.prepare(_cfg(second.path), resume=False, overwrite=True)
    assert second.records() == []
    assert json.loads((second.path / ".lock").read_text())["pid"] != live.pid
    second.release()


def test_training_leaves_no_lock(make_cfg, monkeypatch):
    """After a run ends, however it ends, the folder is free for the next command."""
    from sam_pets.train.loop import fit
    from sam_pets.train.trainer import Trainer

    cfg = make_cfg(steps=2)
    step = Trainer.train_step

    def interrupted(self, *a, **kw):
        assert (self.run.path / ".lock").exists()  # held while training
        if self.step == 1:
            raise KeyboardInterrupt
        return step(self, *a, **kw)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg)
    assert not (Path(cfg.out) / ".lock").exists()
    monkeypatch.undo()
    assert fit(cfg, resume=True).step == 2
    assert not (Path(cfg.out) / ".lock").exists()
