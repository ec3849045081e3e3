"""The run directory: config, metrics.jsonl, curves, model checkpoints and resume state.

Layout::

    RUN/config.yaml     the TrainConfig (loads back with load_config)
    RUN/metrics.jsonl   one JSON object per logged step and per validation
    RUN/loss.png        training loss curves;  RUN/val.png  validation mIoU / Dice
    RUN/last.pt         latest weights (Meta layout + sam_pets metadata, LoRA merged)
    RUN/best.pt         weights of the best validation mIoU (same format)
    RUN/state.pt        resume state: unmerged weights, optimiser, scheduler, scaler, RNG,
                        data position (plain tensors and numbers; loads with weights_only)
    RUN/.lock           while a run trains in the folder: its process id and host

The lock keeps a second run (a new one with ``--overwrite``, or a ``--resume``) out of a
folder that a live run is writing; a lock left by a process that is gone is taken over.

Every file is written atomically (temp file + rename), so an interrupted run never leaves
a truncated checkpoint behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import time
import weakref
from pathlib import Path

import torch

from sam_pets._atomic import atomic_write_bytes, process_alive
from sam_pets.model import Sam2Image, build_model, save_checkpoint
from sam_pets.model.checkpoint import CheckpointError, torch_load_file
from sam_pets.train.config import TrainConfig, dump_config, load_config
from sam_pets.train.lora import has_lora, merged_state_dict

OWN_FILES = (
    "config.yaml",
    "metrics.jsonl",
    "loss.png",
    "val.png",
    "last.pt",
    "best.pt",
    "state.pt",
)
LOCK = ".lock"
_LOCK_GRACE_S = 10.0  # an unreadable lock younger than this is being written: in use
_HELD: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # this process's locks


class RunInUseError(FileExistsError):
    """A live training run holds the folder."""


class RunDir:
    """Files of one run.

    Args:
        path: The run folder.
        write: False on ranks other than 0: every write becomes a no-op.
    """

    def __init__(self, path: str | Path, write: bool = True) -> None:
        self.path = Path(path)
        self.write = write
        self._made_folder = False
        self._locked = False

    def file(self, name: str) -> Path:
        """Path of a file in the run."""
        return self.path / name

    def prepare(self, cfg: TrainConfig, resume: bool, overwrite: bool) -> None:
        """:meth:`check`, then :meth:`create`."""
        self.check(resume, overwrite)
        self.create(cfg, resume)

    def check(self, resume: bool, overwrite: bool) -> None:
        """Refuse to clobber an existing run; writes nothing.

        Raises:
            FileExistsError: the folder holds a run and neither ``resume`` nor ``overwrite``;
                or it holds files with a run's names but no ``config.yaml`` (not a run:
                ``overwrite`` never deletes them).
            NotADirectoryError: the path is a file.
            FileNotFoundError: ``resume`` without a saved state.
            RunInUseError: a live run holds the folder's lock.
        """
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"{self.path} exists and is not a folder")
        self._refuse_if_in_use()
        existing = [n for n in OWN_FILES if self.file(n).exists()]
        if resume:
            if not self.file("state.pt").exists():
                raise FileNotFoundError(f"{self.path}: no state.pt to resume from")
        elif existing and not self.file("config.yaml").exists():
            raise FileExistsError(
                f"{self.path} holds {', '.join(existing)} but no sam-pets run (no config.yaml); "
                "choose a new or empty folder"
            )
        elif existing and not overwrite:
            raise FileExistsError(
                f"{self.path} already holds a run ({', '.join(existing)}); "
                "use --resume to continue it or --overwrite to replace it"
            )

    def create(self, cfg: TrainConfig, resume: bool) -> None:
        """Create the folder, remove an earlier run's files (unless resuming), write the config.

        Call it only after :meth:`check` and once everything else has been validated (model,
        data, optimiser), so a run that cannot start leaves no files behind.
        """
        if not self.write:
            return
        self._made_folder = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._acquire()
        if not resume:
            for n in OWN_FILES:
                self.file(n).unlink(missing_ok=True)
        atomic_write_bytes(self.file("config.yaml"), dump_config(cfg).encode())

    def discard(self) -> None:
        """Remove a new run that failed before it saved anything to resume from.

        Only the run's own files go, and the folder only if :meth:`create` made it and it is
        now empty; the same command can then simply be run again. Never call it on a resumed
        run (its files are an earlier run's work).
        """
        self.release()
        if not self.write or self.file("state.pt").exists():
            return
        for n in OWN_FILES:
            self.file(n).unlink(missing_ok=True)
        if self._made_folder:
            with contextlib.suppress(OSError):  # not empty: other files are there
                self.path.rmdir()

    def release(self) -> None:
        """Remove this run's lock (the run has ended, however)."""
        if self._locked:
            self._locked = False
            _HELD.pop(str(self.path.resolve()), None)
            self.file(LOCK).unlink(missing_ok=True)

    def _acquire(self) -> None:
        if self._locked:
            return
        for _ in range(3):
            try:
                fd = os.open(self.file(LOCK), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._refuse_if_in_use()
                self.file(LOCK).unlink(missing_ok=True)  # left by a process that is gone
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname()}, f)
            self._locked = True
            _HELD[str(self.path.resolve())] = self
            return
        raise RunInUseError(f"{self.path}: could not take the run folder's lock ({LOCK})")

    def _refuse_if_in_use(self) -> None:
        holder = self._lock_holder()
        if holder is not None:
            raise RunInUseError(
                f"{self.path} is in use by {holder}; wait for that run to end or stop it "
                f"(if no run uses the folder, delete {self.file(LOCK)})"
            )

    def _lock_holder(self) -> str | None:
        """Who holds the lock, if it is held by a live process; None when free or stale."""
        lock = self.file(LOCK)
        try:
            info = json.loads(lock.read_text())
            pid, host = int(info["pid"]), str(info["host"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):  # being written, or garbage
            try:
                young = time.time() - lock.stat().st_mtime < _LOCK_GRACE_S
            except FileNotFoundError:
                return None
            return "another run (starting)" if young else None
        if host != socket.gethostname():
            return f"process {pid} on {host}"
        if pid == os.getpid():
            held = _HELD.get(str(self.path.resolve()))
            return "another run in this process" if held not in (None, self) else None
        return f"process {pid}" if process_alive(pid, host) else None

    def read_config(self) -> TrainConfig:
        """The saved config of this run."""
        return load_config(self.file("config.yaml"))

    def log(self, record: dict) -> None:
        """Append one metrics record (a JSON line)."""
        if self.write:
            with open(self.file("metrics.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        """All metrics records so far (a line cut short by a crash is skipped)."""
        p = self.file("metrics.jsonl")
        if not p.exists():
            return []
        out = []
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def truncate_log(self, step: int) -> None:
        """Drop records after ``step`` (a resumed run re-logs them)."""
        if self.write and self.file("metrics.jsonl").exists():
            kept = [r for r in self.records() if r.get("step", 0) <= step]
            text = "".join(json.dumps(r) + "\n" for r in kept)
            atomic_write_bytes(self.file("metrics.jsonl"), text.encode())

    def save_model(self, model: Sam2Image, name: str, metadata: dict) -> Path | None:
        """Write ``name`` (last.pt / best.pt) in Meta layout, adapters merged."""
        if not self.write:
            return None
        return save_checkpoint(
            plain_model(model), self.file(name), metadata={"train": metadata}, overwrite=True
        )

    def save_state(self, state: dict) -> None:
        """Write the resume state atomically."""
        if self.write:
            buf = io.BytesIO()
            torch.save(state, buf)
            atomic_write_bytes(self.file("state.pt"), buf.getvalue())

    def load_state(self) -> dict:
        """Read the resume state (tensors and plain numbers only).

        Raises:
            CheckpointError: state.pt is truncated, corrupt or holds other pickled objects.
        """
        state = torch_load_file(self.file("state.pt"))
        if not isinstance(state, dict) or "model" not in state:
            raise CheckpointError(self.file("state.pt"), "not a sam-pets resume state")
        return state


def plain_model(model: Sam2Image) -> Sam2Image:
    """``model`` itself, or a copy on the CPU with its LoRA adapters merged."""
    if not has_lora(model):
        return model
    plain = build_model(model.cfg, device="cpu")
    plain.load_state_dict({k: v.cpu() for k, v in merged_state_dict(model).items()}, strict=True)
    plain.extra_state = dict(model.extra_state)
    return plain
