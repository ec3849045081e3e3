"""``sam-pets download`` and ``--model`` resolution, in-process, against a local HTTP server."""

from __future__ import annotations

import dataclasses
import json

import pytest

from local_http import checkpoint_bytes, serve_official, unused_port, use_fake_builtin
from sam_pets.cli import main
from sam_pets.model import hub

NAME = "sam2_hiera_tiny"


@pytest.fixture(scope="module")
def ckpt_bytes(tmp_path_factory) -> bytes:
    return checkpoint_bytes(tmp_path_factory.mktemp("c"))


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_PETS_CACHE_DIR", str(tmp_path / "cache"))
    use_fake_builtin(tmp_path, monkeypatch, seed=3)
    return tmp_path


@pytest.fixture
def server(env, monkeypatch, ckpt_bytes):
    with serve_official(monkeypatch, NAME, ckpt_bytes) as srv:
        yield srv


def test_list_shows_builtin_and_cache_state(env, capsys):
    assert main(["download", "--list"]) == 0
    out = capsys.readouterr().out
    assert "pets" in out and "built in" in out
    assert "sam2.1_hiera_large" in out and "no known sha256" in out
    assert main(["download", "--list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == hub.model_names()
    assert rows[0]["cached"] and not any(r["cached"] for r in rows[1:])


def test_download_then_use_by_name(server, env, capsys):
    assert main(["download", NAME, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "downloaded, sha256 verified" in out
    assert (env / "cache" / "checkpoints" / f"{NAME}.pt").is_file()
    assert main(["download", NAME]) == 0
    assert "already cached" in capsys.readouterr().out
    assert main(["download", "--list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[NAME]["cached"]
    assert main(["info", NAME, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"] == "test"


def test_download_shows_a_progress_bar(server, capsys):
    assert main(["download", NAME]) == 0
    assert f"downloading {NAME}" in capsys.readouterr().err


def test_download_errors_are_one_line(server, env, capsys, monkeypatch):
    assert main(["download"]) == 2
    assert "NAME or --list" in capsys.readouterr().err
    assert main(["download", "sam9_giant"]) == 2
    assert "unknown official checkpoint" in capsys.readouterr().err
    monkeypatch.setenv("SAM_PETS_DOWNLOAD_URL", f"http://127.0.0.1:{unused_port()}")
    assert main(["download", NAME]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint FILE" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_unverified_download_warns(server, env, capsys, monkeypatch, ckpt_bytes):
    large = "sam2.1_hiera_large"
    server.files[f"/092824/{large}.pt"] = ckpt_bytes
    entry = dataclasses.replace(hub.OFFICIAL[large], config="test")
    monkeypatch.setitem(hub.OFFICIAL, large, entry)
    assert main(["download", large, "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "sha256 NOT verified" in cap.out
    assert "no sha256 is known" in cap.err and "keys and shapes match" in cap.err


def test_builtin_is_the_default_model(env, tmp_path, capsys):
    from sam_pets.samples import sample_path

    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"] == "test" and info["dtypes"] == ["float16"]
    out = tmp_path / "m.png"
    args = ["predict", str(sample_path()), "--point", "250,180", "--out", str(out)]
    assert main([*args, "--device", "cpu"]) == 0
    assert out.is_file()
    assert main(["download", "pets"]) == 0
    assert "built in" in capsys.readouterr().out


def test_missing_model_is_one_clear_error(env, tmp_path, capsys, monkeypatch):
    from sam_pets.samples import sample_path

    out = str(tmp_path / "m.png")
    assert (
        main(["predict", str(sample_path()), "--model", "tiny", "--point", "1,1", "--out", out])
        == 2
    )
    assert "sam-pets download sam2.1_hiera_tiny" in capsys.readouterr().err
    monkeypatch.setenv("SAM_PETS_BUILTIN_MODEL", str(tmp_path / "absent.pt"))
    assert main(["predict", str(sample_path()), "--point", "1,1", "--out", out]) == 2
    assert "built-in 'pets' model is missing" in capsys.readouterr().err
    assert main(["bench", "--device", "cpu"]) == 2


def test_train_starts_from_the_builtin_model_by_default(env):
    from sam_pets.cli import build_parser
    from sam_pets.cli.train_cmds import build_config

    args = build_parser().parse_args(["train", "ds", "--out", "run", "--steps", "1"])
    cfg, resume = build_config(args)
    assert (
        cfg.checkpoint == str((env / "pets.pt").resolve())
        and cfg.model_config is None
        and not resume
    )
    args = build_parser().parse_args(
        ["train", "ds", "--out", "run", "--checkpoint", "pets", "--steps", "1"]
    )
    assert build_config(args)[0].checkpoint == str((env / "pets.pt").resolve())
    args = build_parser().parse_args(
        ["train", "ds", "--out", "run", "--config", "test", "--steps", "1"]
    )
    cfg, _ = build_config(args)
    assert cfg.checkpoint is None and cfg.model_config == "test"
