"""``sam-pets`` command line: parse arguments, build config dataclasses, call the core.

Exit status: 0 when everything was done; 1 when the job finished but left items out
(``convert`` with nothing converted; ``eval``, ``robustness``, ``train`` and ``export`` when
they skipped unreadable items: each is named on its own line as it is skipped and again at the
end); 2 for a user error (one line on stderr, nothing written); 130 when interrupted; 141,
silently, when stdout is a pipe whose reader has gone (``| head``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from sam_pets import __version__
from sam_pets.progress import Notice

# Each module registers its subcommands with ``register(subparsers)`` and sets ``func``.
_COMMAND_MODULES = (
    "sam_pets.cli.model_cmds",
    "sam_pets.cli.data_cmds",
    "sam_pets.cli.train_cmds",
    "sam_pets.cli.hub_cmds",
    "sam_pets.cli.eval_cmds",
    "sam_pets.cli.journal_cmds",
    "sam_pets.cli.segment_cmds",
    "sam_pets.cli.track_cmds",
)


SKIPPED_EXIT = 1
PIPE_CLOSED_EXIT = 141  # 128 + SIGPIPE, what a shell reports for a writer killed by it


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def skipped_status(command: str, items: list[str]) -> int:
    """Print the closing line about skipped items (stderr); return the exit status."""
    if not items:
        return 0
    names = ", ".join(repr(n) for n in items[:10]) + (" ..." if len(items) > 10 else "")
    plural = "s" * (len(items) != 1)
    print(
        f"sam-pets {command}: skipped {len(items)} unreadable item{plural}: {names}",
        file=sys.stderr,
    )
    return SKIPPED_EXIT


def build_parser() -> argparse.ArgumentParser:
    """The full ``sam-pets`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="sam-pets",
        description="SAM 2 segmentation, fine-tuning and evaluation (headless).",
    )
    parser.add_argument("--version", action="version", version=f"sam-pets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("always", Notice)
        warnings.showwarning = _notice_printer(args.command, warnings.showwarning)
        return _run(args)


def _notice_printer(command: str, other):
    """A ``warnings.showwarning`` that prints a :class:`Notice` as one line on stderr."""

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, Notice):
            print(f"sam-pets {command}: note: {message}", file=sys.stderr)
        else:
            other(message, category, filename, lineno, file, line)

    return show


def _run(args: argparse.Namespace) -> int:
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not after main returned
        return status
    except BrokenPipeError:  # the reader left early (`sam-pets download --list | head -1`)
        _discard_stdout()
        return PIPE_CLOSED_EXIT
    except CliError as e:
        print(f"sam-pets {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"sam-pets {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except OSError as e:  # missing files, folders in the way, permissions, full disks
        print(f"sam-pets {args.command}: error: {_os_error_text(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sam-pets {args.command}: interrupted", file=sys.stderr)
        return 130


def _discard_stdout() -> None:
    """Point stdout at os.devnull so that the interpreter's last flush does not fail again."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a real file (a test's capture): nothing to flush later
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _os_error_text(e: OSError) -> str:
    """``FILE: reason`` for an OSError that carries a file name, else its own message."""
    if e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return str(e)
