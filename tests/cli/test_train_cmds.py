"""``sam-pets train`` in-process: end to end, config files, resume, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import convert_pets_dev
from sam_pets.cli import main
from sam_pets.samples import sample_path

FAST = [
    "--config",
    "test",
    "--correction-rounds",
    "1",
    "--batch-size",
    "2",
    "--lr",
    "1e-3",
    "--quiet",
]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return convert_pets_dev(tmp_path_factory, tiny=16)


def _summary(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_end_to_end_then_predict(dataset, tmp_path, capsys):
    from sam_pets.model import load_model
    from sam_pets.predict import ImagePredictor
    from sam_pets.predict.images import read_image

    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(dataset),
                "--out",
                str(run),
                *FAST,
                "--steps",
                "3",
                "--val-every",
                "2",
                "--freeze",
                "image_encoder",
            ]
        )
        == 0
    )
    s = _summary(capsys)
    assert s["status"] == "done" and s["step"] == 3 and Path(s["best"]).is_file()
    assert main(["info", str(run / "last.pt")]) == 0
    assert "train:" in capsys.readouterr().out
    predictor = ImagePredictor(load_model(run / "last.pt"), device="cpu")
    image = read_image(sample_path())
    predictor.set_image(image)
    pred = predictor.predict(None, None, np.array([100, 50, 400, 350], np.float32), multimask=False)
    assert pred.masks.shape[-2:] == image.shape[:2] and pred.masks.dtype == bool


def test_unreadable_items_are_left_out_before_training(dataset, tmp_path, capsys):
    import shutil

    from sam_pets.data.formats import sam2_folder as canon

    broken = tmp_path / "ds"
    shutil.copytree(dataset, broken)
    bad_train, bad_val = canon.read_list(broken, "train")[0], canon.read_list(broken, "val")[0]
    canon.item_paths(broken, bad_train).labels.write_text("not a png")
    canon.item_paths(broken, bad_val).image.unlink()
    args = ["train", str(broken), "--out", str(tmp_path / "run"), *FAST, "--steps", "1"]
    assert main([*args, "--val-items", "2"]) == 1
    out, err = capsys.readouterr()
    s = json.loads(out.strip().splitlines()[-1])
    assert s["status"] == "done" and s["step"] == 1
    assert [x["item"] for x in s["skipped"]] == [bad_train, bad_val]
    assert f"skipped item {bad_train!r}: cannot read its files" in err
    assert f"skipped item {bad_val!r}: image file missing" in err
    assert "train: skipped 2 unreadable items" in err.strip().splitlines()[-1]


def test_existing_run_is_refused_then_resumed(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", str(dataset), "--out", str(run), *FAST, "--steps", "1"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--steps", "2", "--quiet"]) == 0
    assert _summary(capsys)["step"] == 2
    assert main([*args, "--overwrite"]) == 0
    assert _summary(capsys)["step"] == 1


def test_config_file_and_flags(dataset, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"dataset: {dataset}\nmodel_config: test\nsteps: 1\ncorrection_rounds: 0\n"
        "freeze: [image_encoder]\ncached_embeddings: true\nval_split: ''\n"
    )
    assert main(["train", "--config-file", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert _summary(capsys)["status"] == "done"
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: x\nout: y\nmodel_config: test\nsteps: 1\nlearnin_rate: 1\n")
    assert main(["train", "--config-file", str(bad)]) == 2
    assert "learnin_rate" in capsys.readouterr().err


def test_clear_errors(dataset, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                str(dataset),
                "--out",
                str(tmp_path / "r"),
                *FAST,
                "--steps",
                "1",
                "--cached-embeddings",
            ]
        )
        == 2
    )
    assert "frozen image encoder" in capsys.readouterr().err
    assert main(["train", str(dataset), *FAST, "--steps", "1"]) == 2
    assert "--out is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", str(dataset), "--out", "x", "--config", "test", "--freeze", "trunk"])


def test_a_run_that_cannot_start_leaves_nothing_and_can_be_retried(dataset, tmp_path, capsys):
    # each of these once left RUN/config.yaml: the retry said "already holds a run" and
    # --resume then said "no state.pt"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(1000))
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "bad.yaml"
    bad.write_text("warmup_steps: -1\n")
    base = [*FAST, "--steps", "1"]
    for argv in (
        [str(dataset), *base[2:], "--checkpoint", str(junk)],
        [str(dataset), *base, "--config-file", str(bad)],
        [str(empty), *base],
        [str(dataset), *base, "--resolution", "100"],
    ):
        run = tmp_path / "run"
        assert main(["train", *argv, "--out", str(run)]) == 2, argv
        capsys.readouterr()
        assert not run.exists(), (argv, sorted(p.name for p in run.iterdir()))
    # an existing folder with the user's files keeps them and stays
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert main(["train", str(dataset), *base, "--config-file", str(bad), "--out", str(kept)]) == 2
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]
    capsys.readouterr()
    assert main(["train", str(dataset), *base, "--out", str(kept)]) == 0
    assert _summary(capsys)["status"] == "done"


@pytest.mark.slow
def test_torchrun_two_processes(dataset, tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "sam_pets",
        "train",
        str(dataset),
        "--out",
        str(run),
        *FAST,
        "--steps",
        "2",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
        raise
    assert proc.returncode == 0, stderr[-2000:]
    assert json.loads(stdout.strip().splitlines()[-1])["step"] == 2
    assert (run / "last.pt").is_file()


@pytest.fixture
def saved_run(dataset, tmp_path):
    """A run folder with a saved config (no training needed to test --resume's checks)."""
    from sam_pets.train.config import TrainConfig
    from sam_pets.train.rundir import RunDir

    run = RunDir(tmp_path / "run")
    cfg = TrainConfig(
        dataset=str(dataset), out=str(run.path), model_config="test", steps=1, val_split=""
    )
    run.prepare(cfg, resume=False, overwrite=False)
    run.release()  # as a run that has ended
    return run


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--config", "cpu_small"], "drop --config"),
        (["--lr", "0.1", "--no-augment"], "drop --lr, --no-augment"),
        (["--overwrite"], "drop --overwrite"),
        (["--out", "OTHER"], "name different runs"),
    ],
)
def test_resume_refuses_options_it_would_ignore(saved_run, extra, match, capsys):
    extra = [str(saved_run.path.parent / "other") if a == "OTHER" else a for a in extra]
    assert main(["train", "--resume", str(saved_run.path), *extra, "--quiet"]) == 2
    assert match in capsys.readouterr().err
    assert not (saved_run.path.parent / "other").exists()


