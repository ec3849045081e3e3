"""Shared argument types: bad devices and counts stop at parse time with one error line."""

from __future__ import annotations

import pytest

from sam_pets.cli import main

_CMDS = {
    "predict": ["predict", "img.png", "--config", "test", "--point", "1,1", "--out", "m.png"],
    "bench": ["bench", "--config", "test"],
    "train": ["train", "ds", "--out", "run", "--config", "test", "--steps", "1"],
    "eval": ["eval", "ds", "--config", "test", "--out", "rep"],
    "robustness": ["robustness", "ds", "--config", "test", "--out", "rep"],
}


@pytest.mark.parametrize("cmd", sorted(_CMDS))
@pytest.mark.parametrize(
    "device, match",
    [("foo", "unknown device 'foo'"), ("cuda:abc", "unknown device 'cuda:abc'")],
)
def test_bad_device_is_one_parse_error(cmd, device, match, capsys):
    with pytest.raises(SystemExit) as e:
        main([*_CMDS[cmd], "--device", device])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --device: {match}" in err and "Traceback" not in err


def test_unavailable_cuda_is_one_parse_error(capsys):
    import torch

    with pytest.raises(SystemExit):
        main([*_CMDS["bench"], "--device", f"cuda:{torch.cuda.device_count()}"])
    assert "requested but" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--repeats", "-1"), ("--clicks", "0")])
def test_bench_counts_must_be_positive(flag, value, capsys):
    with pytest.raises(SystemExit):
        main([*_CMDS["bench"], flag, value])
    assert f"argument {flag}: must be >= 1, got {value}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "cmd, flag, value",
    [
        ("eval", "--limit", "0"),
        ("eval", "--max-clicks", "0"),
        ("robustness", "--limit", "-2"),
    ],
)
def test_eval_counts_name_their_flag(cmd, flag, value, capsys):
    with pytest.raises(SystemExit) as e:
        main([*_CMDS[cmd], flag, value])
    assert e.value.code == 2
    assert f"argument {flag}: must be >= 1, got {value}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value, match",
    [
        ("--batch-size", "0", "must be >= 1, got 0"),
        ("--grad-accum", "-1", "must be >= 1, got -1"),
        ("--lr", "0", "must be a finite number > 0, got 0"),
        ("--lr", "nan", "must be a finite number > 0, got nan"),
        ("--val-every", "-1", "must be >= 0, got -1"),
        ("--early-stop", "-2", "must be >= 0, got -2"),
        ("--warmup-steps", "x", "expected an integer, got 'x'"),
        ("--num-workers", "-1", "must be >= 0, got -1"),
    ],
)
def test_train_values_name_their_flag(flag, value, match, capsys):
    with pytest.raises(SystemExit) as e:
        main([*_CMDS["train"], flag, value])
    assert e.value.code == 2
    assert f"argument {flag}: {match}" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["nan,nan", "inf,5", "5,-inf"])
def test_non_finite_points_are_refused(text, capsys):
    with pytest.raises(SystemExit):
        main([*_CMDS["predict"], "--neg-point", text])
    assert f"must be finite numbers, got '{text}'" in capsys.readouterr().err
