"""Fine-tuning on a person's own annotations: the engine behind napari's Fine-tune dock.

A :class:`FinetuneJob` owns one folder per run (by default under the per-user data folder,
see :func:`default_root`)::

    <job folder>/
      data/          snapshot of the annotations (a canonical dataset with a train/val split)
      base.pt        the model training started from (a sam-pets checkpoint)
      run/           the training run (config.yaml, metrics.jsonl, curves, last.pt, best.pt)
      finetune.json  job settings, then the before/after comparison on the held-out images

Training works on the snapshot, never on live layers, so the person keeps annotating and a
crash or a cancel leaves their annotations and the previous model untouched.

Iterating a job yields :class:`~sam_pets.progress.Progress` records: ``"snapshot"``,
``"before"``, the training records (``"start"``, ``"caching ... features"``, ``"train"``,
``"val"``), then ``"after"``; it returns a :class:`FinetuneResult`. :meth:`FinetuneJob.stop`
(thread-safe) stops after the current decoder round (an unfinished step is dropped), keeping
``last.pt`` and the exact state of the last finished step for :meth:`FinetuneJob.resume`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sam_pets._atomic import atomic_write_text
from sam_pets.data.errors import BadItemError
from sam_pets.data.export import export_annotation
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.types import masks_to_labels
from sam_pets.eval.heldout import HeldOutScores, iter_compare
from sam_pets.eval.items import iter_items
from sam_pets.model import ImageFeatures, Sam2Image
from sam_pets.model.checkpoint import load_model, save_checkpoint
from sam_pets.paths import data_dir
from sam_pets.progress import Progress
from sam_pets.train.config import TrainConfig, load_config
from sam_pets.train.loop import iter_fit

JOB_FILE = "finetune.json"


@dataclass(frozen=True)
class Preset:
    """A named set of :class:`TrainConfig` settings for the dock's preset menu."""

    title: str
    settings: Mapping[str, object]


# Quick: the prompt encoder and mask decoder on the image embeddings, computed once
_QUICK = dict(
    freeze=("image_encoder",),
    cached_embeddings=True,
    steps=150,
    batch_size=4,
    lr=1e-4,
    warmup_steps=10,
    correction_rounds=3,
    val_every=50,
    augment=False,
    device="cpu",
    precision="fp32",
)

PRESETS: dict[str, Preset] = {
    "quick": Preset("Quick (CPU): decoder on cached embeddings", _QUICK),
    # For a domain the model does not know (facades for the pets model): with SAM 2's focal
    # weight of 20 every fine-tune on facades shrank the masks towards nothing; a dice-led
    # loss, twice the steps and a higher lr took NoC@85 from 19.97 to 18.52 and the box from
    # 0.624 to 0.717 there, but made held-out pets worse (NoC@85 6.98 -> 7.63, where Quick
    # gave 6.35). BENCHMARKS.md, the facades section.
    "quick_new_domain": Preset(
        "Quick, new domain (CPU): decoder on cached embeddings, dice-led loss",
        {**_QUICK, "steps": 300, "lr": 3e-4, "object_crop_prob": 0.5, "focal_weight": 1.0},
    ),
    "full": Preset(
        "Full (GPU): whole model",
        dict(
            freeze=(),
            cached_embeddings=False,
            steps=1000,
            batch_size=4,
            lr=1e-5,
            warmup_steps=50,
            correction_rounds=7,
            val_every=100,
            augment=True,
            device="auto",
            precision="auto",
        ),
    ),
}


def default_root() -> Path:
    """Where fine-tune runs go unless the user picks a folder.

    ``finetune`` in the per-user data folder (:func:`sam_pets.paths.data_dir`).
    """
    return data_dir() / "finetune"


def new_job_folder(root: str | os.PathLike, preset: str, model_name: str) -> Path:
    """A fresh, clearly named folder ``<root>/<date>_<time>_<preset>_<model>`` (not created)."""
    stamp = time.strftime("%Y-%m-%d_%H%M%S")
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in model_name)[:40]
    base = Path(root) / f"{stamp}_{preset}_{safe}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}_{n}")
    return path


