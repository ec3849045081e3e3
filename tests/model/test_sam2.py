"""Shapes, gradients and the fast decoder path on the small test config."""

import pytest
import torch

from sam_pets.model import build_model, count_parameters, get_config

SPEC_COUNTS = {  # image-path totals from the SAM 2 spec (incl. the 256-number buffer)
    "sam2.1_hiera_tiny": 31_440_977,
    "sam2.1_hiera_small": 38_538_833,
    "sam2.1_hiera_base_plus": 73_328_657,
    "sam2.1_hiera_large": 216_925_121,
}


@pytest.mark.parametrize("name", list(SPEC_COUNTS))
def test_parameter_counts_match_spec(name):
    model = build_model(name, device="meta")
    total = sum(t.numel() for t in model.state_dict().values())
    assert total == SPEC_COUNTS[name]


def test_encode_shapes(test_model):
    cfg = test_model.cfg
    s, e, d = cfg.image_size, cfg.embedding_size, cfg.decoder.dim
    with torch.inference_mode():
        f = test_model.encode_image(torch.randn(2, 3, s, s))
    assert f.image_embed.shape == (2, d, e, e)
    assert f.feat_s0.shape == (2, d // 8, 4 * e, 4 * e)
    assert f.feat_s1.shape == (2, d // 4, 2 * e, 2 * e)


def test_encode_rejects_wrong_size(test_model):
    with pytest.raises(ValueError, match=r"\(B, 3, 128, 128\)"):
        test_model.encode_image(torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("multimask", [True, False])
def test_decode_shapes(test_model, multimask):
    cfg = test_model.cfg
    with torch.inference_mode():
        f = test_model.encode_image(torch.randn(1, 3, cfg.image_size, cfg.image_size))
        pts = torch.tensor([[[10.0, 20.0], [50.0, 60.0]]]).repeat(3, 1, 1)
        lab = torch.tensor([[1, 0]]).repeat(3, 1)
        out = test_model.decode(f, pts, lab, multimask_output=multimask)
    m = 3 if multimask else 1
    assert out.logits.shape == (3, m, cfg.mask_size, cfg.mask_size)
    assert out.iou.shape == (3, m) and out.object_score.shape == (3, 1)
    assert out.tokens.shape == (3, m, cfg.decoder.dim)
    assert ((out.iou >= 0) & (out.iou <= 1)).all()


def _randomise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("with_mask", [False, True])
def test_fast_decoder_matches_reference_path(multimask, with_mask):
    model = _randomise(build_model("test"))
    cfg = model.cfg
    with torch.inference_mode():
        f = model.encode_image(torch.randn(1, 3, cfg.image_size, cfg.image_size))
        prep = model.prepare(f)
        pts = torch.tensor([[[10.0, 20.0], [50.0, 60.0], [90.0, 33.0]]]).repeat(2, 1, 1)
        lab = torch.tensor([[2, 3, 0], [1, 0, 1]])
        mask = torch.randn(2, 1, cfg.mask_size, cfg.mask_size) if with_mask else None
        ref = model.decode(f, pts, lab, mask, multimask)
        fast = model.decode_prepared(prep, pts, lab, mask, multimask)
    for a, b in (
        (fast.logits, ref.logits),
        (fast.iou, ref.iou),
        (fast.object_score, ref.object_score),
    ):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max().clamp_min(1e-6)


def test_mask_factors_rebuild_the_mask_embedding():
    enc = _randomise(build_model("test")).sam_prompt_encoder
    s = enc.embedding_size * 4
    masks = torch.randn(2, 1, s, s)
    with torch.inference_mode():
        h, w, c = enc.mask_factors(masks)
        dense = enc.embed_masks(masks).flatten(2).transpose(1, 2)  # (B, E*E, D)
    assert h.shape == (2, enc.embedding_size**2, w.shape[0]) and w.shape[1] == dense.shape[-1]
    assert w.shape[0] < dense.shape[-1]  # a low-rank product: what the fast decoder uses
    torch.testing.assert_close(h @ w + c, dense, rtol=1e-5, atol=1e-5)


def test_gradients_reach_every_parameter():
    model = build_model("test", seed=0).train()
    cfg = model.cfg
    f = model.encode_image(torch.randn(1, 3, cfg.image_size, cfg.image_size))
    pts = torch.tensor([[[40.0, 40.0], [80.0, 90.0], [60.0, 60.0]]])
    lab = torch.tensor([[2, 3, 1]])
    mask = torch.randn(1, 1, cfg.mask_size, cfg.mask_size)
    out1 = model.decode(f, pts, lab, None, multimask_output=True)
    out2 = model.decode(f, pts, lab, mask, multimask_output=False)
    loss = sum(o.logits.mean() + o.iou.mean() + o.object_score.mean() for o in (out1, out2))
    loss.backward()
    # token 0 of the output tokens (single mask) is trained via out2; all others via out1
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_count_parameters_sums_children():
    counts = count_parameters(build_model("test"))
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_seeded_build_is_reproducible():
    a, b = build_model("test", seed=3), build_model("test", seed=3)
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=False)
    )
    assert get_config("test").image_size == 128


def test_cpu_attention_when_training_under_autocast_is_computed_in_float32():
    from sam_pets.model.layers import attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 40, 16, generator=g) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    qb, kb, vb = (t.bfloat16().requires_grad_() for t in (q, k, v))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention(qb, kb, vb)
    assert out.dtype == torch.bfloat16  # the caller's dtype comes back
    # float32 attention of the bf16-rounded inputs, rounded once at the end
    sdpa = torch.nn.functional.scaled_dot_product_attention
    exact = sdpa(qb.detach().float(), kb.detach().float(), vb.detach().float())
    assert torch.equal(out.detach(), exact.bfloat16())
    assert (out.detach().float() - ref).abs().max() < 0.05
    out.float().square().sum().backward()
    assert all(t.grad is not None and t.grad.dtype == torch.bfloat16 for t in (qb, kb, vb))
    # inference (no gradient) and float32 are the plain call
    with torch.no_grad():
        assert torch.equal(attention(qb, kb, vb), sdpa(qb, kb, vb))
    assert torch.equal(attention(q, k, v), ref)
