"""Small HTML helpers for the reports, and the rule for report folders.

Reports are static pages next to their PNG/JSON/CSV files; every value is escaped.
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from sam_pets.data.errors import BadInputError

REPORT_MARKERS = ("index.html", "metrics.json", "results.json")

_STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:4px 0}.note{color:#555;font-size:90%}"""


def check_report_dir(out: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an ``out`` that is a file, or that holds a report when ``overwrite`` is False.

    Called before any work, so a long run never ends in a refusal. Creates nothing.

    Raises:
        BadInputError: As above.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} exists and is not a folder")
    if any((out / m).exists() for m in REPORT_MARKERS) and not overwrite:
        raise BadInputError(f"{out} already holds a report; use --overwrite to replace it")
    return out


def clear_report_dir(out: str | os.PathLike, owned: Sequence[str]) -> Path:
    """Create ``out`` and remove an earlier report's own files (``owned``: names or globs).

    Other files in the folder are left alone. Call it after :func:`check_report_dir`, right
    before writing the new report (so a failed run leaves the old report intact).
    """
    out = Path(out)
    for pattern in owned:
        for p in out.glob(pattern):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


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