@dataclass
class AnnotatedImage:
    """One annotated image plane, copied out of the viewer.

    Attributes:
        name: Item name (made unique and safe by the export).
        image: (H, W) or (H, W, C) pixels.
        labels: (H, W) integer labels, 0 = background.
        source: Path of the image file, if known.
        features: The annotator's embedding of ``image`` for the starting model, if any.
        ignore: (H, W) bool pixels left out of training and scoring (e.g. an uncertain
            border), or None.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    source: str | None = None
    features: ImageFeatures | None = None
    ignore: np.ndarray | None = None


def can_resume(folder: str | os.PathLike) -> bool:
    """True if ``folder`` holds a job that saved a finished step to continue from."""
    folder = Path(folder)
    return (folder / JOB_FILE).is_file() and (folder / "run" / "state.pt").is_file()


def split_names(names: Sequence[str], val_fraction: float, seed: int = 0) -> set[str]:
    """The held-out names: a seeded ``val_fraction`` of ``names``.

    At least one when there are two or more images, and never all of them.
    """
    names = sorted(names)
    if len(names) < 2 or val_fraction <= 0:
        return set()
    n_val = min(len(names) - 1, max(1, round(val_fraction * len(names))))
    order = np.random.default_rng([seed, 11]).permutation(len(names))
    return {names[i] for i in order[:n_val]}


def write_snapshot(
    items: Sequence[AnnotatedImage],
    folder: str | os.PathLike,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, str]:
    """Write the annotations as a canonical dataset; returns ``{item name: split}``.

    Raises:
        ValueError: No item has a labelled pixel.
    """
    items = [it for it in items if np.asarray(it.labels).any()]
    if not items:
        raise ValueError("nothing to train on: no committed object in any image")
    val = split_names([it.name for it in items], val_fraction, seed)
    splits = {}
    for it in items:
        meta = {"split": "val" if it.name in val else "train"}
        if it.source:
            meta["source"] = it.source
        if it.ignore is not None and np.asarray(it.ignore).any():
            meta["ignore"] = np.asarray(it.ignore, bool)
        res = export_annotation(folder, it.image, it.labels, it.name, meta)
        splits[res.name] = meta["split"]
    return splits


@dataclass(frozen=True)
class FinetuneResult:
    """What a fine-tune produced.

    Attributes:
        folder: The job folder.
        status: "done", "early_stop" or "cancelled".
        step: Optimiser steps done.
        checkpoint: The checkpoint to use (``best.pt`` if validated, else ``last.pt``).
        before: Held-out scores of the starting model (None if not measured).
        after: Held-out scores of the fine-tuned model (None when cancelled).
        model: The fine-tuned model loaded from ``checkpoint`` (None when cancelled).
    """

    folder: Path
    status: str
    step: int
    checkpoint: Path
    before: HeldOutScores | None
    after: HeldOutScores | None
    model: Sam2Image | None = field(default=None, compare=False, repr=False)


def make_config(
    preset: str,
    dataset: str | os.PathLike,
    out: str | os.PathLike,
    checkpoint: str,
    n_train: int | None = None,
    **overrides,
) -> TrainConfig:
    """The :class:`TrainConfig` of a preset with the user's changes.

    The batch size is capped at the number of training images.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    settings = {**PRESETS[preset].settings, **{k: v for k, v in overrides.items() if v is not None}}
    if n_train is not None:
        settings["batch_size"] = max(1, min(int(settings["batch_size"]), n_train))
    if not settings.get("cached_embeddings"):
        settings["cached_embeddings"] = False
    elif "image_encoder" not in settings.get("freeze", ()) or settings.get("lora_rank"):
        settings["cached_embeddings"] = False  # a trained encoder needs fresh features
    return TrainConfig(
        dataset=str(dataset), out=str(out), checkpoint=checkpoint, val_items=0, **settings
    )


