"""LoRA adapters: start exact, train only adapters, merge exactly into plain weights."""

from __future__ import annotations

import torch

from sam_pets.model import build_model
from sam_pets.train.lora import adapter_parameters, add_lora, has_lora, merged_state_dict
from sam_pets.train.rundir import plain_model


def _features_and_masks(model, image):
    feats = model.encode_image(model.normalize(image))
    pts = torch.tensor([[[40.0, 50.0]]])
    out = model.decode(feats, pts, torch.ones(1, 1, dtype=torch.long), None, True)
    return feats.image_embed, out.logits


def test_lora_starts_exact_trains_only_adapters_and_merges_exactly():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 128, 128)
    base = build_model("test", seed=0)
    model = build_model("test", seed=0)
    n = add_lora(model, ("image_encoder", "mask_decoder"), rank=2)
    assert n > 0 and has_lora(model)
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(adapter_parameters(model)) and len(trainable) == 2 * n
    with torch.no_grad():
        e0, m0 = _features_and_masks(base, image)
        e1, m1 = _features_and_masks(model, image)
    assert torch.equal(e0, e1) and torch.equal(m0, m1)  # B = 0 at init

    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        emb, logits = _features_and_masks(model, image)
        (emb.square().mean() + logits.sigmoid().mean()).backward()
        opt.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(".lora_" in k for k in changed)

    model.eval()
    merged = plain_model(model)
    assert not has_lora(merged)
    assert set(merged_state_dict(model)) == set(base.state_dict())
    with torch.no_grad():
        e1, m1 = _features_and_masks(model, image)
        e2, m2 = _features_and_masks(merged, image)
    assert torch.equal(e1, e2) and torch.equal(m1, m2)
    assert not torch.equal(m1, m0)
