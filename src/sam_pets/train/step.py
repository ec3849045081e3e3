"""One training step's loss: encode once, then 1 + R interactive decoder rounds per image.

Round 0 uses the first prompt (box or click[s], optionally the GT mask); each later round
adds one correction click sampled from the current error region and feeds the previous
round's low-res logits (of the selected mask, detached) back as the mask prompt. Every
round is supervised (SAM2_IMAGE_SPEC.md §8). Losses are computed at the model-input
resolution S (logits upsampled bilinearly, as Meta) or, with ``loss_resolution="low"``, at
S/4 against the area-downsampled GT.

With ``backward=True`` each round is back-propagated as soon as its loss is known, into
detached copies of the image features, and the encoder gets one backward at the end: the
decoder activations of earlier rounds are freed early; the gradients are the same sums.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sam_pets.model import ImageFeatures, Sam2Image
from sam_pets.train.config import TrainConfig
from sam_pets.train.losses import LossWeights, sam_loss
from sam_pets.train.prompting import correction_clicks, first_prompts

TERMS = ("focal", "dice", "iou", "cls", "rank")


@dataclass
class Batch:
    """Images (or their cached features) and targets at the model input size S.

    Attributes:
        masks: B tensors (K_i, S, S) bool, one per image (K_i may be 0).
        ignore: (B, S, S) bool pixels left out of losses and metrics.
        seeds: B ints seeding each image's prompts.
        images: (B, 3, S, S) float in [0, 1], or None when ``features`` is given.
        features: Cached :class:`ImageFeatures` with batch B, or None.
    """

    masks: list[torch.Tensor]
    ignore: torch.Tensor
    seeds: list[int]
    images: torch.Tensor | None = None
    features: ImageFeatures | None = None

    @property
    def num_objects(self) -> int:
        """Objects in the batch."""
        return sum(int(m.shape[0]) for m in self.masks)


@dataclass
class BatchLoss:
    """Loss of a batch, normalised by its number of objects (0 objects: all zeros).

    Attributes:
        loss: Weighted total (float).
        terms: Unweighted focal/dice/iou/cls (floats).
        num_objects: Objects supervised.
    """

    loss: float
    terms: dict[str, float]
    num_objects: int


def loss_weights(cfg: TrainConfig) -> LossWeights:
    """The :class:`LossWeights` of a config."""
    return LossWeights(
        cfg.focal_weight,
        cfg.dice_weight,
        cfg.iou_weight,
        cfg.class_weight,
        cfg.iou_loss,
        cfg.iou_rank_weight,
        cfg.iou_rank_temperature,
    )


def encode(model: Sam2Image, images: torch.Tensor, trainable: bool) -> ImageFeatures:
    """Image features of (B, 3, S, S) images in [0, 1] (detached when not ``trainable``).

    Under autocast the pass runs in grad mode even when nothing trains: the encoder's
    no-grad inference path updates tensors in place and is not autocast-safe; with frozen
    weights grad mode builds no graph, and the outputs are detached anyway.
    """
    grad = trainable and torch.is_grad_enabled()
    amp = _autocast_on(images.device.type)
    with torch.set_grad_enabled(grad or amp):
        feats = model.encode_image(model.normalize(images))
    return feats if grad else ImageFeatures(*(t.detach() for t in feats.tensors()))


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


class StepInterrupted(Exception):
    """A stop request arrived inside a step; its partial gradients must be discarded."""


class NonFiniteLoss(ValueError):
    """The loss or the gradient norm of a step is NaN or infinite (the run diverged).

    The step is not taken: the weights and optimiser stay those of the last finished step.
    """


def batch_loss(
    model: Sam2Image,
    batch: Batch,
    cfg: TrainConfig,
    autocast: Callable = contextlib.nullcontext,
    backward: Callable[[torch.Tensor], None] | None = None,
    scale: float = 1.0,
    stop: Callable[[], bool] | None = None,
    decoder_autocast: Callable | None = None,
) -> BatchLoss:
    """Loss of one batch; optionally back-propagate ``scale * loss``.

    Args:
        model: The model, in the train/eval modes set by the caller.
        batch: Images or features plus targets, on the model's device.
        cfg: Prompt and loss settings.
        autocast: Zero-argument context factory for the forward passes.
        backward: Called with each scaled round loss (e.g. ``Runtime.backward``); None for
            evaluation only.
        scale: Extra loss factor for the backward (1 / grad_accum).
        stop: Checked after every round; when it returns True, :class:`StepInterrupted` is
            raised (so that a cancel does not wait for the rest of a long step).
        decoder_autocast: Context factory for the decoder rounds (default ``autocast``);
            a float32 decoder gets the image features cast to float32.
    """
    n_obj = batch.num_objects
    if n_obj == 0:
        return BatchLoss(0.0, dict.fromkeys(TERMS, 0.0), 0)
    enc_grad = (
        backward is not None
        and batch.features is None
        and any(p.requires_grad for p in model.image_encoder.parameters())
    )
    with autocast():
        feats = batch.features or encode(model, batch.images, enc_grad)
    dec_autocast = autocast if decoder_autocast is None else decoder_autocast
    # float32 leaves: the decoder rounds' gradients add up in float32 (and a float32
    # decoder gets float32 inputs) whatever precision the encoder ran in
    leaves = ImageFeatures(*(t.detach().float().requires_grad_(enc_grad) for t in feats.tensors()))
    totals = dict.fromkeys(("total", *TERMS), 0.0)
    norm = scale / n_obj
    for step in _batch_rounds(model, leaves, batch, cfg, dec_autocast):
        if backward is not None:
            backward(step.total * norm)
        for k in totals:
            totals[k] += float(getattr(step, k).detach())
        if stop is not None and stop():
            raise StepInterrupted
    if enc_grad and any(t.grad is not None for t in leaves.tensors()):
        pairs = [
            (f, leaf.grad.to(f.dtype))
            for f, leaf in zip(feats.tensors(), leaves.tensors(), strict=True)
            if leaf.grad is not None
        ]
        torch.autograd.backward([p[0] for p in pairs], [p[1] for p in pairs])
    return BatchLoss(totals["total"] / n_obj, {k: totals[k] / n_obj for k in TERMS}, n_obj)


def _targets(masks: torch.Tensor, ignore: torch.Tensor, cfg: TrainConfig, low: int):
    gt = masks[:, None].float()  # (K, 1, S, S)
    keep = (~ignore).float()[None, None].expand_as(gt)  # (K, 1, S, S)
    if cfg.loss_resolution == "low":
        gt = (F.interpolate(gt, size=(low, low), mode="area") >= 0.5).float()  # (K, 1, s, s)
        keep = (F.interpolate(keep, size=(low, low), mode="area") >= 1.0).float()
    return gt, keep


@dataclass
class _Object:
    """The objects of one image during the rounds of a step (its own prompts and state)."""

    image: int
    rng: np.random.Generator
    gt_np: np.ndarray  # (K, S, S) bool
    ign_np: np.ndarray  # (S, S) bool
    gt: torch.Tensor  # (K, 1, s', s') float targets at the loss resolution
    keep: torch.Tensor  # (K, 1, s', s') float
    points: torch.Tensor  # (K, N, 2) model-input pixels
    labels: torch.Tensor  # (K, N)
    multimask: bool  # first round: one click per object asks for 3 candidates
    mask_in: torch.Tensor | None  # (K, 1, s, s) mask prompt

    @property
    def count(self) -> int:
        return len(self.gt_np)


def _start(model, i: int, masks, ignore, cfg: TrainConfig, rng) -> _Object:
    """First prompts (and optional GT mask prompt) of image ``i``'s objects."""
    s_low = model.cfg.mask_size
    dev = masks.device
    if len(masks) > cfg.max_objects:
        masks = masks[torch.from_numpy(np.sort(rng.choice(len(masks), cfg.max_objects, False)))]
    gt_np, ign_np = masks.cpu().numpy(), ignore.cpu().numpy()
    gt, keep = _targets(masks, ignore, cfg, s_low)
    first = first_prompts(
        gt_np,
        ign_np,
        rng,
        cfg.prob_box,
        cfg.num_pos_clicks,
        cfg.prompt_mode,
        cfg.grid_points_per_side,
    )
    pts, labels = torch.from_numpy(first.points_xy).to(dev), torch.from_numpy(first.labels).to(dev)
    mask_in = None
    if cfg.prob_mask_prompt > 0 and rng.random() < cfg.prob_mask_prompt:
        low = F.interpolate(masks[:, None].float(), size=(s_low, s_low), mode="area")
        mask_in = (low - 0.5) * 20.0  # (K, 1, s, s) logits of the GT mask
    return _Object(i, rng, gt_np, ign_np, gt, keep, pts, labels, first.multimask, mask_in)


