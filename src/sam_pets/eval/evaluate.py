"""Evaluate one or more models on a canonical dataset under several prompt protocols.

:func:`iter_evaluate` is a job generator: it yields :class:`~sam_pets.progress.Progress`
records and returns an :class:`EvalResult`. Each image is embedded once per model and that
embedding serves every protocol (and every object of the image). An item that cannot be read
is skipped with a progress notice and listed in :attr:`EvalResult.skipped`; the rest is
evaluated.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sam_pets.data.errors import BadItemError, no_readable_items, skip_item
from sam_pets.data.types import FileIssue
from sam_pets.eval.everything import EverythingScores
from sam_pets.eval.interactive import clicks_to_iou, simulate_clicks
from sam_pets.eval.items import (
    EvalItem,
    item_names,
    iter_items,
    skipped_json,
)
from sam_pets.eval.metrics import confusion_counts
from sam_pets.eval.protocols import (
    DEFAULT_PROTOCOLS,
    PROTOCOLS,
    SINGLE_SHOT,
    object_rng,
    predict_object,
)
from sam_pets.eval.summary import add_to_confusion, summarize_clicks, summarize_protocol
from sam_pets.progress import Progress


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate.

    Attributes:
        protocols: Prompt protocols (see :mod:`sam_pets.eval.protocols`), in report order.
        max_clicks: Clicks k of the interactive protocol (mIoU@1..k; NoC capped at 20).
        split: Dataset split ("all", "train", "val", "train_tiny", "val_tiny").
        limit: Evaluate only the first N items (sorted by name) if given.
        seed: Seed of the random protocols (per item and object, order-independent).
        everything: Parameters of the ``everything`` protocol's generator (names of
            :class:`~sam_pets.predict.everything.EverythingParams`; Meta's defaults when
            empty).
    """

    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    max_clicks: int = 20
    split: str = "all"
    limit: int | None = None
    seed: int = 0
    everything: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad or not self.protocols:
            raise ValueError(f"unknown protocols {bad}; choose from {', '.join(PROTOCOLS)}")
        if self.max_clicks < 1:
            raise ValueError(f"max_clicks must be >= 1, got {self.max_clicks}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        self.everything_params()  # refuse bad generator parameters before any work

    def everything_params(self):
        """The :class:`~sam_pets.predict.everything.EverythingParams` of ``everything``."""
        from sam_pets.predict.everything import EverythingParams

        return EverythingParams.from_dict(dict(self.everything))

    @property
    def grid_protocol(self) -> str | None:
        """The protocol whose masks go into the picture grids (first single-shot one)."""
        return next((p for p in self.protocols if p in SINGLE_SHOT), None)


@dataclass(frozen=True)
class NamedModel:
    """A predictor and the label it has in reports ("before", "after", a file name...)."""

    label: str
    predictor: object
    info: dict = field(default_factory=dict)


@dataclass
class EvalResult:
    """Everything an evaluation produced.

    Attributes:
        dataset: Dataset folder.
        config: The :class:`EvalConfig`.
        models: Model label -> description (config, checkpoint...).
        rows: One dict per (model, protocol, item, object): ``model``, ``protocol``, ``item``,
            ``object_id``, ``species``, ``breed``, ``category``, ``iou``, ``dice``,
            ``accuracy`` (clicks: IoU after the last click, ``ious``, ``noc85``, ``noc90``).
        confusions: (model, protocol) -> (3, 3) background/cat/dog pixel confusion.
        masks: (model, item, object index) -> packed bits of the grid protocol's mask.
        timing: Seconds: ``embed`` per model, ``total``.
        n_images: Images evaluated.
        skipped: Items left out because they cannot be read (``source`` is the item name).
        everything: Model label -> :class:`EverythingScores` of the ``everything`` protocol.
    """

    dataset: str
    config: EvalConfig
    models: dict[str, dict]
    rows: list[dict] = field(default_factory=list)
    confusions: dict = field(default_factory=dict)
    masks: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    n_images: int = 0
    skipped: list[FileIssue] = field(default_factory=list)
    everything: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-ready metrics per model and protocol (see :mod:`sam_pets.eval.summary`)."""
        by = defaultdict(list)
        for r in self.rows:
            by[r["model"], r["protocol"]].append(r)
        results: dict[str, dict] = {}
        for label in self.models:
            results[label] = {}
            for p in self.config.protocols:
                rows = by[label, p]
                if p == "clicks":
                    results[label][p] = summarize_clicks(rows, self.config.max_clicks)
                elif p == "everything":
                    scores = self.everything.get(label) or EverythingScores()
                    results[label][p] = {**summarize_protocol(rows, None), **scores.summary()}
                else:
                    results[label][p] = summarize_protocol(rows, self.confusions.get((label, p)))
        return {
            "dataset": self.dataset,
            "config": asdict(self.config),
            "n_images": self.n_images,
            "n_objects": len({(r["item"], r["object_id"]) for r in self.rows}),
            "skipped": skipped_json(self.skipped),
            "models": self.models,
            "timing_s": self.timing,
            "results": results,
        }

    def mask(self, label: str, item: str, k: int, hw: tuple[int, int]) -> np.ndarray | None:
        """The stored grid-protocol mask (H, W) bool, or None."""
        bits = self.masks.get((label, item, k))
        if bits is None:
            return None
        return np.unpackbits(bits, count=hw[0] * hw[1]).reshape(hw).astype(bool)


def iter_evaluate(
    models: Sequence[NamedModel], dataset: str | os.PathLike, cfg: EvalConfig = EvalConfig()
) -> Generator[Progress, None, EvalResult]:
    """Evaluate ``models`` on ``dataset``; yields progress, returns an :class:`EvalResult`.

    An item that cannot be read (missing or corrupt file, image/mask size mismatch) is
    skipped: one progress record carries a notice naming it and the reason, and it is listed
    in ``EvalResult.skipped``.

    Raises:
        BadInputError: Missing dataset or split, or not one item could be read.
    """
    if not models:
        raise ValueError("no model to evaluate")
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise ValueError(f"model labels must be distinct, got {labels}")
    names = item_names(dataset, cfg.split, cfg.limit)
    res = EvalResult(str(Path(dataset)), cfg, {m.label: dict(m.info) for m in models})
    embed = dict.fromkeys(labels, 0.0)
    t0 = time.perf_counter()
    yield Progress(0, len(names), "evaluating")
    for i, item in enumerate(iter_items(dataset, names, yield_errors=True)):
        if isinstance(item, BadItemError):
            notice = skip_item(item, res.skipped)
            yield Progress(i + 1, len(names), item.item, _running(res, labels[0], cfg), notice)
            continue
        for m in models:
            t = time.perf_counter()
            m.predictor.set_image(item.image)
            embed[m.label] += time.perf_counter() - t
            _evaluate_item(m.label, m.predictor, item, cfg, res)
        res.n_images += 1
        yield Progress(i + 1, len(names), item.name, _running(res, labels[0], cfg))
    if not res.n_images:
        raise no_readable_items(dataset, res.skipped)
    res.timing = {"embed": embed, "total": time.perf_counter() - t0}
    return res


def _running(res: EvalResult, label: str, cfg: EvalConfig) -> dict:
    """Running mIoU of the first model under its first protocol (for the progress bar)."""
    p = cfg.protocols[0]
    v = [r["iou"] for r in res.rows if r["model"] == label and r["protocol"] == p]
    return {f"mIoU_{p}": float(np.mean(v))} if v else {}


def _evaluate_item(label: str, predictor, item: EvalItem, cfg: EvalConfig, res) -> None:
    """Score every protocol on every object of one item (image already set)."""
    meta = {"model": label, "item": item.name, "species": item.species, "breed": item.breed}
    ignore = item.ignore if item.ignore.any() else None
    for p in cfg.protocols:
        if p == "everything":
            _evaluate_everything(label, predictor, item, cfg, res, meta, ignore)
            continue
        union = np.zeros(item.image.shape[:2], bool)
        for k, gt in enumerate(item.masks):
            if not gt.any():
                continue
            row = {
                **meta,
                "protocol": p,
                "object_id": item.object_ids[k],
                "category": item.categories[k],
            }
            if p == "clicks":
                ious = simulate_clicks(predictor, gt, ignore, cfg.max_clicks)
                row.update(
                    iou=ious[-1],
                    dice=None,
                    accuracy=None,
                    ious=ious,
                    noc85=clicks_to_iou(ious, 0.85),
                    noc90=clicks_to_iou(ious, 0.90),
                )
                res.rows.append(row)
                continue
            rng = object_rng(cfg.seed, item.seed_key, k, p)
            pred = predict_object(predictor, p, gt, ignore, rng)
            c = confusion_counts(pred, gt, ignore)
            row.update(_scores(c))
            res.rows.append(row)
            union |= pred
            if p == cfg.grid_protocol:
                res.masks[label, item.name, k] = np.packbits(pred)
        if p != "clicks" and len(item.masks):
            gt_union = item.masks.any(0)
            conf = res.confusions.setdefault((label, p), np.zeros((3, 3)))
            add_to_confusion(conf, item.species, *confusion_counts(union, gt_union, ignore))


def _evaluate_everything(label, predictor, item: EvalItem, cfg: EvalConfig, res, meta, ignore):
    """Propose masks for the whole image; one row per object with its best IoU."""
    from sam_pets.predict.everything import segment_everything

    proposals = segment_everything(predictor, item.image, cfg.everything_params())
    predictor.set_image(item.image)  # crops may have replaced it (the cache has it)
    scores = res.everything.setdefault(label, EverythingScores())
    best = scores.add(proposals, np.asarray(item.masks, dtype=bool), ignore, item.image.shape[:2])
    for k, gt in enumerate(item.masks):
        if gt.any():
            res.rows.append(
                {
                    **meta,
                    "protocol": "everything",
                    "object_id": item.object_ids[k],
                    "category": item.categories[k],
                    "iou": float(best[k]),
                    "dice": 2 * best[k] / (1 + best[k]),
                    "accuracy": None,
                }
            )


def _scores(c) -> dict:
    """IoU, Dice and pixel accuracy from confusion counts (1 when nothing is counted)."""
    tp, fp, fn, tn = (float(v) for v in c)

    def ratio(a, b):
        return a / b if b > 0 else 1.0

    return {
        "iou": ratio(tp, tp + fp + fn),
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": ratio(tp + tn, tp + tn + fp + fn),
    }
