"""Errors raised for bad input files."""

from __future__ import annotations


class BadInputError(ValueError):
    """A source file cannot be used; the message is the per-file reason shown to the user."""