def _batch_rounds(model, feats: ImageFeatures, batch: Batch, cfg: TrainConfig, autocast):
    """Yield the :class:`StepLoss` of each round, for the objects of all images at once.

    Each image keeps its own generator (seeded by its sample seed) and draws its prompts in
    the same order as when it is trained alone; per round, the objects of all images whose
    prompts have the same shape and output mode go through the decoder as one batch (with
    their images' features), so a batch of B one-pet images costs 1-2 decoder calls per
    round instead of B.
    """
    s_in = model.cfg.image_size
    objs = [
        _start(model, i, m, batch.ignore[i], cfg, np.random.default_rng(batch.seeds[i]))
        for i, m in enumerate(batch.masks)
        if len(m)
    ]
    w = loss_weights(cfg)
    for r in range(cfg.correction_rounds + 1):
        groups: dict[tuple, list[_Object]] = {}
        for o in objs:
            key = (o.points.shape[1], o.multimask and r == 0, o.mask_in is None)
            groups.setdefault(key, []).append(o)
        for (_, multimask, no_mask), group in groups.items():
            rows = torch.cat([torch.full((o.count,), o.image, dtype=torch.long) for o in group]).to(
                feats.image_embed.device
            )
            g_feats = ImageFeatures(*(t.index_select(0, rows) for t in feats.tensors()))
            mask_in = None if no_mask else torch.cat([o.mask_in for o in group])
            with autocast():
                out = model.decode(
                    g_feats,
                    torch.cat([o.points for o in group]),
                    torch.cat([o.labels for o in group]),
                    mask_in,
                    multimask,
                )
            logits = out.logits.float()  # (K, M, s, s)
            full = F.interpolate(logits, size=(s_in, s_in), mode="bilinear", align_corners=False)
            yield sam_loss(
                full if cfg.loss_resolution == "input" else logits,
                out.iou,
                out.object_score,
                torch.cat([o.gt for o in group]),
                torch.cat([o.keep for o in group]),
                w,
            )
            if r < cfg.correction_rounds:
                _next_clicks(group, logits, full, out.iou, cfg)


def _next_clicks(group: list[_Object], logits, full, iou, cfg: TrainConfig) -> None:
    """Add each object's correction click and feed its selected logits back (in place)."""
    dev = logits.device
    best = iou.argmax(dim=1) if logits.shape[1] > 1 else torch.zeros_like(iou[:, 0])
    rows = torch.arange(len(logits), device=dev)
    pred_all = (full[rows, best.long()] > 0).cpu().numpy()  # (K, S, S)
    chosen = logits[rows, best.long()][:, None].detach()  # (K, 1, s, s)
    at = 0
    for o in group:
        sl = slice(at, at + o.count)
        at += o.count
        cp, cl = correction_clicks(pred_all[sl], o.gt_np, o.ign_np, o.rng, cfg.prob_click_from_gt)
        o.points = torch.cat([o.points, torch.from_numpy(cp).to(dev)], dim=1)  # (K, N + 1, 2)
        o.labels = torch.cat([o.labels, torch.from_numpy(cl).to(dev)], dim=1)  # (K, N + 1)
        o.mask_in = chosen[sl]
