"""Argument types shared by the subcommands: a bad value stops at parse time with one line."""

from __future__ import annotations

import argparse
import math


def device(text: str) -> str:
    """A device name this machine has (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
    if text == "auto":
        return text
    from sam_pets.model.device import select_device

    try:
        select_device(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def add_zoom_arg(p: argparse.ArgumentParser) -> None:
    """``--zoom/--no-zoom`` (default None: :func:`sam_pets.predict.zoom.default_for`)."""
    p.add_argument(
        "--zoom",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="zoom in on the object: predict again in a crop around the box or the first "
        "mask (default: on for models with an input under 1024 px, such as the built-in "
        "pets model; off for Meta's)",
    )


def zoom_choice(args, model) -> bool:
    """The zoom setting of parsed ``args`` for ``model`` (its default when not given)."""
    from sam_pets.predict.zoom import default_for

    return default_for(model) if args.zoom is None else bool(args.zoom)


def probability(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def finite_floats(text: str, n: int, what: str) -> list[float]:
    """``n`` comma-separated finite numbers (no nan or inf)."""
    parts = text.replace(" ", "").split(",")
    try:
        vals = [float(v) for v in parts]
    except ValueError:
        vals = []
    if len(vals) != n:
        raise argparse.ArgumentTypeError(
            f"{what} must be {n} comma-separated numbers, got {text!r}"
        )
    if not all(math.isfinite(v) for v in vals):
        raise argparse.ArgumentTypeError(f"{what} must be finite numbers, got {text!r}")
    return vals


def add_model_choice(p: argparse.ArgumentParser, default_model: str = "pets") -> None:
    """``--model``/``--checkpoint`` (one option) or ``--config``: the model a command uses.

    A model name (``pets``, the built-in model and the default; a Meta checkpoint downloaded
    with ``sam-pets download``; ``random:CONFIG``) or a checkpoint file; ``--config NAME``
    asks for random weights explicitly.
    """
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        metavar="NAME|FILE",
        help=f"model name ({default_model}: the built-in model, the default; a Meta checkpoint "
        "from `sam-pets download`; random:CONFIG) or a checkpoint file (Meta .pt, Hugging Face "
        ".safetensors, sam-pets)",
    )
    g.add_argument(
        "--config",
        metavar="NAME",
        default=None,
        help="build a randomly initialised model of this config (smoke tests)",
    )
    p.set_defaults(default_model=default_model)
