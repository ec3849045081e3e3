"""Model choices offered by the annotator.

In picker order: the built-in pets model (the default), Meta's checkpoints (cached ones load
directly, the others are downloaded in the loading worker first), recently loaded files, and
randomly initialised configs last.  Loading runs as a generator job (``load_choice_job``)
that yields :class:`~sam_pets.progress.Progress` records, so a download shows its progress.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path

from sam_pets._atomic import atomic_write_bytes
from sam_pets.model import hub
from sam_pets.paths import config_dir
from sam_pets.progress import Progress, run_job

BUILTIN_LABEL = "pets (built-in)"
OFFICIAL_TAG = " (Meta SAM "
RANDOM_PREFIX = "random weights: "
MAX_RECENT = 8


def recent_checkpoints() -> list[str]:
    """Recently loaded checkpoint paths that still exist, newest first."""
    path = config_dir() / "recent.json"
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [p for p in items if isinstance(p, str) and Path(p).is_file()][:MAX_RECENT]


def remember_checkpoint(path: str) -> None:
    """Put ``path`` first in the recent list (written atomically)."""
    path = str(Path(path).resolve())
    items = [path] + [p for p in recent_checkpoints() if p != path]
    atomic_write_bytes(config_dir() / "recent.json", json.dumps(items[:MAX_RECENT]).encode())


def remember_choice(choice: str) -> None:
    """Remember the picker entry of the model just loaded (opening the dock loads it again)."""
    atomic_write_bytes(config_dir() / "last_model.json", json.dumps({"choice": choice}).encode())


def default_choice() -> str:
    """The entry a new dock loads: the last one loaded if it loads offline, else the built-in.

    An official checkpoint counts only once cached and a file only while it exists, so
    opening the dock never starts a download.
    """
    try:
        choice = json.loads((config_dir() / "last_model.json").read_text())["choice"]
    except (OSError, ValueError, KeyError, TypeError):
        return BUILTIN_LABEL
    if not isinstance(choice, str):
        return BUILTIN_LABEL
    spec = choice_spec(choice)
    if spec in hub.OFFICIAL:
        return official_label(spec) if hub.is_cached(spec) else BUILTIN_LABEL
    if choice == BUILTIN_LABEL or choice.startswith(RANDOM_PREFIX) or Path(spec).is_file():
        return choice
    return BUILTIN_LABEL


def official_label(name: str) -> str:
    """Picker entry of an official checkpoint: its name, release and cache state."""
    entry = hub.OFFICIAL[name]
    version = "2.1" if name.startswith("sam2.1") else "2"
    state = "cached" if hub.is_cached(name) else f"downloads ~{entry.approx_mb} MB"
    return f"{name}{OFFICIAL_TAG}{version}, {state})"


def model_choices() -> list[str]:
    """Entries for the model picker: built-in, official, recent files, random configs."""
    official = [official_label(n) for n in hub.OFFICIAL]
    random = [RANDOM_PREFIX + n for n in ("test", "cpu_small", "tiny")]
    return [BUILTIN_LABEL, *official, *recent_checkpoints(), *random]


def choice_spec(choice: str) -> str:
    """What a picker entry stands for, as :func:`sam_pets.model.hub.resolve_model` reads it."""
    if choice == BUILTIN_LABEL:
        return hub.BUILTIN
    if choice.startswith(RANDOM_PREFIX):
        return hub.RANDOM_PREFIX + choice[len(RANDOM_PREFIX) :]
    name, tag, _ = choice.partition(OFFICIAL_TAG)
    if tag and name in hub.OFFICIAL and choice.endswith(")"):
        return name
    return choice  # a checkpoint file


def load_choice_job(choice: str) -> Generator[Progress, None, object]:
    """Load the model an entry names, downloading an official one first (in a worker)."""
    spec = choice_spec(choice)
    if spec in hub.OFFICIAL:
        res = yield from hub.download(spec)
        if not res.verified:
            warning = (
                f"no sha256 is known for {spec}: its keys and shapes match the "
                f"{hub.OFFICIAL[spec].config} config, but its content was not verified"
            )
            yield Progress(0, None, f"loading {spec}", {"warning": warning})
    yield Progress(0, None, f"loading {Path(spec).name}")
    try:
        model = hub.resolve_model(spec)
    except RuntimeError as e:  # superqt's generator workers drop RuntimeErrors silently
        raise ValueError(f"{spec}: {e}") from e
    if spec == choice and spec not in hub.model_names():
        remember_checkpoint(choice)
    return model


def load_predictor_job(
    choice: str, device: str, precision: str = "auto"
) -> Generator[Progress, None, object]:
    """:func:`load_choice_job`, then an ImagePredictor on ``device`` (the loading worker).

    The predictor zooms in on objects when that pays for the model by default
    (:func:`sam_pets.predict.zoom.default_for`); the Annotator's check box changes it.
    """
    from sam_pets.predict import ImagePredictor
    from sam_pets.predict.zoom import default_for

    model = yield from load_choice_job(choice)
    try:
        return ImagePredictor(model, device=device, precision=precision, zoom=default_for(model))
    except RuntimeError as e:  # see load_choice_job
        raise ValueError(f"cannot use device {device}: {e}") from e


def load_choice(choice: str):
    """Build or load the model an entry names, synchronously (see :func:`load_choice_job`)."""
    return run_job(load_choice_job(choice), show=False)


def progress_text(rec: Progress) -> str:
    """A status line for a loading job's Progress record (e.g. a download's MB)."""
    mb = rec.metrics.get("MB")
    detail = (
        f" {mb:.1f}/{rec.total / 1e6:.1f} MB" if mb is not None and rec.fraction is not None else ""
    )
    return rec.message + detail


def advance_pbar(worker, rec: Progress) -> None:
    """Mirror a job's Progress on the worker's napari progress bar.

    Call it last in a handler: napari's bar processes pending Qt events while it repaints,
    so the job's finished/errored handlers may run inside this call.
    """
    pbar = getattr(worker, "pbar", None)
    if pbar is not None and rec.total:
        if pbar.total != rec.total // 1000:
            pbar.total = rec.total // 1000  # kB: a Qt progress bar holds 32-bit ints
        pbar.update(rec.step // 1000 - pbar.n)


def available_devices() -> list[str]:
    """Device names for the picker: auto, cpu, and whatever accelerators torch sees."""
    import torch

    devs = ["auto", "cpu"]
    if torch.cuda.is_available():
        devs += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devs.append("mps")
    return devs
