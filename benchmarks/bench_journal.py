"""What journaling a commit costs: the GUI thread's share and the disk write, 500 x 375 photo.

The Annotator hands each commit's label plane to the journal's writer thread
(:class:`sam_pets.data.journal.JournalWriter`); the GUI thread pays for hashing nothing (the
photo's key is computed once) and copying the plane. The write (zlib, atomic replace, fsync)
happens on the writer thread. Both are timed here, with the photo's key for reference.

    python benchmarks/bench_journal.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, machine, median_ms, write_snippet  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from sam_pets.data.fsutil import image_key
    from sam_pets.data.journal import Journal, JournalWriter
    from sam_pets.predict.images import read_image
    from sam_pets.samples import sample_path

    image = read_image(sample_path())  # 500 x 375
    labels = np.zeros(image.shape[:2], np.uint16)
    rng = np.random.default_rng(0)
    for k in range(1, 6):  # five objects
        y, x = rng.integers(0, 300), rng.integers(0, 420)
        labels[y : y + 70, x : x + 80] = k
    objects = {k: {"prompts": {"points": [[1.0, 2.0]], "labels": [1]}} for k in range(1, 6)}
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "j")
        key = image_key(image)
        key_ms = median_ms(lambda: image_key(image), args.repeats)
        write_ms = median_ms(lambda: journal.record(key, labels, objects, {}), args.repeats)
        writer = JournalWriter(Journal(Path(tmp) / "w"))
        times = []
        for i in range(args.repeats):
            labels[0, 0] = i % 5
            t = time.perf_counter()
            writer.submit(key, labels, objects, {})
            times.append(time.perf_counter() - t)
            writer.flush(10)
        submit_ms = float(np.median(times)) * 1e3
    text = "\n".join(
        [
            "### Annotation journal: cost of a commit (500 x 375 photo, 5 objects)",
            "",
            f"- Machine: {machine()}",
            f"- Command: `{command()}`",
            "",
            "| step | median ms | where |",
            "| --- | ---: | --- |",
            f"| hand the plane to the journal (copy + queue) | {submit_ms:.3f} | GUI thread, "
            "every commit |",
            f"| write the record (zlib, atomic replace, fsync) | {write_ms:.2f} | writer thread |",
            f"| key of the photo (BLAKE2b of its pixels) | {key_ms:.2f} | once per image plane |",
            "",
            "Goal: <= 5 ms per commit on the GUI thread.",
        ]
    )
    print(text)
    if not args.no_write:
        write_snippet("journal", text)


if __name__ == "__main__":
    main()
