"""One batch: the tiny model overfits it; cached features give the same loss as images."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sam_pets.eval.metrics import iou
from sam_pets.train.data import FeatureCache, open_dataset, sample_seed, to_batch
from sam_pets.train.prompting import center_click_prompts
from sam_pets.train.setup import set_train_modes
from sam_pets.train.step import batch_loss, encode
from sam_pets.train.trainer import Trainer
from sam_pets.train.validate import validate


def _grads(params):
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


def test_overfits_one_batch(make_cfg):
    cfg = make_cfg(
        lr=1e-2,
        grad_clip=1.0,
        weight_decay=0.0,
        encoder_lr_scale=1.0,
        layer_decay=1.0,
        correction_rounds=3,
        augment=False,
        val_split="",
    )
    tr = Trainer(cfg)
    batch = next(tr.micro_batches())
    assert batch.images.shape == (2, 3, 128, 128) and batch.num_objects == 2
    losses = []
    for _ in range(30):
        tr.optimizer.zero_grad()
        losses.append(batch_loss(tr.model, batch, cfg, backward=torch.Tensor.backward).loss)
        tr.rt.clip_and_step(tr.optimizer, tr.params, cfg.grad_clip)
    assert min(losses[-5:]) <= 0.5 * losses[0], losses


def test_cached_and_full_modes_give_the_same_loss(make_cfg):
    cfg = make_cfg(freeze=("image_encoder",), augment=False, correction_rounds=2)
    tr = Trainer(cfg)
    size = tr.model.cfg.image_size
    ds = open_dataset(cfg.dataset, cfg.train_split, size, augment=False)
    cache = FeatureCache(tr.model, ds, None, tr.rt.autocast)
    idx = [0, 1]
    items = [ds[i] for i in idx]
    seeds = [sample_seed(1, 0, i) for i in idx]
    imgs = [
        {"image": s["image"], "masks": s["masks"].bool(), "ignore": s["ignore"].bool(), "seed": sd}
        for s, sd in zip(items, seeds, strict=True)
    ]
    full = to_batch(imgs, tr.rt.device)
    cached = cache.batch(idx, seeds, tr.rt.device)
    assert cached.images is None and cache.computed == 2
    a = batch_loss(tr.model, full, cfg, backward=torch.Tensor.backward)
    grads_full = _grads(tr.params)
    tr.optimizer.zero_grad(set_to_none=True)
    b = batch_loss(tr.model, cached, cfg, backward=torch.Tensor.backward)
    grads_cached = _grads(tr.params)
    assert a.num_objects == b.num_objects == 2
    torch.testing.assert_close(torch.tensor(a.loss), torch.tensor(b.loss), rtol=1e-5, atol=1e-6)
    for g1, g2 in zip(grads_full, grads_cached, strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)
    cache.batch(idx, seeds, tr.rt.device)
    assert cache.computed == 2  # computed once


def test_disk_cache_round_trip(make_cfg, tmp_path):
    cfg = make_cfg(freeze=("image_encoder",), augment=False)
    tr = Trainer(cfg)
    ds = open_dataset(cfg.dataset, cfg.train_split, tr.model.cfg.image_size, augment=False)
    c1 = FeatureCache(tr.model, ds, str(tmp_path / "cache"), tr.rt.autocast)
    b1 = c1.batch([3], [5], tr.rt.device)
    c2 = FeatureCache(tr.model, ds, str(tmp_path / "cache"), tr.rt.autocast)
    b2 = c2.batch([3], [5], tr.rt.device)
    assert c1.computed == 1 and c2.computed == 0
    assert torch.equal(b1.features.image_embed, b2.features.image_embed)
    assert torch.equal(b1.masks[0], b2.masks[0])


def _best_click_candidate_iou(model, items) -> float:
    """Mean over objects of the best of the 3 candidates of a centre click (oracle choice)."""
    model.eval()
    out = []
    with torch.no_grad():
        for x, masks, ignore in items:
            p = center_click_prompts(masks.numpy())
            dec = model.decode(
                encode(model, x, False),
                torch.from_numpy(p.points_xy),
                torch.from_numpy(p.labels),
                None,
                True,
            )
            s = model.cfg.image_size
            full = F.interpolate(dec.logits.float(), size=(s, s), mode="bilinear") > 0
            cand = torch.stack([iou(full[:, j], masks, ignore) for j in range(full.shape[1])], 1)
            out += cand.max(1).values.tolist()
    return sum(out) / len(out)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_overfit_batch_is_segmented_by_box_and_click(make_cfg, seed):
    """300 steps on 4 images with new prompts every step: box and click prompts are followed.

    A box is unambiguous: its mask must reach IoU 0.9. A centre click on a pet is not: the
    right mask must be among its 3 candidates (IoU 0.9), and the IoU head, which learns more
    slowly (weight 1 against the focal term's 20), must pick well enough for 0.75.
    """
    cfg = make_cfg(
        seed=seed,
        batch_size=4,
        lr=1e-3,  # 3e-3 drives the sigmoid IoU head to 0 while the masks are still bad
        grad_clip=1.0,
        weight_decay=0.0,
        correction_rounds=2,
        augment=False,
        val_split="",
    )
    tr = Trainer(cfg)
    batch = next(tr.micro_batches())
    items = [(batch.images[i : i + 1], batch.masks[i], batch.ignore[i]) for i in range(4)]
    assert validate(tr.model, items)["val_miou"] < 0.6
    set_train_modes(tr.model, cfg)
    for step in range(300):
        # New prompts every step, as every epoch of a real run draws them anew.
        batch.seeds = [sample_seed(cfg.seed, step, k) for k in range(4)]
        tr.optimizer.zero_grad()
        batch_loss(tr.model, batch, cfg, backward=torch.Tensor.backward)
        tr.rt.clip_and_step(tr.optimizer, tr.params, cfg.grad_clip)
    val = validate(tr.model, items)
    assert val["val_iou_box"] > 0.9 and val["val_iou_click"] > 0.75, val
    assert _best_click_candidate_iou(tr.model, items) > 0.9


def test_a_batch_is_the_sum_of_its_images(test_model):
    """Objects of all images are decoded together, yet each image is trained as if alone:
    its own prompts (own seed), its own loss terms; the batch's gradient is their sum."""
    from sam_pets.train.config import TrainConfig
    from sam_pets.train.step import Batch

    model = test_model
    s = model.cfg.image_size
    g = torch.Generator().manual_seed(0)
    masks = []
    for k in (1, 2, 0, 3):  # images with several objects and one with none
        m = torch.zeros(k, s, s, dtype=torch.bool)
        for j in range(k):
            y, x = (int(v) for v in torch.randint(10, s - 40, (2,), generator=g))
            m[j, y : y + 30, x : x + 25] = True
        masks.append(m)
    ignore = torch.zeros(4, s, s, dtype=torch.bool)
    ignore[:, :4] = True
    images = torch.rand(4, 3, s, s, generator=g)
    seeds = [11, 12, 13, 14]
    for prob_box, prob_mask, mode in (
        (0.5, 0.0, "mixed"),
        (0.5, 0.5, "mixed"),
        (1.0, 0.0, "mixed"),
        (0.0, 0.0, "mixed"),
        (0.0, 0.0, "grid"),
    ):
        cfg = TrainConfig(
            dataset="-",
            out="-",
            model_config="test",
            steps=1,
            correction_rounds=2,
            prob_box=prob_box,
            prob_mask_prompt=prob_mask,
            prompt_mode=mode,
            grid_points_per_side=16,
        )
        model.zero_grad()
        whole = batch_loss(
            model, Batch(masks, ignore, seeds, images), cfg, backward=torch.Tensor.backward
        )
        grads = _grads(model.parameters())
        model.zero_grad()
        total, n = 0.0, 0
        for i in range(4):
            one = Batch([masks[i]], ignore[i : i + 1], [seeds[i]], images[i : i + 1])
            part = batch_loss(
                model, one, cfg, backward=lambda t, k=one.num_objects: (t * k).backward()
            )
            total += part.loss * part.num_objects
            n += part.num_objects
        assert whole.num_objects == n == 6
        assert whole.loss == pytest.approx(total / n, rel=1e-5)
        for a, b in zip(grads, _grads(model.parameters()), strict=True):
            torch.testing.assert_close(a * n, b, rtol=1e-4, atol=1e-5)
    model.zero_grad(set_to_none=True)


def test_cpu_bf16_step_keeps_the_decoder_in_float32(make_cfg, monkeypatch):
    """bf16 on a CPU: the encoder runs under autocast, the decoder rounds in float32."""
    from sam_pets.model import Sam2Image

    cfg = make_cfg(precision="bf16", augment=False, correction_rounds=1, val_split="")
    tr = Trainer(cfg)
    batch = next(tr.micro_batches())
    seen = []
    decode = Sam2Image.decode

    def spy(self, features, *args, **kwargs):
        dtypes = {t.dtype for t in features.tensors()}
        seen.append((dtypes, torch.is_autocast_enabled("cpu")))
        return decode(self, features, *args, **kwargs)

    encoded = []
    encode_image = Sam2Image.encode_image

    def spy_encoder(self, images):
        out = encode_image(self, images)
        encoded.append({t.dtype for t in out.tensors()})
        return out

    monkeypatch.setattr(Sam2Image, "encode_image", spy_encoder)

    monkeypatch.setattr(Sam2Image, "decode", spy)
    tr.optimizer.zero_grad()
    out = batch_loss(
        tr.model,
        batch,
        cfg,
        tr.rt.autocast,
        torch.Tensor.backward,
        decoder_autocast=tr.rt.decoder_autocast,
    )
    assert encoded and torch.bfloat16 in encoded[0]  # the encoder ran under autocast
    assert seen and all(s == ({torch.float32}, False) for s in seen)
    assert torch.isfinite(torch.tensor(out.loss))
    enc = [p for p in tr.model.image_encoder.parameters() if p.requires_grad]
    assert enc and all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc)
    assert any(p.grad.abs().sum() > 0 for p in enc)  # the gradient reached the bf16 encoder
    # with the decoder under the same autocast, it sees autocast on
    seen.clear()
    batch_loss(tr.model, batch, cfg, tr.rt.autocast)
    assert seen and all(on for _, on in seen)
