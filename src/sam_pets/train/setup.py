"""Build the model to train: load or initialise, resize, freeze, add LoRA, set modes."""

from __future__ import annotations

from torch import nn

from sam_pets.model import Sam2Image, build_model, read_checkpoint
from sam_pets.model.checkpoint import model_from_checkpoint
from sam_pets.train.config import TrainConfig
from sam_pets.train.lora import _child_name, add_lora


def part_modules(model: Sam2Image, part: str) -> list[nn.Module | nn.Parameter]:
    """Modules (and loose parameters) of a part; ``no_mem_embed`` belongs to the encoder."""
    out: list = [getattr(model, _child_name(part))]
    if part == "image_encoder":
        out.append(model.no_mem_embed)
    return out


def load_train_model(cfg: TrainConfig) -> Sam2Image:
    """The starting model on the CPU: checkpoint weights or a seeded random init.

    ``cfg.resolution`` changes the model input size (position embeddings are interpolated,
    so any multiple of 32 compatible with the trunk windows works).
    """
    if cfg.checkpoint:
        ckpt = read_checkpoint(cfg.checkpoint)
        if cfg.resolution:
            ckpt.config = ckpt.config.replace(image_size=cfg.resolution)
        return model_from_checkpoint(ckpt)
    model = build_model(cfg.model_config, seed=cfg.seed)
    if cfg.resolution and cfg.resolution != model.cfg.image_size:
        model = build_model(model.cfg.replace(image_size=cfg.resolution), seed=cfg.seed)
    return model


def configure_trainable(model: Sam2Image, cfg: TrainConfig) -> None:
    """Freeze parts and add LoRA adapters as the config says (in place)."""
    model.requires_grad_(True)
    if cfg.lora_rank > 0:
        parts = tuple(p for p in cfg.lora_parts if p not in cfg.freeze)
        add_lora(model, parts, cfg.lora_rank, cfg.lora_alpha, seed=cfg.seed)
        return
    for part in cfg.freeze:
        for m in part_modules(model, part):
            m.requires_grad_(False)


def set_train_modes(model: Sam2Image, cfg: TrainConfig) -> None:
    """Train mode for the parts that learn, eval mode (no drop-path) for frozen ones."""
    model.train()
    for part in ("image_encoder", "prompt_encoder", "mask_decoder"):
        mod = getattr(model, _child_name(part))
        if not any(p.requires_grad for p in mod.parameters()):
            mod.eval()


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters that receive gradients, in a fixed order."""
    return [p for p in model.parameters() if p.requires_grad]
