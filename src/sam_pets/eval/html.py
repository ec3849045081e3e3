"""Small HTML helpers for the reports, and the rule for report folders.

Reports are static pages next to their PNG/JSON/CSV files; every value is escaped.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from sam_pets._atomic import atomic_write_text
from sam_pets.data.errors import BadInputError

REPORT_MANIFEST = "report_files.json"  # the files a report wrote: only these are replaced

_STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:4px 0}.note{color:#555;font-size:90%}"""


def check_report_dir(
    out: str | os.PathLike, overwrite: bool, replace_hint: str = "use --overwrite to replace it"
) -> Path:
    """Refuse an ``out`` that cannot take a new report; creates nothing.

    A missing or empty folder is fine. A folder with an earlier report of ours (one with a
    :data:`REPORT_MANIFEST`) needs ``overwrite``. Any other non-empty folder is refused,
    whatever ``overwrite`` says: it may hold the user's own files. Called before any work,
    so a long run never ends in a refusal. ``replace_hint`` ends the message about an earlier
    report (the command line's; a window says what its user can do).

    Raises:
        BadInputError: As above, or the folder's report manifest is unreadable.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"{out} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return out
    if not (out / REPORT_MANIFEST).is_file():
        raise BadInputError(
            f"{out} is not empty and holds no sam-pets report (no {REPORT_MANIFEST}); "
            "refusing to write into it (choose a new or empty folder)"
        )
    report_files(out)  # a broken manifest is an error now, not after the run
    if not overwrite:
        raise BadInputError(f"{out} already holds a report; {replace_hint}")
    return out


def report_files(out: str | os.PathLike) -> list[str]:
    """The files (relative to ``out``) that the report in ``out`` lists as its own.

    Returns:
        The listed names; empty when ``out`` has no manifest.

    Raises:
        BadInputError: The manifest is not JSON, or lists a name outside ``out``.
    """
    path = Path(out) / REPORT_MANIFEST
    if not path.is_file():
        return []
    try:
        names = json.loads(path.read_text(encoding="utf-8"))["files"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError("'files' must be a list of names")
    except (ValueError, KeyError, TypeError) as e:
        raise BadInputError(f"{path}: not a sam-pets report manifest ({e})") from None
    for name in names:
        rel = PurePosixPath(name)
        if not name or rel.is_absolute() or ".." in rel.parts:
            raise BadInputError(f"{path}: lists {name!r}, which is not inside the folder")
    return names


def clear_report_dir(out: str | os.PathLike) -> Path:
    """Create ``out`` and remove the files an earlier report wrote there (its manifest's list).

    Nothing else is touched; a sub-folder the report made goes only when it ends up empty.
    Call it after :func:`check_report_dir`, right before writing the new report (so a failed
    run leaves the old report intact).
    """
    out = Path(out)
    for name in report_files(out):
        p = out / name
        if p.is_symlink() or p.is_file():
            p.unlink()
        for parent in PurePosixPath(name).parents[:-1]:  # sub-folders, deepest first
            with contextlib.suppress(OSError):  # not empty: someone else's files are there
                (out / parent).rmdir()
    (out / REPORT_MANIFEST).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


class ReportFiles:
    """Paths for a report's files, each listed in ``out``/:data:`REPORT_MANIFEST` first.

    The manifest is rewritten (atomically) before each new file is written, so even an
    interrupted report can be replaced later without touching anything else in the folder.

    Args:
        out: The report folder (created if needed).
    """

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.names = report_files(self.out)

    def path(self, name: str) -> Path:
        """Record ``name`` (a '/'-separated path relative to ``out``) and return its path."""
        if name not in self.names:
            self.names.append(name)
            doc = {"generator": "sam-pets", "files": self.names}
            atomic_write_text(self.out / REPORT_MANIFEST, json.dumps(doc, indent=1))
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def fmt(v, digits: int = 3) -> str:
    """A table cell: floats rounded, None as an en dash."""
    if v is None:
        return "\u2013"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """An HTML table with escaped cells."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def skipped_section(skipped: Sequence[dict]) -> list[tuple[str, str]]:
    """A "Skipped items" section for ``{"item", "reason"}`` records; none when empty."""
    if not skipped:
        return []
    rows = [[s["item"], s["reason"]] for s in skipped]
    return [(f"Skipped items ({len(rows)})", table(["item", "reason"], rows))]


def skipped_note(skipped: Sequence[dict]) -> str:
    """The note " (N unreadable items skipped, listed below)" for an intro; empty if none."""
    n = len(skipped)
    return f" ({n} unreadable item{'s' * (n != 1)} skipped, listed below)" if n else ""


def image(src: str, alt: str) -> str:
    """A linked picture (click opens the full-size PNG)."""
    s, a = html.escape(src), html.escape(alt)
    return f'<p><a href="{s}"><img src="{s}" alt="{a}"></a></p>'


def page(title: str, sections: Sequence[tuple[str, str]], intro: str = "") -> str:
    """A full HTML page: title, intro paragraph, then ``(heading, html)`` sections."""
    parts = [f"<h2>{html.escape(h)}</h2>\n{body}" for h, body in sections]
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f"<p class='note'>{html.escape(intro)}</p>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
