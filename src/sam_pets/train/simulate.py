"""The annotate -> fine-tune -> annotate loop, simulated with the Annotator's own logic.

A simulated person annotates images one by one. Each object (in order) gets a first prompt,
a click at its most interior pixel or its tight box, then correction clicks at the centre of
the largest error, until the mask reaches the target IoU or the click budget is spent; then
the object is committed as its ground truth (the person finishes it by hand). The prompts go
through :class:`~sam_pets.predict.session.PromptSession`, the Annotator's Qt-free prompt
logic (candidate order, the previous mask fed back, zoom windows), so the clicks counted are
the clicks the Annotator would need.

After K images (for each K asked for) the annotations made so far are fine-tuned on with
one of the dock's presets, starting from the model in use as the dock does, and the test
images are scored before and after. What a person feels, the clicks spent on the annotated
images with the model improving along the way, is the effort curve of :class:`LoopResult`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sam_pets.data.prompts import correction_click, interior_point, tight_box
from sam_pets.data.types import masks_to_labels
from sam_pets.eval.items import EvalItem
from sam_pets.eval.metrics import iou
from sam_pets.model import Sam2Image
from sam_pets.predict.session import PromptSession
from sam_pets.progress import Progress

FIRST = ("click", "box")


@dataclass(frozen=True)
class ObjectEffort:
    """What one object cost.

    Attributes:
        clicks: Interactions spent (the box counts as one), at most the budget.
        iou: IoU of the model's last mask (before the person finished it by hand).
        reached: Whether the mask reached the target IoU within the budget.
    """

    clicks: int
    iou: float
    reached: bool


@dataclass(frozen=True)
class SimulatedUser:
    """A person annotating with the Annotator: first prompt, then correction clicks.

    Attributes:
        first: "click" (the most interior pixel) or "box" (the tight box).
        target: IoU at which the person accepts the mask.
        max_clicks: Interactions per object before the person finishes it by hand.
    """

    first: str = "click"
    target: float = 0.85
    max_clicks: int = 20

    def __post_init__(self) -> None:
        if self.first not in FIRST:
            raise ValueError(f"first must be one of {FIRST}, got {self.first!r}")
        if self.max_clicks < 1 or not 0 < self.target <= 1:
            raise ValueError("max_clicks must be >= 1 and target in (0, 1]")

    def annotate_object(
        self, predictor, session: PromptSession, gt: np.ndarray, ignore: np.ndarray | None
    ) -> ObjectEffort:
        """Prompt one object on the predictor's current image until it is good enough."""
        session.clear()
        points: list[np.ndarray] = []
        labels: list[int] = []
        box = tight_box(gt) if self.first == "box" else None
        if box is None:
            points, labels = [interior_point(gt)], [1]
        clicks, score = 1, 0.0
        while True:
            session.set_prompts(np.asarray(points).reshape(-1, 2), labels, box)
            cands = session.predict(predictor)
            mask = cands.mask if cands is not None else np.zeros_like(gt)
            score = float(iou(mask, gt, ignore))
            if score >= self.target or clicks >= self.max_clicks:
                break
            click = correction_click(mask, gt, ignore=ignore, mode="center")
            if click is None:
                break
            points.append(click.point_xy)
            labels.append(click.label)
            clicks += 1
        session.clear()
        return ObjectEffort(clicks, score, score >= self.target)

    def annotate(self, predictor, item: EvalItem) -> list[ObjectEffort]:
        """Annotate every object of ``item`` in order (the image is embedded here)."""
        predictor.set_image(item.image)
        session = PromptSession()
        return [self.annotate_object(predictor, session, gt, item.ignore) for gt in item.masks]


@dataclass(frozen=True)
class FinetuneRound:
    """One fine-tune of the loop.

    Attributes:
        k: Images annotated so far (all of them trained on).
        seconds: Wall-clock time of the fine-tune (snapshot and training).
        steps: Optimiser steps done.
        status: The run's status ("done", "early_stop", "cancelled").
        scores: The test images scored with the fine-tuned model.
    """

    k: int
    seconds: float
    steps: int
    status: str
    scores: object


@dataclass
class LoopResult:
    """What the simulated session produced.

    Attributes:
        preset: The dock's preset used (None: no fine-tuning).
        before: Test scores of the start model (None when not scored).
        rounds: One :class:`FinetuneRound` per K.
        effort: Per annotated image, the :class:`ObjectEffort` of each object, with the
            model of that moment (fine-tuned after each K).
    """

    preset: str | None
    before: object | None
    rounds: list[FinetuneRound] = field(default_factory=list)
    effort: list[list[ObjectEffort]] = field(default_factory=list)

    def cumulative_clicks(self) -> np.ndarray:
        """Total clicks after each annotated image (the effort curve)."""
        return np.cumsum([sum(o.clicks for o in img) for img in self.effort])

    def clicks_per_object(self, start: int = 0, stop: int | None = None) -> float:
        """Mean clicks per object over annotated images ``start:stop``."""
        objs = [o.clicks for img in self.effort[start:stop] for o in img]
        return float(np.mean(objs)) if objs else float("nan")


