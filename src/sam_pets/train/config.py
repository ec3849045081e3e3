"""Training configuration: one frozen dataclass, loaded from flags or a YAML file.

Unknown keys are an error (a typo must not silently fall back to a default). The saved
``config.yaml`` of a run loads back into an equal :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

PARTS = ("image_encoder", "prompt_encoder", "mask_decoder")
SCHEDULES = ("cosine", "plateau", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; the dataclass is the only contract.

    Attributes:
        dataset: Canonical dataset folder (``sam-pets convert ...`` output).
        out: Run directory (config, metrics.jsonl, curves, checkpoints).
        checkpoint: Start from these weights (Meta, HF or sam-pets file) ...
        model_config: ... or from a random init of this config name ("test", "tiny"...).
        steps: Optimiser steps (wins over ``epochs`` when both are given).
        epochs: Passes over the training split (used when ``steps`` is None).
        batch_size: Images per step and process (before gradient accumulation).
        grad_accum: Micro-batches accumulated per optimiser step.
        resolution: Square model input side in pixels (None: the model's own).
        train_split: Split name of the training items.
        val_split: Split name of the validation items ("" disables validation).
        val_every: Validate every N steps (0: only at the end).
        val_items: Validate on at most this many items (0: all).
        early_stop_patience: Stop after N validations without improvement (0: never).
        lr: Base learning rate (prompt encoder and mask decoder).
        encoder_lr_scale: Image-encoder lr as a fraction of ``lr`` (Meta: 3e-6 / 5e-6).
        layer_decay: Layer-wise lr decay for the trunk blocks (1: none).
        weight_decay: AdamW weight decay (never on biases and norm parameters).
        betas: AdamW betas.
        schedule: "cosine" (warmup + cosine), "plateau" (ReduceLROnPlateau on val mIoU) or
            "constant" (warmup, then constant).
        warmup_steps: Linear warmup steps.
        min_lr_ratio: Final lr of the cosine as a fraction of the peak.
        plateau_factor: lr multiplier when the val mIoU stalls ("plateau").
        plateau_patience: Validations without improvement before the lr is cut.
        grad_clip: Max global grad norm (0: no clipping).
        ema_decay: Keep an exponential moving average of the trained weights with this
            decay per step (0: off; e.g. 0.999). The run then also writes ``ema.pt`` and
            validates the averaged weights (``val_ema_*``); early steps average with a
            smaller decay, ``min(ema_decay, (1 + step) / (10 + step))``.
        freeze: Parts kept fixed, any of ``PARTS``.
        lora_rank: LoRA rank (0: off). With LoRA only the adapters train.
        lora_alpha: LoRA scale numerator (None: equal to the rank, scale 1).
        lora_parts: Parts that get adapters on attention and MLP projections.
        cached_embeddings: Train on image features computed once (needs a frozen image
            encoder; disables augmentation).
        cache_dir: Keep the cached features on disk here (None: in memory).
        cached_crop_views: With ``cached_embeddings`` and ``object_crop_prob`` > 0, the
            object crops embedded per item (each around a random object, random margin).
        augment: Flip/scale/colour augmentation of the training images.
        object_crop_prob: Probability that a training image is first cropped around one of
            its objects, with a random margin per side (the views a zoom-in predictor sees);
            the rest are whole images. Needs ``augment``; with ``cached_embeddings``, the share
            of samples drawn from ``cached_crop_views`` fixed crops per item instead.
        object_crop_margin: Range of that margin, as a fraction of the object's box side.
        copy_paste_prob: Probability that a training image's objects are pasted onto another
            background first (a strip of another item beside its objects, or an image from
            ``copy_paste_backgrounds``). Needs ``augment``.
        copy_paste_backgrounds: Folders of images without the objects of interest, used
            as copy-paste backgrounds half of the time.
        paste_objects_prob: Probability that 1-2 objects cut from other training items are
            pasted onto a training image as new objects (each prompted and supervised), so
            that the model learns to answer the object under the click, not the most
            salient one. Needs ``augment``.
        preload_mb: Keep up to this many MB of decoded training images in memory (shrunk
            to twice the model input side), so that steps neither read nor decode files
            (0: read every sample from disk).
        balanced: Class-balanced sampling (inverse breed/species frequency).
        max_objects: Objects per image per step (a random subset when there are more).
        prob_box: Probability that an image's objects get a (jittered) box prompt, else
            ``num_pos_clicks`` positive clicks.
        num_pos_clicks: Positive clicks when no box is used.
        prompt_mode: ``"mixed"`` (first prompt a box with ``prob_box``, else clicks) or
            ``"grid"`` (one click per object on the grid of the automatic mask generator,
            at the grid point nearest the object's most interior pixel: trains for
            segment everything).
        grid_points_per_side: The grid of ``"grid"`` mode (the generator's points per side).
        prob_mask_prompt: Probability of adding the (low-res) GT mask as the first mask prompt.
        correction_rounds: Iterative correction clicks after the first prompt (Meta: 7).
        prob_click_from_gt: Probability that a correction click is drawn from the GT mask
            instead of the error region (Meta: 0.1).
        loss_resolution: "input" (logits upsampled to the model input, as Meta) or "low"
            (GT downsampled to the S/4 logits; cheaper).
        focal_weight: Weight of the sigmoid focal loss.
        dice_weight: Weight of the dice loss.
        iou_weight: Weight of the IoU-prediction loss.
        class_weight: Weight of the object-score BCE.
        iou_loss: "l1" or "mse".
        iou_rank_weight: Weight of a term that teaches the IoU head to rank the three
            candidates of one click (0: off, Meta's recipe; see ``losses.rank_loss``).
        iou_rank_temperature: Softmax temperature of that term.
        device: "auto", "cpu", "cuda", "cuda:1"...
        precision: "auto" (bf16 autocast on CUDA, fp32 elsewhere), "fp32", "bf16" or "fp16".
        seed: Seed of the initialisation, data order, augmentation and prompts.
        num_workers: DataLoader worker processes (0 in cached mode).
        save_every: Also write ``last.pt`` every N steps (0: at validations and the end).
        log_every: Append a metrics.jsonl line every N steps.
    """

    dataset: str
    out: str
    checkpoint: str | None = None
    model_config: str | None = None
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 2
    grad_accum: int = 1
    resolution: int | None = None
    train_split: str = "train"
    val_split: str = "val"
    val_every: int = 100
    val_items: int = 32
    early_stop_patience: int = 0
    lr: float = 1e-5
    encoder_lr_scale: float = 0.6
    layer_decay: float = 0.9
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    grad_clip: float = 0.1
    ema_decay: float = 0.0
    freeze: tuple[str, ...] = ()
    lora_rank: int = 0
    lora_alpha: float | None = None
    lora_parts: tuple[str, ...] = ("image_encoder", "mask_decoder")
    cached_embeddings: bool = False
    cached_crop_views: int = 4
    cache_dir: str | None = None
    augment: bool = True
    object_crop_prob: float = 0.0
    object_crop_margin: tuple[float, float] = (0.0, 0.5)
    copy_paste_prob: float = 0.0
    paste_objects_prob: float = 0.0
    copy_paste_backgrounds: tuple[str, ...] = ()
    preload_mb: int = 2048
    balanced: bool = True
    max_objects: int = 8
    prob_box: float = 0.5
    num_pos_clicks: int = 1
    prompt_mode: str = "mixed"
    grid_points_per_side: int = 32
    prob_mask_prompt: float = 0.0
    correction_rounds: int = 7
    prob_click_from_gt: float = 0.1
    loss_resolution: str = "input"
    focal_weight: float = 20.0
    dice_weight: float = 1.0
    iou_weight: float = 1.0
    class_weight: float = 1.0
    iou_loss: str = "l1"
    iou_rank_weight: float = 0.0
    iou_rank_temperature: float = 0.1
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    num_workers: int = 0
    save_every: int = 0
    log_every: int = 1

    def __post_init__(self) -> None:
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("loss_resolution", self.loss_resolution, ("input", "low"))
        _check_choice("iou_loss", self.iou_loss, ("l1", "mse"))
        _check_choice("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        for part in (*self.freeze, *self.lora_parts):
            _check_choice("freeze/lora_parts entry", part, PARTS)
        if (self.checkpoint is None) == (self.model_config is None):
            raise ValueError("give exactly one of checkpoint and model_config")
        if self.steps is None and self.epochs is None:
            raise ValueError("give steps or epochs")
        for name in ("steps", "epochs", "resolution"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("batch_size", "grad_accum", "max_objects", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        _check_finite(self)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not self.iou_rank_temperature > 0:
            raise ValueError(f"iou_rank_temperature must be > 0, got {self.iou_rank_temperature}")
        lo, hi = self.object_crop_margin
        if not 0 <= lo <= hi:
            raise ValueError(f"object_crop_margin must be 0 <= low <= high, got {(lo, hi)}")
        for name in (
            "prob_box",
            "prob_mask_prompt",
            "prob_click_from_gt",
            "object_crop_prob",
            "copy_paste_prob",
            "paste_objects_prob",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.prompt_mode not in ("mixed", "grid"):
            raise ValueError(f"prompt_mode must be 'mixed' or 'grid', got {self.prompt_mode!r}")
        if self.grid_points_per_side < 1:
            raise ValueError(f"grid_points_per_side must be >= 1, got {self.grid_points_per_side}")
        if self.cached_embeddings and not self.encoder_frozen:
            raise ValueError(
                "cached_embeddings needs a frozen image encoder "
                "(freeze image_encoder, no LoRA on it)"
            )

    @property
    def encoder_frozen(self) -> bool:
        """True when no image-encoder parameter (or adapter) trains."""
        if self.lora_rank > 0:
            return "image_encoder" not in self.lora_parts or "image_encoder" in self.freeze
        return "image_encoder" in self.freeze

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain-python dict (tuples become lists), for YAML/JSON and checkpoint metadata."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build from a dict; unknown keys and values of the wrong type are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown train config keys: {unknown}; known: {sorted(known)}")
        missing = [
            f.name for f in fields(cls) if f.default is dataclasses.MISSING and f.name not in d
        ]
        if missing:
            raise ValueError(f"missing train config keys: {missing}")
        check_types(d)
        tuples = {f.name for f in fields(cls) if str(f.type).startswith("tuple")}
        return cls(**{k: tuple(v) if k in tuples and v is not None else v for k, v in d.items()})


_NON_NEGATIVE = (
    "val_every",
    "val_items",
    "early_stop_patience",
    "warmup_steps",
    "lora_rank",
    "correction_rounds",
    "num_workers",
    "save_every",
    "num_pos_clicks",
    "preload_mb",
    "iou_rank_weight",
    "cached_crop_views",
)

# Field type (as written in the annotations) -> (accepted Python types, name in messages).
_TYPES = {
    "str": ((str,), "a string"),
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "true or false"),
    "tuple[float, float]": ((list, tuple), "a list of 2 numbers"),
    "tuple[str, ...]": ((list, tuple), "a list of names"),
}


def check_types(d: dict) -> None:
    """Check that every value of a (partial) config mapping has its field's type.

    Raises:
        ValueError: naming the first key whose value has the wrong type.
    """
    types = {f.name: str(f.type) for f in fields(TrainConfig)}
    for key, value in d.items():
        spec = types.get(key)
        if spec is None:
            continue
        optional = spec.endswith(" | None")
        accepted, what = _TYPES[spec.removesuffix(" | None")]
        if value is None and optional:
            continue
        ok = isinstance(value, accepted) and not (isinstance(value, bool) and bool not in accepted)
        if ok and spec.startswith("tuple[float"):
            ok = len(value) == 2 and all(_is_number(v) for v in value)
        elif ok and spec.startswith("tuple[str"):
            ok = all(isinstance(v, str) for v in value)
        if not ok:
            what += " or null" if optional else ""
            raise ValueError(f"{key} must be {what}, got {value!r}")


def _check_finite(cfg: TrainConfig) -> None:
    """Refuse NaN and infinity in every number field (``--lr inf`` trains a NaN model)."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        values = value if isinstance(value, tuple) else (value,)
        if any(_is_number(v) and not math.isfinite(v) for v in values):
            raise ValueError(f"{f.name} must be a finite number, got {value!r}")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


class _YamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-5`` as a number (YAML 1.1 wants ``1.0e-5``)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_config_file(path: str | Path) -> dict:
    """The mapping of a YAML (or JSON) config file, possibly partial; unknown keys are an error.

    Raises:
        ValueError: the file is not UTF-8 YAML, not a mapping, holds unknown keys or a value
            of the wrong type; the message names the file.
        OSError: the file cannot be read.
    """
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_YamlLoader) or {}
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text (UTF-8) YAML file") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"{path}: not valid YAML{line}: {problem}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"{path}: unknown train config keys: {unknown}")
    try:
        check_types(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return data


def load_config(path: str | Path, **overrides) -> TrainConfig:
    """Read a complete config file; ``overrides`` (not None) replace or add keys."""
    data = read_config_file(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(data)


def dump_config(cfg: TrainConfig) -> str:
    """YAML text of a config (keys in field order)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
