"""Errors raised for bad input files."""

from __future__ import annotations

import os
from collections.abc import Sequence

from sam_pets.data.types import FileIssue


class BadInputError(ValueError):
    """A source file cannot be used; the message is the per-file reason shown to the user."""


class BadItemError(BadInputError):
    """One item of a canonical dataset cannot be read; the other items are still usable.

    Raised only by the item readers of :mod:`sam_pets.data.formats.sam2_folder`, so every
    batch job (evaluation, robustness, training, export) can skip such an item the same way:
    catch this type, record ``(item, reason)`` and go on with the rest.

    Attributes:
        item: The item's name.
        reason: What is wrong, naming the file ("image file missing: ...").
    """

    def __init__(self, item: str, reason: str) -> None:
        super().__init__(f"item {item!r}: {reason}")
        self.item, self.reason = item, reason

    def __reduce__(self):
        return type(self), (self.item, self.reason)


def skip_item(err: BadItemError, skipped: list[FileIssue]) -> str:
    """Record an unreadable item in ``skipped``; returns the notice line for the user."""
    skipped.append(FileIssue(err.item, err.reason))
    return f"skipped item {err.item!r}: {err.reason}"


def no_readable_items(root: str | os.PathLike, skipped: Sequence[FileIssue]) -> BadInputError:
    """The one error of a job whose every item was skipped (it names the first reasons).

    Args:
        root: The dataset folder.
        skipped: The skipped items (``source`` is the item name).
    """
    shown = "; ".join(f"item {i.source!r}: {i.reason}" for i in skipped[:3])
    more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
    return BadInputError(f"{root}: none of the {len(skipped)} items can be read: {shown}{more}")
