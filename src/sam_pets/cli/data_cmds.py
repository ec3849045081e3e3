"""Dataset subcommands: ``convert`` and ``export`` (see sam_pets.data)."""

from __future__ import annotations


def register(sub) -> None:
    """Add the dataset subcommands to the ``sam-pets`` parser."""
