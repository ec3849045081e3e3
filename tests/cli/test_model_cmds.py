"""The ``sam-pets`` CLI, called in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sam_pets.cli import build_parser, main
from sam_pets.model import build_model, save_checkpoint


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("cmd", _subcommands())
def test_help_for_every_subcommand(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "usage: sam-pets" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "sam_pets", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("sam-pets ")


def test_output_into_a_closed_pipe_is_no_error(tmp_path):
    """``sam-pets download --list | head -1``: the reader leaving early is not an error."""
    env = {**os.environ, "SAM_PETS_CACHE_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "sam_pets", "download", "--list"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.close()  # before the command writes a byte
    err = p.stderr.read().decode()
    p.stderr.close()
    assert p.wait(timeout=60) == 141 and err == ""


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_checkpoint(build_model("test", seed=0), tmp_path_factory.mktemp("c") / "t.pt")


def test_info(ckpt, capsys):
    assert main(["info", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "config:      test" in out and "format:      sam-pets" in out
    assert "sam_pets_version: " in out  # a label longer than the column keeps a space
    assert main(["info", str(ckpt), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"]["total"] > 0 and info["image_keys"] == 227


def test_info_keeps_nested_metadata_readable(capsys):
    # the built-in model records how it was trained: nested records, a 51-key train config
    assert main(["info", "pets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 130  # the parameter line is the longest
    assert "built_from:" in lines and "  train:" in lines
    assert any(line.startswith("    config:") and "keys: dataset=" in line for line in lines)
    assert lines[-1] == "(shortened: --json prints all of it)"
    assert main(["info", "pets", "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)["metadata"]
    assert len(meta["built_from"]["train"]["config"]) > 40  # all of it


def test_info_bad_file_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.pt" in err and "Traceback" not in err


def test_predict_writes_mask(ckpt, tmp_path, capsys):
    from PIL import Image

    from sam_pets.samples import sample_path

    out = tmp_path / "mask.png"
    rc = main(
        [
            "predict",
            str(sample_path()),
            "--checkpoint",
            str(ckpt),
            "--point",
            "250,180",
            "--neg-point",
            "10,10",
            "--box",
            "50,40,400,330",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    mask = np.asarray(Image.open(out))
    assert mask.shape == (375, 500) and set(np.unique(mask)) <= {0, 255}
    assert res["area"] == int((mask > 0).sum())
    # never overwrite silently
    assert (
        main(
            ["predict", str(sample_path()), "--config", "test", "--point", "1,1", "--out", str(out)]
        )
        == 2
    )
    assert "already exists" in capsys.readouterr().err


def test_predict_argument_errors(tmp_path, capsys):
    from sam_pets.samples import sample_path

    with pytest.raises(SystemExit):
        main(["predict", str(sample_path()), "--config", "test", "--point", "1", "--out", "x.png"])
    assert "a point must be 2" in capsys.readouterr().err
    assert (
        main(["predict", str(sample_path()), "--config", "test", "--out", str(tmp_path / "m.png")])
        == 2
    )
    assert "at least one prompt" in capsys.readouterr().err
    assert (
        main(
            [
                "predict",
                str(tmp_path / "missing.jpg"),
                "--config",
                "test",
                "--point",
                "1,1",
                "--out",
                str(tmp_path / "m.png"),
            ]
        )
        == 2
    )
    assert "missing.jpg: file not found" in capsys.readouterr().err


def test_bench_prints_one_json_line(capsys):
    assert (
        main(["bench", "--config", "test", "--device", "cpu", "--repeats", "1", "--clicks", "2"])
        == 0
    )
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1
    rec = json.loads(line[0])
    assert {"embed_ms", "click_ms", "device", "config"} <= set(rec)
    assert rec["device"] == "cpu" and rec["config"] == "test" and rec["click_ms"] > 0


def _predict(image, out, *prompt):
    return main(["predict", str(image), "--config", "test", *prompt, "--out", str(out)])


def test_predict_out_folder_is_refused_even_with_overwrite(tmp_path, capsys):
    from sam_pets.samples import sample_path

    folder = tmp_path / "masks.png"
    folder.mkdir()
    assert _predict(sample_path(), folder, "--point", "1,1", "--overwrite") == 2
    err = capsys.readouterr().err
    assert "masks.png is a folder" in err and "Traceback" not in err
    assert folder.is_dir()


@pytest.mark.parametrize("name", ["mask.jpg", "mask.JPEG", "mask.webp", "mask"])
def test_predict_refuses_lossy_or_unknown_mask_formats(name, tmp_path, capsys):
    from sam_pets.samples import sample_path

    assert _predict(sample_path(), tmp_path / name, "--point", "1,1") == 2
    assert ".png, .tif or .tiff" in capsys.readouterr().err
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("name, fmt", [("m.png", "PNG"), ("m.tif", "TIFF"), ("m.TIFF", "TIFF")])
def test_predict_writes_the_format_the_extension_names(name, fmt, tmp_path, capsys):
    from PIL import Image

    from sam_pets.samples import sample_path

    assert _predict(sample_path(), tmp_path / name, "--box", "50,40,400,330") == 0
    with Image.open(tmp_path / name) as im:
        assert im.format == fmt and set(np.unique(np.asarray(im))) <= {0, 255}


@pytest.mark.parametrize(
    "prompt, shown",
    [
        (["--point", "5000,5000"], "--point (5000, 5000)"),
        (["--neg-point=-1,10"], "--neg-point (-1, 10)"),
        (["--box", "10,10,600,100"], "--box corner (600, 100)"),
    ],
)
def test_predict_prompts_outside_the_image(prompt, shown, tmp_path, capsys):
    from sam_pets.samples import sample_path

    assert _predict(sample_path(), tmp_path / "m.png", *prompt) == 2
    err = capsys.readouterr().err
    assert f"{shown} is outside the 500x375 image" in err
    assert not (tmp_path / "m.png").exists()


def test_predict_folder_as_image(tmp_path, capsys):
    assert _predict(tmp_path, tmp_path / "m.png", "--point", "1,1") == 2
    assert "is a folder, not an image file" in capsys.readouterr().err


def test_checkpoint_with_unknown_keys_is_refused(ckpt, tmp_path, capsys):
    import torch

    obj = torch.load(ckpt, weights_only=True)
    obj["model"]["foo.bar"] = torch.zeros(1)
    extra = tmp_path / "extra.pt"
    torch.save(obj, extra)
    assert main(["info", str(extra)]) == 2
    err = capsys.readouterr().err
    assert "extra.pt: 1 unexpected keys" in err and "'foo.bar'" in err


def test_predict_zooms_in_by_default_with_the_builtin_model(tmp_path, capsys):
    from PIL import Image

    from sam_pets.samples import sample_path

    masks = {}
    for flag in ("--zoom", "--no-zoom", None):
        out = tmp_path / f"m{flag}.png"
        argv = ["predict", str(sample_path()), "--box", "120,40,380,340", "--out", str(out)]
        assert main(argv + ([flag] if flag else [])) == 0
        assert json.loads(capsys.readouterr().out)["zoom"] is (flag != "--no-zoom")
        masks[flag] = np.asarray(Image.open(out))
        assert masks[flag].shape == (375, 500)
    assert np.array_equal(masks[None], masks["--zoom"])
    assert not np.array_equal(masks["--zoom"], masks["--no-zoom"])


def test_bench_times_the_zoomed_first_mask(capsys):
    argv = ["bench", "--config", "test", "--device", "cpu", "--repeats", "1", "--clicks", "2"]
    assert main(argv) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["zoom"] is True and rec["first_box_ms"] > 0 and rec["zoom_click_ms"] > 0
    assert rec["zoom_click_each_ms"] > 0  # a small model tries each candidate's crop too
    assert main([*argv, "--no-zoom"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["zoom"] is False and "zoom_click_ms" not in rec and rec["first_box_ms"] > 0
