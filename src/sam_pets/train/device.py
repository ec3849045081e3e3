"""Device, autocast and backward behind one small object (the Fabric idea, no dependency)."""

from __future__ import annotations

import contextlib

import torch

from sam_pets.model.build import parse_device


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """Resolve "auto" (CUDA, then MPS, then CPU) or validate an explicit device.

    Under ``torchrun`` on GPUs, "auto" and "cuda" mean ``cuda:LOCAL_RANK``.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = parse_device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


class Runtime:
    """Where and in which precision a run computes.

    Args:
        device: Resolved device.
        precision: "auto" (bf16 autocast on CUDA, fp32 elsewhere), "fp32", "bf16" or "fp16"
            (fp16 uses a gradient scaler; CUDA only).
    """

    def __init__(self, device: torch.device, precision: str = "auto") -> None:
        self.device = device
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "fp32"
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("fp16 training needs CUDA; use bf16 or fp32")
        self.precision = precision
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")

    def autocast(self):
        """Autocast context for the forward pass (no-op in fp32)."""
        if self.precision in ("bf16", "fp16") and self.device.type in ("cuda", "cpu"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            return torch.autocast(self.device.type, dtype=dtype)
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """Backward, through the gradient scaler in fp16."""
        self.scaler.scale(loss).backward()

    def clip_and_step(self, optimizer: torch.optim.Optimizer, params, max_norm: float) -> float:
        """Unscale (fp16), clip the global grad norm, step; return the pre-clip norm."""
        norm = self.unscale_and_clip(optimizer, params, max_norm)
        self.step(optimizer)
        return norm

    def unscale_and_clip(self, optimizer: torch.optim.Optimizer, params, max_norm: float) -> float:
        """Unscale the gradients (fp16) and clip their global norm; return the pre-clip norm."""
        self.scaler.unscale_(optimizer)
        if max_norm > 0:
            return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        grads = [p.grad.norm() for p in params if p.grad is not None]
        return float(torch.stack(grads).norm()) if grads else 0.0

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Optimiser step (the fp16 scaler skips it when a gradient is not finite)."""
        self.scaler.step(optimizer)
        self.scaler.update()

    def skips_non_finite(self) -> bool:
        """True when the gradient scaler handles non-finite gradients itself (fp16)."""
        return self.scaler.is_enabled()

    def synchronize(self) -> None:
        """Wait for queued device work (for honest timings)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def seed_everything(seed: int) -> None:
    """Seed torch's global RNG (CPU and CUDA): initialisation, drop-path, adapters.

    Data order, augmentation and prompts use their own generators seeded from
    ``(seed, epoch, position)``, so they do not depend on this state.
    """
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Global torch RNG state (CPU and all CUDA devices) as tensors."""
    state = {"cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state` output."""
    torch.random.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
