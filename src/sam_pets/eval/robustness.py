"""Robustness: mean Dice of one model under each perturbation and level, without retraining.

For every image, every perturbation of :mod:`sam_pets.eval.perturb` and every chosen level,
the perturbed image is embedded and each object is prompted from its (unperturbed) ground
truth: its tight box (``box``) or its most interior pixel (``center``). Dice (and IoU) leave
the ignore region out and are averaged over all objects of the dataset. Level 0 is the clean
image for every perturbation and is computed once per image. An item that cannot be read is
skipped with a progress notice and listed in :attr:`RobustnessResult.skipped`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sam_pets.data.errors import BadItemError, no_readable_items, skip_item
from sam_pets.data.types import FileIssue
from sam_pets.eval.items import (
    EvalItem,
    item_names,
    iter_items,
    skipped_json,
)
from sam_pets.eval.metrics import dice, iou
from sam_pets.eval.perturb import LEVELS, PERTURBATIONS, level_indices, perturb
from sam_pets.eval.protocols import predict_object
from sam_pets.progress import Progress

ROBUSTNESS_PROMPTS = ("box", "center")


@dataclass(frozen=True)
class RobustnessConfig:
    """What to measure.

    Attributes:
        prompt: "box" or "center".
        levels: How many of the ten levels to run (2..10; first and last always included).
        perturbations: Which perturbations (default all eight).
        split: Dataset split.
        limit: Only the first N items.
        seed: Seed of the random perturbations (per item, perturbation and level).
    """

    prompt: str = "box"
    levels: int = 10
    perturbations: tuple[str, ...] = PERTURBATIONS
    split: str = "all"
    limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.prompt not in ROBUSTNESS_PROMPTS:
            raise ValueError(f"prompt must be one of {ROBUSTNESS_PROMPTS}, got {self.prompt!r}")
        level_indices(self.levels)
        bad = [p for p in self.perturbations if p not in PERTURBATIONS]
        if bad or not self.perturbations:
            raise ValueError(f"unknown perturbations {bad}; choose from {PERTURBATIONS}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")


@dataclass
class RobustnessResult:
    """Scores per perturbation and level.

    Attributes:
        dataset: Dataset folder.
        config: The configuration.
        model: Description of the model.
        dice: perturbation -> (L,) lists of per-object Dice lists.
        iou: perturbation -> (L,) lists of per-object IoU lists.
        examples: perturbation -> list of (perturbed image, predicted mask of object 0) for
            the first item, one per level.
        example_item: Name of that item.
        n_images: Images evaluated.
        timing: Seconds.
        skipped: Items left out because they cannot be read (``source`` is the item name).
    """

    dataset: str
    config: RobustnessConfig
    model: dict
    dice: dict = field(default_factory=dict)
    iou: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)
    example_item: str | None = None
    n_images: int = 0
    timing: dict = field(default_factory=dict)
    skipped: list[FileIssue] = field(default_factory=list)

    def levels(self, name: str) -> list[float]:
        """The level values run for perturbation ``name``."""
        return [LEVELS[name][i] for i in level_indices(self.config.levels)]

    def summary(self) -> dict:
        """JSON-ready: mean Dice and IoU per perturbation and level."""

        def means(per_level):
            return [float(np.mean(v)) if v else None for v in per_level]

        per = {
            name: {
                "levels": self.levels(name),
                "mean_dice": means(self.dice[name]),
                "mean_iou": means(self.iou[name]),
            }
            for name in self.config.perturbations
        }
        return {
            "dataset": self.dataset,
            "config": asdict(self.config),
            "model": self.model,
            "n_images": self.n_images,
            "n_objects": len(self.dice[self.config.perturbations[0]][0]),
            "skipped": skipped_json(self.skipped),
            "timing_s": self.timing,
            "perturbations": per,
        }


def iter_robustness(
    predictor,
    dataset: str | os.PathLike,
    cfg: RobustnessConfig = RobustnessConfig(),
    model_info: dict | None = None,
) -> Generator[Progress, None, RobustnessResult]:
    """Measure ``predictor`` on perturbed images; yields progress, returns the result.

    An item that cannot be read is skipped (a progress notice names it and the reason) and
    listed in ``RobustnessResult.skipped``.

    Raises:
        BadInputError: Missing dataset or split, or not one item could be read.
    """
    names = item_names(dataset, cfg.split, cfg.limit)
    idx = level_indices(cfg.levels)
    res = RobustnessResult(str(Path(dataset)), cfg, dict(model_info or {}))
    for name in cfg.perturbations:
        res.dice[name] = [[] for _ in idx]
        res.iou[name] = [[] for _ in idx]
    total = len(names) * len(cfg.perturbations)
    t0 = time.perf_counter()
    yield Progress(0, total, "robustness")
    for i, item in enumerate(iter_items(dataset, names, yield_errors=True)):
        if isinstance(item, BadItemError):
            notice = skip_item(item, res.skipped)
            step = (i + 1) * len(cfg.perturbations)
            yield Progress(step, total, item.item, notice=notice)
            continue
        keep_examples = res.example_item is None
        if keep_examples:
            res.example_item = item.name
        clean = _score(predictor, item.image, item, cfg.prompt)
        for j, name in enumerate(cfg.perturbations):
            for li, level_i in enumerate(idx):
                level = LEVELS[name][level_i]
                if level_i == 0:
                    image, (d, u, mask) = item.image, clean
                else:
                    rng = np.random.default_rng([cfg.seed, item.seed_key, j, level_i])
                    image = perturb(item.image, name, level, rng)
                    d, u, mask = _score(predictor, image, item, cfg.prompt)
                res.dice[name][li] += d
                res.iou[name][li] += u
                if keep_examples:
                    res.examples.setdefault(name, []).append((image, mask))
            step = i * len(cfg.perturbations) + j + 1
            yield Progress(step, total, f"{item.name} {name}")
        res.n_images += 1
    if not res.n_images:
        raise no_readable_items(dataset, res.skipped)
    res.timing = {"total": time.perf_counter() - t0}
    return res


def _score(predictor, image: np.ndarray, item: EvalItem, prompt: str):
    """Per-object Dice and IoU lists, and the first object's mask, on ``image``."""
    predictor.set_image(image)
    ignore = item.ignore if item.ignore.any() else None
    d, u, first = [], [], None
    for gt in item.masks:
        if not gt.any():
            continue
        pred = predict_object(predictor, prompt, gt, ignore)
        d.append(float(dice(pred, gt, ignore)))
        u.append(float(iou(pred, gt, ignore)))
        first = pred if first is None else first
    return d, u, first
