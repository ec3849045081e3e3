"""Optimiser parameter groups and learning-rate schedules.

Parameter groups follow Meta's fine-tuning recipe (SAM2_IMAGE_SPEC.md §8): no weight decay
on biases and normalisation parameters; the image encoder at ``encoder_lr_scale`` of the base
lr; trunk block ``i`` further scaled by ``layer_decay ** (depth - i)``, the patch embedding by
``layer_decay ** (depth + 1)`` and the absolute position embeddings left at 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from sam_pets.train.config import TrainConfig

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORMS) or type(module).__name__.startswith("LayerNorm")


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of parameters that get no weight decay: biases and norm weights."""
    out = set()
    for mname, module in model.named_modules():
        for pname, _ in module.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            if pname == "bias" or _is_norm(module):
                out.add(full)
    return out


def lr_scale(name: str, depth: int, cfg: TrainConfig) -> float:
    """Lr multiplier of one parameter (relative to ``cfg.lr``).

    Args:
        name: Parameter name as in ``Sam2Image.named_parameters()`` (LoRA adapters use the
            name of the layer they adapt).
        depth: Number of trunk blocks.
        cfg: Training config (``encoder_lr_scale``, ``layer_decay``).
    """
    if not (name.startswith("image_encoder.") or name == "no_mem_embed"):
        return 1.0
    scale = cfg.encoder_lr_scale
    prefix = "image_encoder.trunk."
    if not name.startswith(prefix):
        return scale
    rest = name[len(prefix) :]
    if rest.startswith("blocks."):
        i = int(rest.split(".")[1])
        return scale * cfg.layer_decay ** (depth - i)
    if rest.startswith("patch_embed."):
        return scale * cfg.layer_decay ** (depth + 1)
    return scale  # pos_embed, pos_embed_window


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """AdamW groups of the trainable parameters, one per (lr scale, weight decay) pair.

    Each group carries ``base_lr`` (the peak lr), ``lr`` and ``weight_decay``.
    """
    depth = len(model.image_encoder.trunk.blocks)
    no_decay = no_decay_names(model)
    groups: dict[tuple[float, float], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_lora = ".lora_" in name
        wd = 0.0 if (name in no_decay or p.ndim <= 1) and not is_lora else cfg.weight_decay
        scale = lr_scale(name.replace(".parametrizations.weight.0", ""), depth, cfg)
        g = groups.setdefault(
            (scale, wd),
            {
                "params": [],
                "names": [],
                "weight_decay": wd,
                "base_lr": cfg.lr * scale,
                "lr": cfg.lr * scale,
            },
        )
        g["params"].append(p)
        g["names"].append(name)
    return [groups[k] for k in sorted(groups, reverse=True)]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` (raises if nothing is trainable)."""
    groups = param_groups(model, cfg)
    if not groups:
        raise ValueError("no trainable parameters: everything is frozen")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))


def warmup_cosine(step: int, total: int, warmup: int = 0, min_ratio: float = 0.1) -> float:
    """Lr factor at ``step`` (0-based): linear warmup to 1, then cosine to ``min_ratio``.

    Pure function: the factor for step ``s`` is the same however the run got there.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(total - warmup, 1)
    t = min(max(step - warmup, 0) / span, 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def warmup_constant(step: int, warmup: int = 0) -> float:
    """Lr factor: linear warmup to 1, then 1."""
    return (step + 1) / warmup if warmup > 0 and step < warmup else 1.0


@dataclass
class Plateau:
    """ReduceLROnPlateau on a metric to maximise (val mIoU); state is plain numbers.

    Attributes:
        factor: Multiplier applied when the metric stalls.
        patience: Validations without improvement tolerated.
        scale: Current lr multiplier.
        best: Best metric so far.
        bad: Validations since the best.
    """

    factor: float = 0.5
    patience: int = 3
    scale: float = 1.0
    best: float = -math.inf
    bad: int = 0

    def update(self, metric: float) -> float:
        """Record a validation result; return the (possibly reduced) lr multiplier."""
        if metric > self.best:
            self.best, self.bad = metric, 0
        else:
            self.bad += 1
            if self.bad > self.patience:
                self.scale *= self.factor
                self.bad = 0
        return self.scale

    def state_dict(self) -> dict:
        """Plain-number state for checkpoints."""
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output."""
        self.scale, self.best, self.bad = state["scale"], state["best"], state["bad"]


class LrSchedule:
    """Sets each group's lr for a step: ``base_lr * factor(step) * plateau.scale``.

    Args:
        cfg: Training config (``schedule``, ``warmup_steps``, ``min_lr_ratio``, plateau knobs).
        total_steps: Steps of the whole run (for the cosine).
    """

    def __init__(self, cfg: TrainConfig, total_steps: int) -> None:
        self.cfg = cfg
        self.total = total_steps
        self.plateau = Plateau(cfg.plateau_factor, cfg.plateau_patience)

    def factor(self, step: int) -> float:
        """Lr factor at ``step`` (before the plateau multiplier)."""
        c = self.cfg
        if c.schedule == "cosine":
            return warmup_cosine(step, self.total, c.warmup_steps, c.min_lr_ratio)
        return warmup_constant(step, c.warmup_steps)

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set the lrs for ``step``; return the base-group lr (``cfg.lr`` scaled)."""
        f = self.factor(step) * self.plateau.scale
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * f
        return self.cfg.lr * f

    def on_validation(self, metric: float) -> None:
        """Feed a val metric to the plateau rule (no-op unless ``schedule == "plateau"``)."""
        if self.cfg.schedule == "plateau":
            self.plateau.update(metric)
