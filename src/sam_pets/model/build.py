"""Build models from configs (random initialisation)."""

from __future__ import annotations

import torch
from torch import nn

from sam_pets.model.config import Sam2Config, get_config
from sam_pets.model.sam2 import Sam2Image


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_model(
    config: str | Sam2Config, device: str | torch.device = "cpu", seed: int | None = None
) -> Sam2Image:
    """Build a randomly initialised :class:`Sam2Image` in eval mode.

    Args:
        config: A :class:`Sam2Config` or a variant name / alias (``"tiny"``, ``"test"``...).
        device: Where to put the parameters (``"meta"`` builds without allocating).
        seed: Seed for the initialisation (reproducible random models).
    """
    cfg = get_config(config) if isinstance(config, str) else config
    if str(device) == "meta":
        with torch.device("meta"):
            return Sam2Image(cfg)
    gen_state = torch.random.get_rng_state() if seed is not None else None
    if seed is not None:
        torch.manual_seed(seed)
    try:
        model = Sam2Image(cfg)
        trunk = model.image_encoder.trunk
        model.apply(_init_weights)
        nn.init.trunc_normal_(trunk.pos_embed, std=0.02)
        nn.init.trunc_normal_(trunk.pos_embed_window, std=0.02)
        nn.init.trunc_normal_(model.no_mem_embed, std=0.02)
    finally:
        if gen_state is not None:
            torch.random.set_rng_state(gen_state)
    return model.to(device).eval()


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Numbers of parameters per top-level part and in total (buffers excluded)."""
    out = {
        name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()
    }
    own = sum(p.numel() for p in model.parameters(recurse=False))
    if own:
        out["other"] = own
    out["total"] = sum(p.numel() for p in model.parameters())
    return out
