"""Progress records and run_job: notices reach the user with or without the bar."""

from __future__ import annotations

import io

import pytest

from sam_pets.progress import Progress, run_job


def _job():
    yield Progress(1, 3, "a")
    yield Progress(2, 3, "b", notice="skipped item 'b': image file missing: x.jpg")
    yield Progress(3, 3, "c")
    return "done"


@pytest.mark.parametrize("show", [False, True])
def test_notices_are_written_as_lines(show):
    stream = io.StringIO()
    assert run_job(_job(), show=show, stream=stream) == "done"
    lines = stream.getvalue().splitlines()
    assert "skipped item 'b': image file missing: x.jpg" in lines
    assert len(lines) == (1 if not show else 3)  # the bar: first and last record, plain lines
