"""Per-user folders and the environment variables that move them (stdlib only).

The one place sam-pets decides where its per-user files go:

- cache (downloaded checkpoints): ``$SAM_PETS_CACHE_DIR``, else ``$XDG_CACHE_HOME/sam-pets``,
  else ``~/.cache/sam-pets``;
- data (fine-tune runs, the annotation journal): ``$SAM_PETS_DATA_DIR``, else
  ``$XDG_DATA_HOME/sam-pets``, else ``~/.local/share/sam-pets``;
- config (recently used checkpoints): ``$SAM_PETS_CONFIG_DIR``, else
  ``$XDG_CONFIG_HOME/sam-pets``, else ``~/.config/sam-pets``.

Never the package folder or the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SAM_PETS_CACHE_DIR"
DATA_ENV = "SAM_PETS_DATA_DIR"
CONFIG_ENV = "SAM_PETS_CONFIG_DIR"


def _user_dir(env: str, xdg: str, fallback: tuple[str, ...]) -> Path:
    own = os.environ.get(env)
    if own:
        return Path(own).expanduser()
    base = os.environ.get(xdg) or str(Path.home().joinpath(*fallback))
    return Path(base) / "sam-pets"


def cache_dir() -> Path:
    """Per-user cache folder (downloaded checkpoints)."""
    return _user_dir(CACHE_ENV, "XDG_CACHE_HOME", (".cache",))


def data_dir() -> Path:
    """Per-user data folder (fine-tune runs, the annotation journal)."""
    return _user_dir(DATA_ENV, "XDG_DATA_HOME", (".local", "share"))


def config_dir() -> Path:
    """Per-user settings folder."""
    return _user_dir(CONFIG_ENV, "XDG_CONFIG_HOME", (".config",))
