"""Exponential moving average (EMA) of the trained weights.

A run with ``ema_decay`` > 0 keeps, next to the weights the optimiser moves, their running
average ``avg <- decay * avg + (1 - decay) * w`` after every optimiser step (only the
trainable parameters: frozen ones do not move). Early steps use the smaller decay
``(1 + t) / (10 + t)``, so the average does not stay anchored to the starting weights.
The averaged weights are validated and saved by swapping them into the model for a moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """The EMA of ``model``'s trainable parameters (kept in float32).

    Args:
        model: The model being trained (its ``requires_grad`` flags already set).
        decay: Per-step decay in [0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        self.average = [params[n].detach().float().clone() for n in self.names]
        self.updates = 0

    def _params(self, model: nn.Module) -> list[torch.Tensor]:
        params = dict(model.named_parameters())
        return [params[n] for n in self.names]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average (after an optimiser step)."""
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        current = [
            p.detach().to(a.device, torch.float32)
            for p, a in zip(self._params(model), self.average, strict=True)
        ]
        torch._foreach_lerp_(self.average, current, 1.0 - d)
        self.updates += 1

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block the model holds the averaged weights; then its own again."""
        params = self._params(model)
        kept = [p.detach().clone() for p in params]
        try:
            with torch.no_grad():
                for p, a in zip(params, self.average, strict=True):
                    p.copy_(a)
            yield model
        finally:
            with torch.no_grad():
                for p, k in zip(params, kept, strict=True):
                    p.copy_(k)

    def state_dict(self) -> dict:
        """Names, averaged tensors (CPU) and the update count."""
        return {
            "names": list(self.names),
            "average": [a.cpu() for a in self.average],
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output of the same model's trainable parameters."""
        if list(state["names"]) != self.names:
            raise ValueError("the saved weight average is of other parameters than this run's")
        self.average = [
            a.to(b.device, torch.float32)
            for a, b in zip(state["average"], self.average, strict=True)
        ]
        self.updates = int(state["updates"])
