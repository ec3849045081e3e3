"""The training state of one process: model, optimiser, schedule, data position, best score.

:func:`sam_pets.train.loop.iter_fit` drives a :class:`Trainer`; the trainer holds no UI and
writes files only through its :class:`~sam_pets.train.rundir.RunDir` (rank 0).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Mapping

import numpy as np
import torch

from sam_pets.data.errors import no_readable_items
from sam_pets.data.types import FileIssue
from sam_pets.model import ImageFeatures
from sam_pets.model.device import select_device
from sam_pets.train import distributed as ddp
from sam_pets.train.config import TrainConfig
from sam_pets.train.data import (
    EpochSamples,
    FeatureCache,
    crop_views_dataset,
    epoch_order,
    loader,
    open_dataset,
    sample_seed,
    shard,
    to_batch,
)
from sam_pets.train.device import Runtime, rng_state, seed_everything, set_rng_state
from sam_pets.train.ema import WeightAverage
from sam_pets.train.optim import LrSchedule, build_optimizer
from sam_pets.train.rundir import RunDir
from sam_pets.train.setup import (
    configure_trainable,
    load_train_model,
    set_train_modes,
    trainable_parameters,
)
from sam_pets.train.step import TERMS, Batch, NonFiniteLoss, StepInterrupted, batch_loss
from sam_pets.train.validate import validate


class Trainer:
    """Everything a run needs between steps.

    Items that cannot be read are left out when the datasets are opened, before the first
    step (:attr:`skipped` lists them, train split first); a train split with no readable
    item is an error.

    Args:
        cfg: The run configuration.
        resume: Continue from ``cfg.out/state.pt``.
        overwrite: Replace an existing run in ``cfg.out``.
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> None:
        self.cfg = cfg
        self.dist = ddp.env_info()
        self.rt = Runtime(select_device(cfg.device, self.dist.local_rank), cfg.precision)
        ddp.init_process_group(self.dist, self.rt.device)
        self.run = RunDir(cfg.out, write=self.dist.is_main)
        if self.dist.is_main:
            self.run.check(resume, overwrite)
        ddp.barrier()
        seed_everything(cfg.seed)
        self._build_model()
        self._build_data()
        state = self._read_state() if resume else None
        # only now, with weights, optimiser, data (and the state to resume) known to be
        # usable: a run that cannot start leaves no config.yaml behind to block the retry,
        # and a refused resume leaves the run's saved config as it was
        self.run.create(cfg, resume)
        ddp.barrier()
        self.step, self.epoch, self.batch_idx = 0, 0, 0
        self._committed = (0, 0)  # data position after the last completed step
        self.best_miou, self.best_step, self.bad_vals = -math.inf, -1, 0
        self.images_seen = 0
        self.val_step = -1  # step of the last finished validation (and save) round
        if state is not None:
            self.load_state_dict(state)
            self.run.truncate_log(self.step)

    def _read_state(self) -> dict:
        """The saved resume state; refuses a step count below the steps already done."""
        state = self.run.load_state()
        done = int(state.get("step", 0))
        if done > self.total_steps:
            raise ValueError(
                f"{self.run.path}: the run already did {done} steps, more than the "
                f"{self.total_steps} asked for; give --steps or --epochs beyond that to extend it"
            )
        return state

    def _build_model(self) -> None:
        cfg = self.cfg
        self.model = load_train_model(cfg)
        configure_trainable(self.model, cfg)
        self.model.to(self.rt.device)
        set_train_modes(self.model, cfg)
        ddp.broadcast_parameters(self.model)
        self.params = trainable_parameters(self.model)
        self.optimizer = build_optimizer(self.model, cfg)
        self.ema = WeightAverage(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None

    def _build_data(self) -> None:
        cfg, size = self.cfg, self.model.cfg.image_size
        cached = cfg.cached_embeddings
        self.train_ds = open_dataset(
            cfg.dataset,
            cfg.train_split,
            size,
            cfg.augment and not cached,
            cfg.object_crop_prob,
            cfg.object_crop_margin,
            cfg.copy_paste_prob,
            cfg.copy_paste_backgrounds,
            cfg.paste_objects_prob,
        )
        if cfg.preload_mb and not cached:
            self.train_ds.preload(cfg.preload_mb)
        self.skipped: list[FileIssue] = list(self.train_ds.skipped)
        if self.skipped and not len(self.train_ds):
            raise no_readable_items(cfg.dataset, self.skipped)
        self.weights = self.train_ds.sample_weights().numpy() if cfg.balanced else None
        per_rank = len(self.train_ds) // self.dist.world
        self.batches_per_epoch = per_rank // cfg.batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"{cfg.dataset}: {len(self.train_ds)} '{cfg.train_split}' items are fewer than "
                f"batch size {cfg.batch_size} x {self.dist.world} processes"
            )
        steps_per_epoch = max(1, self.batches_per_epoch // cfg.grad_accum)
        self.total_steps = cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch
        self.schedule = LrSchedule(cfg, self.total_steps)
        frozen = cfg.encoder_frozen
        auto, prec = self.rt.autocast, f"precision={self.rt.precision}"
        self.cache = None
        if cached:
            crops = cfg.object_crop_prob > 0 and cfg.cached_crop_views > 0
            views = (
                crop_views_dataset(self.train_ds, size, cfg.object_crop_margin) if crops else None
            )
            self.cache = FeatureCache(
                self.model,
                self.train_ds,
                _sub(cfg.cache_dir, "train"),
                auto,
                prec,
                views=views,
                num_views=cfg.cached_crop_views if crops else 0,
                crop_prob=cfg.object_crop_prob,
            )
        self.val_ds = self._open_val(size)
        self.val_cache = (
            FeatureCache(self.model, self.val_ds, _sub(cfg.cache_dir, "val"), auto, prec)
            if frozen and self.val_ds is not None
            else None
        )

    def _open_val(self, size: int):
        if not self.cfg.val_split:
            return None
        try:
            ds = open_dataset(self.cfg.dataset, self.cfg.val_split, size, augment=False)
        except (FileNotFoundError, ValueError, KeyError):
            return None
        self.skipped += ds.skipped
        if self.cfg.val_items and len(ds) > self.cfg.val_items:
            ds.records = ds.records[: self.cfg.val_items]
        return ds if len(ds) else None

    def seed_features(self, features: Mapping[str, ImageFeatures]) -> int:
        """Fill the feature caches from ``{item name: features}``; returns how many were used.

        Only meaningful with cached embeddings of the same (frozen) encoder that computed
        them; without a cache this does nothing.
        """
        used = 0
        for cache in (self.cache, self.val_cache):
            if cache is None:
                continue
            for i, rec in enumerate(cache.dataset.records):
                feats = features.get(rec["name"])
                used += bool(feats is not None and cache.seed(i, feats))
        return used

    # -- data -------------------------------------------------------------------------------
    def micro_batches(self) -> Iterator[Batch]:
        """Batches from the current data position on, across epochs (advances the position)."""
        cfg, d = self.cfg, self.dist
        while True:
            order = shard(
                epoch_order(len(self.train_ds), self.epoch, cfg.seed, self.weights), d.rank, d.world
            )[: self.batches_per_epoch * cfg.batch_size]
            for batch in self._epoch_batches(order, self.batch_idx):
                self.batch_idx += 1  # the position after this batch, saved with the step
                yield batch
            self.epoch, self.batch_idx = self.epoch + 1, 0

    def _epoch_batches(self, order: np.ndarray, start_batch: int) -> Iterator[Batch]:
        cfg, b = self.cfg, self.cfg.batch_size
        seed = cfg.seed * 1_000_003 + self.dist.rank
        if self.cache is not None:
            for j in range(start_batch, len(order) // b):
                idx = [int(i) for i in order[j * b : (j + 1) * b]]
                seeds = [sample_seed(seed, self.epoch, j * b + k) for k in range(b)]
                yield self.cache.batch(idx, seeds, self.rt.device)
            return
        samples = EpochSamples(
            self.train_ds, order[start_batch * b :], seed, self.epoch, start=start_batch * b
        )
        gen = torch.Generator().manual_seed(seed)
        for lst in loader(samples, b, cfg.num_workers, gen):
            yield to_batch(lst, self.rt.device)

    # -- one optimiser step -----------------------------------------------------------------
    def train_step(
        self, batches: Iterator[Batch], stop: threading.Event | None = None
    ) -> dict[str, float]:
        """Accumulate ``grad_accum`` micro-batches, average over ranks, clip and step.

        With ``stop`` (single process only: ranks must agree on every step), a stop request
        abandons the step between two decoder rounds: gradients are dropped and the random
        state is put back, so the weights, optimiser and data position stay those of the last
        finished step (what is saved and resumed), and :class:`StepInterrupted` is raised.

        Raises:
            NonFiniteLoss: the loss (mean over ranks) or, in fp32/bf16, the gradient norm is
                NaN or infinite. The step is dropped the same way, so the state stays that
                of the last finished step.
        """
        cfg = self.cfg
        t0 = time.perf_counter()
        interruptible = stop is not None and self.dist.world == 1
        rng0 = rng_state()
        lr = self.schedule.apply(self.optimizer, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        sums, n_obj = dict.fromkeys(("loss", *TERMS), 0.0), 0
        try:
            for _ in range(cfg.grad_accum):
                bl = batch_loss(
                    self.model,
                    next(batches),
                    cfg,
                    self.rt.autocast,
                    self.rt.backward,
                    scale=1.0 / cfg.grad_accum,
                    stop=stop.is_set if interruptible else None,
                    decoder_autocast=self.rt.decoder_autocast,
                )
                sums["loss"] += bl.loss / cfg.grad_accum
                for k in TERMS:
                    sums[k] += bl.terms[k] / cfg.grad_accum
                n_obj += bl.num_objects
            metrics = ddp.all_reduce_mean(sums, self.rt.device)
            _check_finite("the loss", metrics["loss"])
            ddp.average_gradients(self.params)
            gnorm = self.rt.unscale_and_clip(self.optimizer, self.params, cfg.grad_clip)
            if not self.rt.skips_non_finite():
                _check_finite("the gradient norm", gnorm)
        except (StepInterrupted, NonFiniteLoss):
            self.optimizer.zero_grad(set_to_none=True)
            set_rng_state(rng0)
            raise
        self.rt.step(self.optimizer)
        if self.ema is not None:
            self.ema.update(self.model)
        self.rt.synchronize()
        self.step += 1
        self._committed = (self.epoch, self.batch_idx)
        images = cfg.batch_size * cfg.grad_accum * self.dist.world
        self.images_seen += images
        metrics.update(
            lr=lr, grad_norm=gnorm, objects=n_obj, step_time=time.perf_counter() - t0, images=images
        )
        return metrics

    # -- validation -------------------------------------------------------------------------
    def validate(self) -> dict[str, float] | None:
        """Val metrics with fixed prompts (None without a val split); restores train modes."""
        if self.val_ds is None:
            return None
        dev = self.rt.device

        def items():
            for i in range(len(self.val_ds)):
                if self.val_cache is not None:
                    e = self.val_cache.get(i)
                    x = ImageFeatures(*(t.to(dev) for t in e["features"]))
                    yield x, e["masks"].to(dev), e["ignore"].to(dev)
                else:
                    s = self.val_ds[i]
                    img = s["image"].as_subclass(torch.Tensor)[None].to(dev).float() / 255.0
                    yield (
                        img,
                        s["masks"].as_subclass(torch.Tensor).to(dev),
                        s["ignore"].as_subclass(torch.Tensor).to(dev),
                    )

        try:
            amp = (self.rt.autocast, self.rt.decoder_autocast)
            val = validate(self.model, items(), *amp)
            if self.ema is not None:  # the averaged weights on the same items and prompts
                with self.ema.swapped_in(self.model):
                    averaged = validate(self.model, items(), *amp)
                val.update(
                    {
                        f"val_ema_{k[4:]}": v
                        for k, v in averaged.items()
                        if k.startswith("val_") and k != "val_objects"
                    }
                )
            return val
        finally:
            set_train_modes(self.model, self.cfg)

    def record_validation(self, val: dict[str, float]) -> bool:
        """Update best score, plateau and early stopping; return True if this is a new best."""
        self.schedule.on_validation(val["val_miou"])
        if val["val_miou"] > self.best_miou:
            self.best_miou, self.best_step, self.bad_vals = val["val_miou"], self.step, 0
            return True
        self.bad_vals += 1
        return False

    @property
    def early_stop(self) -> bool:
        """True when validation stopped improving for ``early_stop_patience`` rounds."""
        p = self.cfg.early_stop_patience
        return p > 0 and self.bad_vals >= p

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything an exact resume needs (tensors and plain numbers only)."""
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.rt.scaler.state_dict(),
            "plateau": self.schedule.plateau.state_dict(),
            "rng": rng_state(),
            "step": self.step,
            "epoch": self._committed[0],
            "batch_idx": self._committed[1],
            "best_miou": self.best_miou,
            "best_step": self.best_step,
            "bad_vals": self.bad_vals,
            "images_seen": self.images_seen,
            "val_step": self.val_step,
            "ema": None if self.ema is None else self.ema.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (model and optimiser already built)."""
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.rt.scaler.load_state_dict(state["scaler"])
        self.schedule.plateau.load_state_dict(state["plateau"])
        set_rng_state(state["rng"])
        for k in (
            "step",
            "epoch",
            "batch_idx",
            "best_miou",
            "best_step",
            "bad_vals",
            "images_seen",
        ):
            setattr(self, k, state[k])
        self._committed = (self.epoch, self.batch_idx)
        self.val_step = int(state.get("val_step", self.step))  # older states: validated
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        elif self.ema is not None and self.step > 0:  # a run that had no average: start it
            self.ema = WeightAverage(self.model, self.cfg.ema_decay)

    def metadata(self, val: dict | None = None) -> dict:
        """Training metadata stored in checkpoints (under ``sam_pets.train``)."""
        return {
            "step": self.step,
            "epoch": self.epoch,
            "total_steps": self.total_steps,
            "best_val_miou": None if self.best_step < 0 else self.best_miou,
            "best_step": self.best_step,
            "val": val,
            "config": self.cfg.to_dict(),
        }

    def save(self, val: dict | None = None, best: bool = False) -> None:
        """Write last.pt and state.pt (and best.pt) on rank 0."""
        meta = self.metadata(val)
        self.run.save_model(self.model, "last.pt", meta)
        if best:
            self.run.save_model(self.model, "best.pt", meta)
        if self.ema is not None:
            with self.ema.swapped_in(self.model):
                self.run.save_model(self.model, "ema.pt", {**meta, "ema_decay": self.cfg.ema_decay})
        self.run.save_state(self.state_dict())


def _check_finite(what: str, value: float) -> None:
    if not math.isfinite(value):
        raise NonFiniteLoss(f"{what} is {value}")


def _sub(directory: str | None, name: str) -> str | None:
    return f"{directory}/{name}" if directory else None
