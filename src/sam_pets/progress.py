"""Progress records yielded by long-running core jobs (convert, train, eval...).

Core code never touches a UI: a long job is a generator that yields :class:`Progress`
records.  The CLI renders them as a progress bar; napari runs the generator in a
``thread_worker`` and forwards them to its activity dock.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class Notice(UserWarning):
    """A line for the user from core code that has no job records to put it in.

    Raised with :func:`warnings.warn`: the CLI prints it as ``sam-pets CMD: note: ...``
    and napari shows warnings as notifications.
    """


@dataclass(frozen=True)
class Progress:
    """One progress update.

    Attributes:
        step: Units done so far (images converted, optimiser steps...).
        total: Units in all, or ``None`` when unknown.
        message: Short human-readable status ("converting Abyssinian_1.jpg").
        metrics: Numbers worth showing or logging (loss, lr, images/s...).
        notice: A line the user should see even when the bar is not drawn, e.g. "skipped
            item 'x': image file missing: ..."; empty for none.
    """

    step: int
    total: int | None = None
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    notice: str = ""

    @property
    def fraction(self) -> float | None:
        """Fraction done in [0, 1], or ``None`` if the total is unknown."""
        if not self.total:
            return None
        return min(1.0, self.step / self.total)


def run_job(job: Generator[Progress, None, T], show: bool = True, stream=None) -> T:
    """Drive a job generator to completion, drawing a text progress bar; return its result.

    Notices (:attr:`Progress.notice`) are written to ``stream`` as lines even without the bar.
    """
    stream = stream or sys.stderr
    bar = TextProgressBar(stream) if show else None
    try:
        while True:
            rec = next(job)
            if bar:
                bar.update(rec)
            elif rec.notice:
                stream.write(rec.notice + "\n")
                stream.flush()
    except StopIteration as stop:
        if bar:
            bar.close()
        return stop.value
    except BaseException:  # e.g. Ctrl-C while drawing: let the job clean up now, not at exit
        job.close()
        raise


class TextProgressBar:
    """Minimal dependency-free progress bar for terminals (plain lines when not a TTY)."""

    def __init__(self, stream, width: int = 30, min_interval: float = 0.1) -> None:
        self.stream = stream
        self.width = width
        self.min_interval = min_interval
        self._last = 0.0
        self._start = time.monotonic()
        self._tty = hasattr(stream, "isatty") and stream.isatty()
        self._drawn = False

    def update(self, rec: Progress) -> None:
        """Redraw for a new record (rate-limited); a notice is always written as its own line."""
        if rec.notice:
            self._notice(rec.notice)
        now = time.monotonic()
        done = rec.total is not None and rec.step >= rec.total
        if now - self._last < self.min_interval and not done:
            return
        self._last = now
        frac = rec.fraction
        if frac is not None:
            filled = int(self.width * frac)
            bar = "#" * filled + "-" * (self.width - filled)
            head = f"[{bar}] {rec.step}/{rec.total}"
        else:
            head = f"[{rec.step}]"
        elapsed = now - self._start
        metrics = " ".join(f"{k}={_fmt(v)}" for k, v in rec.metrics.items())
        line = f"{head} {elapsed:6.1f}s {rec.message} {metrics}".rstrip()
        if self._tty:
            self.stream.write("\r" + line[:200].ljust(120))
        elif done or not self._drawn or frac is None:
            self.stream.write(line + "\n")
        self._drawn = True
        self.stream.flush()

    def _notice(self, text: str) -> None:
        if self._tty and self._drawn:
            self.stream.write("\r" + " " * 120 + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Finish the line."""
        if self._tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
