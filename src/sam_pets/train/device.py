"""Autocast and backward behind one small object (the Fabric idea, no dependency), and RNG state.

Devices and precisions are resolved by :mod:`sam_pets.model.device`.
"""

from __future__ import annotations

import torch

from sam_pets.model.device import autocast, resolve_precision


class Runtime:
    """Where and in which precision a run computes.

    Args:
        device: Resolved device.
        precision: "auto" (bf16 autocast on CUDA, fp32 elsewhere), "fp32", "bf16" or "fp16"
            (fp16 uses a gradient scaler; CUDA only).
    """

    def __init__(self, device: torch.device, precision: str = "auto") -> None:
        self.device = device
        self.precision = resolve_precision(precision, device, allow_fp16=True)
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")

    def autocast(self):
        """Autocast context for the forward pass (no-op in fp32)."""
        return autocast(self.device, self.precision)

    def decoder_autocast(self):
        """Autocast context for the prompt encoder and mask decoder rounds.

        The same as :meth:`autocast`, except on a CPU: there the decoder's many small ops
        (a few tokens per object, 64 x 64 masks) run slower in bfloat16 than in float32 (the
        casts cost more than the matmuls save), so it stays in float32 while the image
        encoder, where the large matmuls are, runs under autocast.
        """
        if self.device.type == "cpu":
            return torch.autocast("cpu", enabled=False)
        return self.autocast()

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
