"""Device and precision selection, shared by prediction, training and the command line."""

from __future__ import annotations

import contextlib

import pytest
import torch

from sam_pets.model.device import autocast, resolve_precision, select_device


def test_auto_and_explicit_devices():
    assert select_device("cpu") == torch.device("cpu")
    auto = select_device("auto")
    assert auto.type in ("cpu", "cuda", "mps")
    assert select_device(None) == auto
    with pytest.raises(ValueError, match="unknown device"):
        select_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


def test_precision_rules():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("auto", torch.device("cuda", 0)) == "bf16"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", cpu)  # prediction: no fp16
    with pytest.raises(ValueError, match="needs CUDA"):
        resolve_precision("fp16", cpu, allow_fp16=True)
    assert resolve_precision("fp16", torch.device("cuda", 0), allow_fp16=True) == "fp16"
    with pytest.raises(ValueError, match="'int8'"):
        resolve_precision("int8", cpu, allow_fp16=True)


def test_autocast_is_a_no_op_in_fp32_and_bf16_on_cpu():
    cpu = torch.device("cpu")
    assert isinstance(autocast(cpu, "fp32"), contextlib.nullcontext)
    with autocast(cpu, "bf16"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.bfloat16


def test_cpu_has_fast_bf16_asks_torch_and_survives_a_failing_probe(monkeypatch):
    from sam_pets.model.device import cpu_has_fast_bf16

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert cpu_has_fast_bf16() is True
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert cpu_has_fast_bf16() is False

    def broken():
        raise RuntimeError("no cpuinfo")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", broken, raising=False)
    assert cpu_has_fast_bf16() is False
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert cpu_has_fast_bf16() is False
