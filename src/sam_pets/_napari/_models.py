"""Model choices offered by the annotator: checkpoint files (recent ones remembered) and configs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sam_pets.model.checkpoint import atomic_write_bytes

RANDOM_PREFIX = "random weights: "
MAX_RECENT = 8


def config_dir() -> Path:
    """Per-user settings folder (``$SAM_PETS_CONFIG_DIR`` or ``$XDG_CONFIG_HOME/sam-pets``)."""
    env = os.environ.get("SAM_PETS_CONFIG_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sam-pets"


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


def model_choices() -> list[str]:
    """Entries for the model picker: recent files, then randomly initialised configs."""
    return recent_checkpoints() + [RANDOM_PREFIX + n for n in ("test", "cpu_small", "tiny")]


def load_choice(choice: str):
    """Build or load the model an entry names (runs in a worker thread)."""
    from sam_pets.model import build_model, load_model

    if choice.startswith(RANDOM_PREFIX):
        return build_model(choice[len(RANDOM_PREFIX) :], seed=0)
    model = load_model(choice)
    remember_checkpoint(choice)
    return model


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