def annotated_image(item: EvalItem):
    """The :class:`~sam_pets.train.finetune.AnnotatedImage` a person leaves behind for ``item``.

    Every object is committed as its ground truth (ids 1..K in order; where objects overlap,
    the earlier one keeps the pixel, as the Annotator's commits do), ignored pixels stay
    unlabelled and ignored.
    """
    from sam_pets.train.finetune import AnnotatedImage

    labels = masks_to_labels(item.masks, range(1, len(item.masks) + 1), item.image.shape[:2])
    return AnnotatedImage(item.name, item.image, labels, ignore=item.ignore)


def iter_loop(
    model: Sam2Image,
    pool: Sequence[EvalItem],
    test_dataset: str | os.PathLike | None,
    workdir: str | os.PathLike,
    ks: Sequence[int] = (5, 10, 20),
    preset: str | None = "quick",
    overrides: Mapping[str, object] | None = None,
    user: SimulatedUser | None = None,
    zoom: bool | None = None,
    device: str = "cpu",
    max_clicks: int = 20,
    before=None,
    first_click_window: float = 0.0,
    seed: int = 0,
) -> Generator[Progress, None, LoopResult]:
    """Annotate ``pool`` in order, fine-tuning after each K of ``ks``; score ``test_dataset``.

    Args:
        model: The start model.
        pool: Images the person annotates, in order; those after the last K are annotated
            with the last fine-tuned model.
        test_dataset: Canonical dataset folder scored before and after each fine-tune
            (None: not scored).
        workdir: Folder for the fine-tune jobs (one new subfolder per K).
        ks: Numbers of annotated images after which to fine-tune.
        preset: The dock's preset (:data:`~sam_pets.train.finetune.PRESETS`); None: no
            fine-tuning, the start model annotates the whole pool.
        overrides: TrainConfig changes to the preset (as the dock's fields make).
        user: The simulated person (default: click first, 85 % IoU, 20 clicks).
        zoom: Zoom-in prediction on or off (None: the model's default, as the Annotator).
        device: Where prediction and fine-tuning run.
        max_clicks: Click budget of the test scores.
        before: Test scores of ``model`` already measured (skips scoring it again).
        seed: Seed of the fine-tunes.
        first_click_window: Where first clicks look for their object, for the person and
            the test scores (:class:`~sam_pets.predict.ImagePredictor`; 0: the whole image).

    Yields:
        Progress over the annotated images, the fine-tunes and the scoring.

    Returns:
        The :class:`LoopResult`.
    """
    from sam_pets.eval.heldout import iter_compare
    from sam_pets.predict import ImagePredictor
    from sam_pets.predict.zoom import default_for
    from sam_pets.train.finetune import FinetuneJob

    user = user or SimulatedUser()
    ks = sorted({int(k) for k in ks if 0 < k <= len(pool)}) if preset else []
    n_pool = len(pool)
    workdir = Path(workdir)

    def score(m: Sam2Image, what: str):
        if test_dataset is None:
            return None
        gen = iter_compare(
            {"m": m},
            test_dataset,
            "all",
            max_clicks=max_clicks,
            device=device,
            zoom=zoom,
            first_click_window=first_click_window,
        )
        while True:
            try:
                p = next(gen)
            except StopIteration as e:
                return e.value["m"]
            yield Progress(p.step, p.total, what, notice=p.notice)

    result = LoopResult(preset, before)
    if result.before is None:
        result.before = yield from score(model, "scoring the start model")
    predictor = ImagePredictor(
        model,
        device=device,
        precision="fp32",
        cache_size=1,
        zoom=default_for(model) if zoom is None else zoom,
        first_click_window=first_click_window,
    )
    done: list[EvalItem] = []
    for i, item in enumerate(pool):
        result.effort.append(user.annotate(predictor, item))
        done.append(item)
        yield Progress(i + 1, n_pool, "annotating", {"image": item.name})
        if len(done) not in ks:
            continue
        t0 = time.perf_counter()
        job = FinetuneJob(
            workdir / f"k{len(done):03d}",
            predictor.model,
            [annotated_image(it) for it in done],
            preset=preset,
            overrides=dict(overrides or {}, device=device),
            val_fraction=0,
            seed=seed,
            zoom=predictor.zoom,
            score=False,
        )
        gen = iter(job)
        while True:
            try:
                p = next(gen)
            except StopIteration as e:
                fit = e.value
                break
            yield Progress(p.step, p.total, f"fine-tuning on {len(done)} images", p.metrics)
        seconds = time.perf_counter() - t0
        if fit.model is None:  # cancelled: keep annotating with the model in use
            result.rounds.append(FinetuneRound(len(done), seconds, fit.step, fit.status, None))
            continue
        predictor.set_model(fit.model)
        scores = yield from score(fit.model, f"scoring after {len(done)} images")
        result.rounds.append(FinetuneRound(len(done), seconds, fit.step, fit.status, scores))
    return result