def test_resume_of_a_missing_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nosuchrun")]) == 2
    assert "nosuchrun: no such run folder" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a sam-pets run (no config.yaml)" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["truncated", "pickle"])
def test_resume_from_a_bad_state_is_one_error(saved_run, content, capsys):
    import pickle

    state = saved_run.file("state.pt")
    if content == "truncated":
        state.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    else:
        state.write_bytes(pickle.dumps({"model": print}, protocol=2))
    assert main(["train", "--resume", str(saved_run.path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "state.pt" in err and "Traceback" not in err and "Warning" not in err


def test_bad_config_files_and_values(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    for text, match in (
        ("steps: [1\n", "bad.yaml: not valid YAML"),
        ('steps: "abc"\n', "bad.yaml: steps must be an integer"),
    ):
        bad.write_text(text)
        assert main(["train", "--config-file", str(bad), "--out", str(tmp_path / "r")]) == 2
        assert match in capsys.readouterr().err
    bad.write_text("steps: -3\n")
    assert main(["train", "ds", "--config-file", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "bad.yaml: steps must be >= 1, got -3" in capsys.readouterr().err
    assert main(["train", "ds", "--out", str(tmp_path / "r"), *FAST]) == 2
    assert "give --steps or --epochs" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_resume_of_a_finished_run_extends_or_says_so(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(dataset), "--out", str(run), *FAST, "--steps", "2"]) == 0
    capsys.readouterr()
    log, config = (run / "metrics.jsonl").read_bytes(), (run / "config.yaml").read_bytes()
    # nothing left to do: once validated again and logged the same validation twice
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out.splitlines()[-1])["step"] == 2
    assert "already finished (2 steps)" in out.err
    assert (run / "metrics.jsonl").read_bytes() == log
    # fewer steps than done: once "done" at step 2 with config.yaml rewritten to steps: 1
    assert main(["train", "--resume", str(run), "--steps", "1", "--quiet"]) == 2
    assert "already did 2 steps, more than the 1 asked for" in capsys.readouterr().err
    assert (run / "config.yaml").read_bytes() == config
    # --epochs on a run saved with --steps: once ignored (the saved steps won)
    assert main(["train", "--resume", str(run), "--epochs", "1", "--quiet"]) == 0
    n_train = len((dataset / "train_list.txt").read_text().split())
    assert _summary(capsys)["step"] == n_train // 2 > 2


def test_epochs_are_counted_from_one(dataset, tmp_path, capsys):
    """``--epochs 2`` once ended with ``"epoch": 1`` in the summary (counted from 0)."""
    run = tmp_path / "run"
    assert main(["train", str(dataset), "--out", str(run), *FAST, "--epochs", "2"]) == 0
    per_epoch = len((dataset / "train_list.txt").read_text().split()) // 2
    summary = _summary(capsys)
    assert (summary["step"], summary["epoch"]) == (2 * per_epoch, 2)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = {r["step"]: r["epoch"] for r in records if "loss" in r}
    assert steps[1] == steps[per_epoch] == 1 and steps[per_epoch + 1] == 2


def test_a_run_resumes_from_another_working_folder(dataset, tmp_path, capsys, monkeypatch):
    """config.yaml once kept DATASET as typed (relative): --resume elsewhere failed."""
    monkeypatch.chdir(dataset.parent)
    run = tmp_path / "run"
    assert main(["train", dataset.name, "--out", str(run), *FAST, "--steps", "1"]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", "run", "--steps", "2", "--quiet"]) == 0
    assert _summary(capsys)["step"] == 2


def test_ctrl_c_says_how_to_continue(dataset, tmp_path, capsys, monkeypatch):
    from sam_pets.train.trainer import Trainer

    step = Trainer.train_step

    def interrupted(self, *a, **kw):
        if self.step == 1:
            raise KeyboardInterrupt
        return step(self, *a, **kw)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    run = tmp_path / "run"
    assert main(["train", str(dataset), "--out", str(run), *FAST, "--steps", "3"]) == 130
    err = capsys.readouterr().err
    assert f"--resume {run}" in err and "last.pt" in err
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert _summary(capsys)["step"] == 3


def test_ctrl_c_before_a_run_exists_is_the_plain_message(dataset, tmp_path, capsys, monkeypatch):
    from sam_pets.train import trainer

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.Trainer, "__init__", interrupted)
    run = tmp_path / "run"
    assert main(["train", str(dataset), "--out", str(run), *FAST, "--steps", "3"]) == 130
    assert capsys.readouterr().err.strip() == "sam-pets train: interrupted"
    assert not run.exists()


def test_help_names_every_file_of_a_run(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in ("config.yaml", "metrics.jsonl", "loss.png", "val.png", "last.pt", "best.pt"):
        assert name in out
    assert "state.pt" in out  # what --resume continues from


def test_object_crops_and_copy_paste_flags(dataset, tmp_path, capsys, monkeypatch):
    import yaml
    from PIL import Image

    bg = tmp_path / "backgrounds"
    bg.mkdir()
    Image.fromarray(np.full((60, 90, 3), 30, np.uint8)).save(bg / "wall.png")
    monkeypatch.chdir(tmp_path)  # a relative folder is kept as an absolute one
    out = tmp_path / "r"
    argv = ["train", str(dataset), "--steps", "1", "--out", str(out), *FAST]
    argv += ["--object-crop", "0.7", "--copy-paste", "0.5", "--background", "backgrounds"]
    argv += ["--paste-objects", "0.6"]
    assert main(argv) == 0
    assert _summary(capsys)["status"] == "done"
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["object_crop_prob"] == 0.7 and cfg["copy_paste_prob"] == 0.5
    assert cfg["paste_objects_prob"] == 0.6
    assert cfg["copy_paste_backgrounds"] == [str(bg)]
    for flag, value in (
        ("--object-crop", "1.5"),
        ("--copy-paste", "-0.1"),
        ("--paste-objects", "2"),
    ):
        with pytest.raises(SystemExit):
            main(["train", str(dataset), "--steps", "1", flag, value, *FAST])
        assert f"argument {flag}: must be in [0, 1]" in capsys.readouterr().err
    missing = ["train", str(dataset), "--steps", "1", "--out", str(tmp_path / "r2"), *FAST]
    assert main([*missing, "--copy-paste", "0.5", "--background", "nowhere"]) == 2
    assert "background folder not found" in capsys.readouterr().err
