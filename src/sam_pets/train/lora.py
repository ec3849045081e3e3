"""LoRA adapters as weight parametrisations, merged into plain weights for saving.

An adapted ``nn.Linear`` keeps its frozen weight ``W`` (out, in) and gains ``A`` (r, in) and
``B`` (out, r); every access to ``layer.weight`` returns ``W + (alpha / r) * B @ A``. Being a
parametrisation (not a wrapper module), it also works where the model reads ``.weight``
directly (the encoder's inference path). ``B`` starts at zero, so an adapted model starts
exactly equal to the original.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

# Linear layers that get adapters: Hiera attention (qkv, proj) and MLP (layers.N); the
# decoder transformer's attention (q/k/v/out_proj) and MLP (layers.N).
_TARGETS = ("attn.qkv", "attn.proj", "mlp.layers.", "q_proj", "k_proj", "v_proj", "out_proj")


class LoraDelta(nn.Module):
    """The parametrisation ``W -> W + scale * B @ A``.

    Args:
        out_features: Rows of ``W``.
        in_features: Columns of ``W``.
        rank: Rank r of the update.
        alpha: Scale numerator; ``scale = alpha / rank``.
    """

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = alpha / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """Adapted weight (out, in)."""
        return weight + (self.lora_B @ self.lora_A) * self.scale


def lora_targets(module: nn.Module) -> list[str]:
    """Names of the Linear layers inside ``module`` that get adapters."""
    out = []
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear) and any(t in name for t in _TARGETS):
            out.append(name)
    return out


def add_lora(
    model: nn.Module, parts: tuple[str, ...], rank: int, alpha: float | None = None, seed: int = 0
) -> int:
    """Add adapters to the target layers of the named child modules, in place.

    Only the adapters are left trainable in the whole model.

    Args:
        model: The model (e.g. a ``Sam2Image``).
        parts: Child module names ("image_encoder", "mask_decoder", "prompt_encoder").
        rank: LoRA rank r >= 1.
        alpha: Scale numerator (None: ``rank``, i.e. scale 1).
        seed: Seed of the ``A`` initialisation.

    Returns:
        Number of adapted layers.
    """
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    model.requires_grad_(False)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    n = 0
    try:
        for part in parts:
            child = getattr(model, _child_name(part))
            for name in lora_targets(child):
                layer = child.get_submodule(name)
                out_f, in_f = layer.weight.shape
                delta = LoraDelta(out_f, in_f, rank, float(alpha or rank)).to(layer.weight)
                parametrize.register_parametrization(layer, "weight", delta)
                n += 1
    finally:
        torch.random.set_rng_state(gen_state)
    for name, p in model.named_parameters():
        p.requires_grad_(".lora_" in name)
    return n


def _child_name(part: str) -> str:
    return {"prompt_encoder": "sam_prompt_encoder", "mask_decoder": "sam_mask_decoder"}.get(
        part, part
    )


def has_lora(model: nn.Module) -> bool:
    """True if any layer of ``model`` is parametrised with an adapter."""
    return any(isinstance(m, LoraDelta) for m in model.modules())


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Plain state dict with every adapter folded into its weight (model left unchanged).

    Keys are those of the model without adapters; each adapted weight is exactly the value
    the adapted layer uses in its forward pass.
    """
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if ".parametrizations.weight." not in key:
                out[key] = value
            elif key.endswith(".parametrizations.weight.original"):
                mod_name = key[: -len(".parametrizations.weight.original")]
                out[f"{mod_name}.weight"] = model.get_submodule(mod_name).weight.detach().clone()
    return out


def adapter_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors by name (``...lora_A`` / ``...lora_B``)."""
    return {n: p for n, p in model.named_parameters() if ".lora_" in n}
