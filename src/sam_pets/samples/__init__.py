"""Sample pet photos shipped with sam-pets (Oxford-IIIT Pet, CC BY-SA 4.0; see ATTRIBUTION.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SAMPLES = ("Bengal_63.jpg",)
TRIMAPS = {"Bengal_63.jpg": "Bengal_63_trimap.png"}


def sample_path(name: str = SAMPLES[0]) -> Path:
    """Filesystem path of a shipped sample photo."""
    if name not in SAMPLES:
        raise KeyError(f"unknown sample {name!r}; available: {', '.join(SAMPLES)}")
    return Path(str(resources.files(__name__).joinpath(name)))


def trimap_path(name: str = SAMPLES[0]) -> Path:
    """Filesystem path of a shipped sample photo's trimap (1 pet, 2 background, 3 border)."""
    if name not in TRIMAPS:
        raise KeyError(f"no trimap for sample {name!r}; available: {', '.join(TRIMAPS)}")
    return Path(str(resources.files(__name__).joinpath(TRIMAPS[name])))
