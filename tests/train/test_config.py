"""TrainConfig: YAML round trip, unknown keys, validation."""

from __future__ import annotations

import pytest

from sam_pets.train.config import TrainConfig, dump_config, load_config, read_config_file


def _cfg(**kw):
    return TrainConfig(**{"dataset": "d", "out": "o", "model_config": "test", "steps": 1, **kw})


def test_yaml_round_trip(tmp_path):
    cfg = _cfg(freeze=("image_encoder",), betas=(0.8, 0.99), lora_rank=4)
    p = tmp_path / "c.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg
    assert load_config(p, steps=7).steps == 7


def test_unknown_key_is_an_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("dataset: d\nout: o\nmodel_config: test\nsteps: 1\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="unknown train config keys: \\[.learning_rate.\\]"):
        load_config(p)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(checkpoint="x.pt"), "exactly one of checkpoint and model_config"),
        (dict(steps=None), "steps or epochs"),
        (dict(freeze=("trunk",)), "freeze/lora_parts"),
        (dict(cached_embeddings=True), "frozen image encoder"),
        (dict(schedule="linear"), "schedule"),
        (dict(batch_size=0), "batch_size"),
        (dict(prompt_mode="points"), "prompt_mode"),
        (dict(grid_points_per_side=0), "grid_points_per_side"),
    ],
)
def test_invalid_configs(bad, match):
    with pytest.raises(ValueError, match=match):
        _cfg(**bad)


def test_encoder_frozen_rules():
    assert _cfg(freeze=("image_encoder",)).encoder_frozen
    assert not _cfg(lora_rank=2).encoder_frozen
    assert _cfg(lora_rank=2, lora_parts=("mask_decoder",)).encoder_frozen
    assert _cfg(freeze=("image_encoder",), cached_embeddings=True).cached_embeddings


@pytest.mark.parametrize(
    "text, match",
    [
        (b"steps: [1\n", r"c\.yaml: not valid YAML \(line 2\)"),
        (b'steps: "abc"\n', r"c\.yaml: steps must be an integer or null, got 'abc'"),
        (b"lr: fast\n", r"c\.yaml: lr must be a number, got 'fast'"),
        (b"freeze: image_encoder\n", r"c\.yaml: freeze must be a list of names"),
        (b"augment: 1\n", r"c\.yaml: augment must be true or false"),
        (b"PK\x03\x04\x00\xff\xfe binary", r"c\.yaml: not a text \(UTF-8\) YAML file"),
    ],
)
def test_bad_config_files_name_the_file_and_key(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_bytes(text)
    with pytest.raises(ValueError, match=match):
        read_config_file(p)


def test_config_file_reads_exponent_numbers(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 1e-5\nweight_decay: 5E-2\nsteps: 10\n")
    assert read_config_file(p) == {"lr": 1e-5, "weight_decay": 0.05, "steps": 10}


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(steps=-3), "steps must be >= 1, got -3"),
        (dict(steps=0), "steps must be >= 1"),
        (dict(steps=None, epochs=0), "epochs must be >= 1"),
        (dict(lr=0.0), "lr must be > 0"),
        (dict(val_every=-1), "val_every must be >= 0"),
        (dict(correction_rounds=-2), "correction_rounds must be >= 0"),
        (dict(prob_box=1.5), "prob_box must be in \\[0, 1\\]"),
        (dict(prob_click_from_gt=-0.1), "prob_click_from_gt must be in"),
        (dict(paste_objects_prob=1.2), "paste_objects_prob must be in"),
        (dict(iou_rank_weight=-1.0), "iou_rank_weight must be >= 0"),
        (dict(iou_rank_temperature=0.0), "iou_rank_temperature must be > 0"),
    ],
)
def test_out_of_range_values(bad, match):
    with pytest.raises(ValueError, match=match):
        _cfg(**bad)


@pytest.mark.parametrize(
    "bad",
    [
        dict(lr=float("inf")),  # once trained a NaN model and reported "done"
        dict(weight_decay=float("nan")),
        dict(grad_clip=float("inf")),
        dict(betas=(0.9, float("nan"))),
        dict(lora_rank=2, lora_alpha=float("-inf")),
    ],
)
def test_non_finite_numbers_are_refused(bad):
    (name,) = (k for k in bad if k != "lora_rank")
    with pytest.raises(ValueError, match=f"{name} must be a finite number"):
        _cfg(**bad)
