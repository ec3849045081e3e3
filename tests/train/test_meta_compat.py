"""A LoRA fine-tune of Meta's tiny architecture saves a file Meta's build_sam2 loads."""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.parity, pytest.mark.slow]


def test_lora_finetune_of_tiny_loads_in_build_sam2(make_cfg):
    pytest.importorskip("sam2", reason="Meta's sam2 package is not installed")
    from sam2.build_sam import build_sam2

    from sam_pets.model import load_model
    from sam_pets.train.loop import fit

    cfg = make_cfg(
        model_config="tiny",
        resolution=256,
        steps=1,
        batch_size=1,
        lora_rank=2,
        correction_rounds=0,
        val_split="",
    )
    res = fit(cfg)
    ours = load_model(res.last_checkpoint).state_dict()
    meta = build_sam2(
        "configs/sam2.1/sam2.1_hiera_t.yaml", str(res.last_checkpoint), device="cpu"
    ).state_dict()
    assert all(torch.equal(v, meta[k]) for k, v in ours.items())
