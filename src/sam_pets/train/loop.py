"""The training loop as a generator of :class:`~sam_pets.progress.Progress` records.

``iter_fit`` yields one record per optimiser step (``message="train"``) and one per
validation (``message="val"``), and returns a :class:`FitResult`. With cached embeddings it
first yields ``"caching train features"`` / ``"caching val features"`` records (their
``step``/``total`` count images, not optimiser steps). A stop request
(``threading.Event`` or :meth:`TrainJob.stop`) is honoured after the current step; closing
the generator (napari's worker ``quit()``) also saves. Either way ``last.pt`` and
``state.pt`` are written atomically before the generator ends, so ``--resume`` continues
exactly where the run stopped. Resuming a run that already reached its steps changes nothing
(a ``"finished"`` record says so); asking it for fewer steps than it did is an error.

A step whose loss (or gradient norm) is NaN or infinite is not taken: the run stops with
:class:`~sam_pets.train.step.NonFiniteLoss` after saving the last finished step, so a
diverged run never writes NaN weights into ``last.pt`` / ``best.pt``.

A dataset item that cannot be read is left out when the run starts, before the first step:
one ``"skipped"`` record per such item carries a notice naming it and the reason, and
:attr:`FitResult.skipped` lists them (train and val splits). The run trains on the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sam_pets.data.types import FileIssue
from sam_pets.model import ImageFeatures, Sam2Image
from sam_pets.progress import Progress, run_job
from sam_pets.train import distributed as ddp
from sam_pets.train.config import TrainConfig
from sam_pets.train.plots import write_curves
from sam_pets.train.step import NonFiniteLoss, StepInterrupted
from sam_pets.train.trainer import Trainer


@dataclass(frozen=True)
class FitResult:
    """What a finished (or stopped) run produced.

    Attributes:
        run_dir: The run folder.
        step: Optimiser steps done.
        epoch: The epoch of the last step's batch, counted from 1 (as in the records).
        status: "done", "early_stop" or "cancelled".
        best_val_miou: Best validation mIoU (None without validation).
        best_step: Step of ``best.pt`` (-1 without validation).
        last_val: Metrics of the last validation, or None.
        model: The trained model (with adapters, if any), on the training device.
        skipped: Items left out because they cannot be read (``source`` is the item name).
    """

    run_dir: Path
    step: int
    epoch: int
    status: str
    best_val_miou: float | None
    best_step: int
    last_val: dict | None = None
    model: Sam2Image | None = field(default=None, compare=False, repr=False)
    skipped: tuple[FileIssue, ...] = ()

    @property
    def last_checkpoint(self) -> Path:
        """``RUN/last.pt``."""
        return self.run_dir / "last.pt"

    @property
    def ema_checkpoint(self) -> Path | None:
        """``RUN/ema.pt`` (the averaged weights) if the run kept an average."""
        path = self.run_dir / "ema.pt"
        return path if path.is_file() else None

    @property
    def best_checkpoint(self) -> Path | None:
        """``RUN/best.pt`` if a validation ran."""
        return self.run_dir / "best.pt" if self.best_step >= 0 else None


def iter_fit(
    cfg: TrainConfig,
    stop: threading.Event | None = None,
    resume: bool = False,
    overwrite: bool = False,
    features: Mapping[str, ImageFeatures] | None = None,
) -> Generator[Progress, None, FitResult]:
    """Train as ``cfg`` says, yielding progress; return a :class:`FitResult`.

    Args:
        cfg: The run configuration.
        stop: Set it (from any thread) to stop after the current step.
        resume: Continue the run in ``cfg.out`` from its ``state.pt``.
        overwrite: Replace an existing run in ``cfg.out`` (else that is an error).
        features: ``{item name: features}`` already computed by the same encoder (e.g. the
            annotator's embeddings); with cached embeddings they are used instead of
            running the encoder again.

    Yields:
        Progress records: step, total steps and metrics (epoch, counted from 1; loss and
        its terms, lr, grad_norm, images_per_s, eta_s; val_* after a validation).
    """
    tr = Trainer(cfg, resume=resume, overwrite=overwrite)
    stop = stop or threading.Event()
    status, last_val = "done", None
    try:
        seeded = tr.seed_features(features) if features else 0
        for issue in tr.skipped:
            notice = f"skipped item {issue.source!r}: {issue.reason}"
            yield Progress(tr.step, tr.total_steps, "skipped", notice=notice)
        yield Progress(tr.step, tr.total_steps, "start", {"epoch": tr.epoch + 1, "reused": seeded})
        # a resumed run stopped inside a validation does it first, as the run would have
        due = 0 < tr.step and tr.val_step < tr.step and _validation_due(tr)
        finished = tr.step >= tr.total_steps and not due  # a resumed run that had ended
        if finished:
            last_val = _last_validation(tr.run.records())
            notice = f"{tr.run.path} already finished ({tr.step} steps); nothing to do"
            yield Progress(tr.step, tr.total_steps, "finished", notice=notice)
        else:
            yield from _fill_caches(tr, stop)
        if stop.is_set():  # cancelled while caching
            status = "cancelled"
        elif due and tr.step < tr.total_steps:
            last_val = yield from _validate_and_save(tr)
            status = "early_stop" if tr.early_stop else status
        batches = tr.micro_batches()
        timer = _Rate()
        while tr.step < tr.total_steps and status == "done":
            try:
                m = tr.train_step(batches, stop)
            except StepInterrupted:  # cancelled inside a long step: it is not counted
                status = "cancelled"
                break
            except NonFiniteLoss as e:  # diverged: keep the last finished step, say so
                raise _diverged(tr, e, last_val) from None
            rec = _train_record(tr, m, timer)
            if tr.step % cfg.log_every == 0 or tr.step == tr.total_steps:
                tr.run.log(rec)
            yield Progress(tr.step, tr.total_steps, "train", rec)
            if cfg.val_every and tr.step % cfg.val_every == 0 and tr.step < tr.total_steps:
                last_val = yield from _validate_and_save(tr)
                if tr.early_stop:
                    status = "early_stop"
                    break
            elif cfg.save_every and tr.step % cfg.save_every == 0:
                tr.save(last_val)
            if ddp.broadcast_flag(stop.is_set(), tr.rt.device):
                status = "cancelled"
                break
        if status == "done" and not finished:
            last_val = (yield from _validate_and_save(tr)) or last_val
        elif not finished:
            tr.save(last_val)
    except (GeneratorExit, KeyboardInterrupt):
        tr.save(last_val)  # closed or interrupted: keep the state of the last finished step
        raise
    except Exception:
        if not resume and tr.step == 0:
            tr.run.discard()  # failed before the first step: let the same command run again
        raise
    finally:
        tr.run.release()
    # curves are redrawn at every validation; a stop request skips the final redraw (seconds
    # of plotting) so that cancelling is quick -- a resumed run draws them again
    if tr.dist.is_main and status != "cancelled":
        write_curves(tr.run.records(), tr.run.path)
    ddp.barrier()  # only on a normal end: after an exception other ranks may be gone
    best = tr.best_miou if tr.best_step >= 0 else None
    return FitResult(
        tr.run.path,
        tr.step,
        tr.epoch + 1,
        status,
        best,
        tr.best_step,
        last_val,
        tr.model,
        tuple(tr.skipped),
    )


def _validation_due(tr: Trainer) -> bool:
    """True when the loop validates after the current step (every ``val_every``, the end)."""
    every = tr.cfg.val_every
    return tr.step >= tr.total_steps or bool(every and tr.step % every == 0)


def _last_validation(records: list[dict]) -> dict | None:
    """The metrics of the last validation in ``metrics.jsonl`` (None if there was none)."""
    vals = [r for r in records if "val_miou" in r]
    if not vals:
        return None
    return {k: v for k, v in vals[-1].items() if k not in ("step", "epoch", "best")}


def _diverged(tr: Trainer, err: NonFiniteLoss, last_val: dict | None) -> NonFiniteLoss:
    """Save the last finished step (if any) and word the error for the user."""
    kept, again = "nothing was kept", "run it again with a lower --lr"
    if tr.step > 0:
        tr.save(last_val)
        kept, again = f"last.pt and state.pt hold step {tr.step}", again + " and --overwrite"
    return NonFiniteLoss(
        f"{tr.run.path}: {err} at step {tr.step + 1}; training stopped ({kept}); {again}"
    )


def _fill_caches(tr: Trainer, stop: threading.Event) -> Generator[Progress, None, None]:
    """Compute the cached features of every train (and val) item up front, with progress."""
    for name, cache in (("train", tr.cache), ("val", tr.val_cache)):
        if cache is None:
            continue
        n = len(cache.dataset)
        t0 = time.perf_counter()
        for i in range(n):
            if stop.is_set():
                return
            cache.get(i)
            if (i + 1) % 8 == 0 or i + 1 == n:
                rate = (i + 1) / max(time.perf_counter() - t0, 1e-9)
                yield Progress(
                    i + 1,
                    n,
                    f"caching {name} features",
                    {"images_per_s": rate, "computed": cache.computed},
                )


def _validate_and_save(tr: Trainer) -> Generator[Progress, None, dict | None]:
    val = tr.validate()
    best = False
    if val is not None:
        best = tr.record_validation(val)
        rec = {"step": tr.step, "epoch": tr.epoch + 1, **val, "best": best}
        tr.run.log(rec)
        yield Progress(tr.step, tr.total_steps, "val", rec)
    tr.val_step = tr.step
    tr.save(val, best=best)
    if tr.dist.is_main:
        write_curves(tr.run.records(), tr.run.path)
    return val


class _Rate:
    """Smoothed step time for images/s and the ETA."""

    def __init__(self) -> None:
        self.avg: float | None = None
        self.t = time.perf_counter()

    def update(self) -> float:
        now = time.perf_counter()
        dt, self.t = now - self.t, now
        self.avg = dt if self.avg is None else 0.8 * self.avg + 0.2 * dt
        return dt


def _train_record(tr: Trainer, m: dict, timer: _Rate) -> dict:
    dt = timer.update()
    remaining = tr.total_steps - tr.step
    rec = {
        "step": tr.step,
        "epoch": tr.epoch + 1,  # counted from 1 for people (tr.epoch seeds the data)
        **{
            k: m[k]
            for k in ("loss", "focal", "dice", "iou", "cls", "rank", "lr", "grad_norm", "objects")
        },
    }
    rec["images_per_s"] = m["images"] / max(dt, 1e-9)
    rec["eta_s"] = remaining * (timer.avg or dt)
    rec["step_time"] = m["step_time"]
    return rec


class TrainJob:
    """A training run with a stop button: iterate it, or :meth:`run` it to the end.

    Args:
        cfg: The run configuration.
        resume: Continue the run in ``cfg.out``.
        overwrite: Replace an existing run in ``cfg.out``.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        resume: bool = False,
        overwrite: bool = False,
        features: Mapping[str, ImageFeatures] | None = None,
    ) -> None:
        self.cfg, self.resume, self.overwrite = cfg, resume, overwrite
        self.features = features
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the run to stop (thread-safe); a single-process run drops its unfinished step."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def __iter__(self) -> Generator[Progress, None, FitResult]:
        return iter_fit(self.cfg, self._stop, self.resume, self.overwrite, self.features)

    def run(self, show: bool = False) -> FitResult:
        """Run to the end (or the stop request); optionally draw a text progress bar."""
        return run_job(iter(self), show=show)


def fit(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> FitResult:
    """Train without progress output (see :func:`iter_fit`)."""
    return run_job(iter_fit(cfg, resume=resume, overwrite=overwrite), show=False)
