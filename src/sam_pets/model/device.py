"""Device and precision: the one place sam-pets chooses where and how it computes.

Prediction, training and the command line all resolve ``--device`` / ``--precision`` here.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "fp16")


def parse_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, rejecting bad names and absent CUDA devices with a ValueError.

    Raises:
        ValueError: not a device name (``"foo"``, ``"cuda:abc"``), or a CUDA device that this
            machine does not have.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"unknown device {str(device)!r}; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            n = torch.cuda.device_count()
            raise ValueError(f"device {str(device)!r} requested but this machine has {n} GPU(s)")
    return dev


def select_device(device: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """Resolve ``"auto"`` (CUDA, then Apple MPS, then CPU) or validate an explicit device.

    Under ``torchrun`` on GPUs, ``"auto"`` and ``"cuda"`` mean ``cuda:LOCAL_RANK``.

    Raises:
        ValueError: A bad device name, or a device this machine does not have.
    """
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = parse_device(device)
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError(f"device {device!r} requested but MPS is not available")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def resolve_precision(precision: str, device: torch.device, allow_fp16: bool = False) -> str:
    """``"auto"`` -> bf16 on CUDA, fp32 elsewhere; otherwise validate the name.

    Args:
        precision: "auto", "fp32", "bf16", or "fp16" (training only: ``allow_fp16``).
        device: The resolved device.
        allow_fp16: Accept fp16 (it needs a gradient scaler and CUDA).

    Raises:
        ValueError: An unknown name, or fp16 where it is not allowed or not on CUDA.
    """
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    allowed = PRECISIONS if allow_fp16 else PRECISIONS[:2]
    if precision not in allowed:
        names = ", ".join(repr(p) for p in ("auto", *allowed))
        raise ValueError(f"precision must be one of {names}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 training needs CUDA; use bf16 or fp32")
    return precision


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX).

    There a bf16 matmul runs several times faster than fp32 (2043 against 273 GFLOP/s on two
    cores of a Xeon with AMX); without it, bf16 autocast on a CPU only adds casts.
    """
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return probe is not None and bool(probe())
    except RuntimeError:
        return False


def autocast(device: torch.device, precision: str):
    """Autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    if precision in ("bf16", "fp16") and device.type in ("cuda", "cpu"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()