class FinetuneJob:
    """Snapshot -> score the start model -> train -> score the result, as one generator.

    Args:
        folder: New job folder (see :func:`new_job_folder`); must not exist or be empty.
        base_model: The model to start from (the annotator's current model), or a checkpoint
            file loaded when the job first needs it (so that it loads in the job's thread).
        items: Annotated images to train on (snapshotted into ``folder/data``) ...
        dataset: ... and/or an exported canonical dataset folder, used as it is (its own
            train/val split) when no items are given, else merged into the snapshot.
        preset: Key of :data:`PRESETS`.
        overrides: TrainConfig fields changed from the preset (steps, lr, freeze, lora_rank).
        val_fraction: Share of the annotated images held out (at least one of two or more).
        max_clicks: Click budget of the clicks-to-90 % score.
        seed: Seed of the split and of training.
        zoom: Score the held-out images with zoom-in prediction on or off (None: each
            model's default, as the annotator's).
        score: Score the start model and the result on the held-out images (False: train
            only; ``before`` and ``after`` of the result are None).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        base_model: Sam2Image | str | os.PathLike,
        items: Sequence[AnnotatedImage] = (),
        dataset: str | os.PathLike | None = None,
        preset: str = "quick",
        overrides: Mapping[str, object] | None = None,
        val_fraction: float = 0.2,
        max_clicks: int = 20,
        seed: int = 0,
        zoom: bool | None = None,
        score: bool = True,
    ) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
        self.folder = Path(folder)
        self._base = base_model
        self.items = list(items)
        self.dataset = Path(dataset) if dataset else None
        if not self.items and self.dataset is None:
            raise ValueError("nothing to train on: give annotated images or a dataset folder")
        self.preset = preset
        self.overrides = dict(overrides or {})
        self.val_fraction, self.max_clicks, self.seed = val_fraction, max_clicks, seed
        self.zoom = zoom
        self.score = score
        self._stop = threading.Event()
        self._resume = False
        self._before: HeldOutScores | None = None

    @classmethod
    def resume(cls, folder: str | os.PathLike, steps: int | None = None) -> FinetuneJob:
        """The job of ``folder`` continued from its last finished step.

        Args:
            folder: A job folder written by an earlier (stopped) job.
            steps: New total number of optimiser steps (None: the original total).
        """
        folder = Path(folder)
        try:
            info = json.loads((folder / JOB_FILE).read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{folder}: not a fine-tune job folder ({JOB_FILE}: {e})") from None
        job = cls(
            folder,
            folder / "base.pt",
            dataset=info["dataset"],
            preset=info["preset"],
            overrides=info.get("overrides"),
            max_clicks=info.get("max_clicks", 20),
            seed=info.get("seed", 0),
            zoom=info.get("zoom"),
        )
        job._resume = True
        job._steps = steps
        before = info.get("before")
        job._before = HeldOutScores(**before) if before else None
        return job

    @property
    def base_model(self) -> Sam2Image:
        """The start model (loaded from its checkpoint on first use)."""
        if not isinstance(self._base, Sam2Image):
            self._base = load_model(self._base)
        return self._base

    def stop(self) -> None:
        """Stop after the current decoder round (dropping an unfinished step) or image."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def __iter__(self) -> Generator[Progress, None, FinetuneResult]:
        return self._run()

    # -- steps ---------------------------------------------------------------------------------
    def _prepare(self) -> Generator[Progress, None, tuple[Path, TrainConfig]]:
        folder = self.folder
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(f"{folder}: not empty; fine-tune runs never overwrite data")
        if self.dataset is not None:
            canon.load_manifest(self.dataset)  # a malformed dataset.json: say so, before any work
        folder.mkdir(parents=True, exist_ok=True)
        data = self.dataset
        if self.items:
            data = folder / "data"
            yield Progress(0, len(self.items), "snapshot")
            write_snapshot(self.items, data, self.val_fraction, self.seed)
            if self.dataset is not None:
                yield from _merge_dataset(self.dataset, data)
        base = folder / "base.pt"
        save_checkpoint(self.base_model, base, {"role": "fine-tune start"})
        n_train = _count(data, "train")
        if n_train == 0:
            raise ValueError(f"{data}: no training images")
        overrides = dict(self.overrides, seed=self.seed)
        cfg = make_config(self.preset, data, folder / "run", str(base), n_train, **overrides)
        self._save_info(data, cfg)
        return data, cfg

    def _run(self) -> Generator[Progress, None, FinetuneResult]:
        if self._resume:
            cfg = load_config(self.folder / "run" / "config.yaml")
            if self._steps is not None:
                cfg = dataclasses.replace(cfg, steps=self._steps, epochs=None)
            data = Path(cfg.dataset)
        else:
            data, cfg = yield from self._prepare()
        feats = {it.name: it.features for it in self.items if it.features is not None}
        if self._before is None and self.score:
            scores = yield from self._score({"before": self.base_model}, data, feats)
            self._before = scores.get("before")
            self._save_info(data, cfg)
        fit = yield from iter_fit(cfg, self._stop, resume=self._resume, features=feats)
        ckpt = fit.best_checkpoint or fit.last_checkpoint
        if fit.status == "cancelled":
            return FinetuneResult(self.folder, fit.status, fit.step, ckpt, self._before, None)
        model = load_model(ckpt)
        after = None
        if self.score:
            models = {"after": model, "before": self.base_model}
            after = (yield from self._score(models, data, feats)).get("after")
        self._save_info(data, cfg, after=after, status=fit.status, checkpoint=ckpt)
        return FinetuneResult(self.folder, fit.status, fit.step, ckpt, self._before, after, model)

    def _score(self, models, data, feats) -> Generator[Progress, None, dict]:
        if self._stop.is_set():
            return {}
        gen = iter_compare(
            models,
            data,
            features=feats,
            max_clicks=self.max_clicks,
            stop=self._stop,
            zoom=self.zoom,
        )
        label = "before" if "after" not in models else "after"
        while True:
            try:
                p = next(gen)
            except StopIteration as e:
                return e.value
            yield Progress(p.step, p.total, label, {"what": "scoring held-out images"})

    def _save_info(self, data, cfg: TrainConfig, **extra) -> None:
        info = {
            "preset": self.preset,
            "overrides": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.overrides.items()
            },
            "dataset": str(data),
            "seed": self.seed,
            "max_clicks": self.max_clicks,
            "zoom": self.zoom,
            "base_model": self.base_model.cfg.name,
            "before": dataclasses.asdict(self._before) if self._before else None,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        for k, v in extra.items():
            info[k] = (
                dataclasses.asdict(v)
                if dataclasses.is_dataclass(v)
                else (str(v) if isinstance(v, Path) else v)
            )
        atomic_write_text(self.folder / JOB_FILE, json.dumps(info, indent=1))


def _count(dataset: Path, split: str) -> int:
    try:
        return len(canon.read_list(dataset, split))
    except FileNotFoundError:
        return 0


def _merge_dataset(src: Path, dst: Path) -> Generator[Progress, None, None]:
    """Add the items of the canonical dataset ``src`` to the snapshot ``dst`` (same splits).

    An item that cannot be read is left out; a progress notice names it and the reason.
    """
    records = canon.items_by_name(canon.load_manifest(src))
    taken = set(canon.items_by_name(canon.load_manifest(dst)))
    names = sorted(set(records) - taken)
    for i, item in enumerate(iter_items(src, names, yield_errors=True)):
        if isinstance(item, BadItemError):
            notice = f"skipped item {item.item!r}: {item.reason}"
            yield Progress(i + 1, len(names), "snapshot", notice=notice)
            continue
        labels = masks_to_labels(item.masks, item.object_ids, item.image.shape[:2])
        if not labels.any():
            continue
        rec = records[item.name]
        meta = {"split": rec.get("split", "train"), "ignore": item.ignore}
        meta.update({k: rec[k] for k in ("species", "breed", "source") if rec.get(k)})
        export_annotation(dst, item.image, labels, item.name, meta)
