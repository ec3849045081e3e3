"""Sample pet photos shipped with sam-pets (Oxford-IIIT Pet, CC BY-SA 4.0; see ATTRIBUTION.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SAMPLES = ("Bengal_63.jpg",)


def sample_path(name: str = SAMPLES[0]) -> Path:
    """Filesystem path of a shipped sample photo."""
    if name not in SAMPLES:
        raise KeyError(f"unknown sample {name!r}; available: {', '.join(SAMPLES)}")
    return Path(str(resources.files(__name__).joinpath(name)))
