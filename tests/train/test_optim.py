"""Parameter groups (weight decay, layer-wise lr) and the pure lr schedules."""

from __future__ import annotations

import math

import pytest

from sam_pets.model import build_model
from sam_pets.train.config import TrainConfig
from sam_pets.train.optim import LrSchedule, Plateau, build_optimizer, param_groups, warmup_cosine


def _cfg(**kw):
    return TrainConfig(dataset="d", out="o", model_config="test", steps=10, lr=1.0, **kw)


def _lookup(groups):
    return {n: g for g in groups for n in g["names"]}


def test_no_weight_decay_on_norms_and_biases():
    model = build_model("test", seed=0)
    by_name = _lookup(param_groups(model, _cfg()))
    assert by_name["image_encoder.trunk.blocks.0.norm1.weight"]["weight_decay"] == 0.0
    assert by_name["sam_mask_decoder.transformer.norm_final_attn.weight"]["weight_decay"] == 0.0
    assert by_name["sam_mask_decoder.output_upscaling.1.weight"]["weight_decay"] == 0.0  # LN2d
    assert by_name["image_encoder.trunk.blocks.0.attn.qkv.bias"]["weight_decay"] == 0.0
    assert by_name["image_encoder.trunk.blocks.0.attn.qkv.weight"]["weight_decay"] == 0.1
    n_params = sum(len(g["params"]) for g in param_groups(model, _cfg()))
    assert n_params == len(list(model.parameters()))


def test_layer_wise_lr_decay():
    model = build_model("test", seed=0)
    depth = len(model.image_encoder.trunk.blocks)
    by_name = _lookup(param_groups(model, _cfg(encoder_lr_scale=0.5, layer_decay=0.9)))
    lr = {n: g["base_lr"] for n, g in by_name.items()}
    assert lr["sam_mask_decoder.iou_token.weight"] == 1.0
    assert lr["image_encoder.trunk.pos_embed"] == 0.5
    assert lr["no_mem_embed"] == 0.5
    assert lr["image_encoder.neck.convs.0.conv.weight"] == 0.5
    patch = lr["image_encoder.trunk.patch_embed.proj.weight"]
    assert patch == pytest.approx(0.5 * 0.9 ** (depth + 1))
    for i in range(depth):
        key = f"image_encoder.trunk.blocks.{i}.norm1.weight"
        assert lr[key] == pytest.approx(0.5 * 0.9 ** (depth - i))


def test_frozen_parameters_are_left_out():
    model = build_model("test", seed=0)
    model.image_encoder.requires_grad_(False)
    opt = build_optimizer(model, _cfg())
    names = {n for g in opt.param_groups for n in g["names"]}
    assert names and not any(n.startswith("image_encoder") for n in names)


def test_warmup_cosine_is_pure():
    assert warmup_cosine(0, 100, warmup=10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, warmup=10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, warmup=10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, warmup=10, min_ratio=0.1) == pytest.approx(0.55)
    assert warmup_cosine(100, 100, warmup=10, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 100) == pytest.approx(0.1)


def test_plateau_and_schedule():
    p = Plateau(factor=0.5, patience=1)
    assert [p.update(m) for m in (0.5, 0.4, 0.4, 0.6, 0.6, 0.6)] == [1, 1, 0.5, 0.5, 0.5, 0.25]
    q = Plateau()
    q.load_state_dict(p.state_dict())
    assert q.state_dict() == p.state_dict()
    cfg = _cfg(schedule="plateau", plateau_patience=0, plateau_factor=0.1)
    model = build_model("test", seed=0)
    opt = build_optimizer(model, cfg)
    sched = LrSchedule(cfg, 10)
    assert sched.apply(opt, 3) == 1.0
    sched.on_validation(0.5)
    sched.on_validation(0.4)
    assert sched.apply(opt, 4) == pytest.approx(0.1)
    assert all(math.isclose(g["lr"], g["base_lr"] * 0.1) for g in opt.param_groups)
