"""Wall time of converting Oxford-IIIT Pet pairs to the canonical SAM 2 folder format.

Converts every pair of ../shared/data/oxford_pets_train (747) into a fresh temporary folder,
``--repeats`` times per worker count, and writes benchmarks/results/convert.md.

    python benchmarks/bench_convert.py [--src PATH] [--repeats 3] [--workers 0 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_SRC = REPO.parent / "shared" / "data" / "oxford_pets_train"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model  # noqa: E402


def run_once(src: Path, workers: int) -> tuple[float, int, int, int]:
    from sam_pets.data.convert import ConvertConfig, convert_oxford_pets
    from sam_pets.progress import run_job

    tmp = Path(tempfile.mkdtemp(prefix="bench_convert_"))
    try:
        t = time.perf_counter()
        summary = run_job(
            convert_oxford_pets(src, tmp / "ds", ConvertConfig(workers=workers)), show=False
        )
        wall = time.perf_counter() - t
        size = sum(p.stat().st_size for p in (tmp / "ds").rglob("*") if p.is_file())
        return wall, summary.converted, len(summary.skipped), size
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 1],
        help="thread counts to time (0 = the default, min(4, CPUs))",
    )
    args = ap.parse_args()
    if not args.src.is_dir():
        sys.exit(f"source not found: {args.src}")
    import torch

    load_before = os.getloadavg()[0]
    rows = []
    for workers in args.workers:
        runs = [run_once(args.src, workers) for _ in range(args.repeats)]
        walls = [r[0] for r in runs]
        _, converted, skipped, size = runs[0]
        med = statistics.median(walls)
        label = (
            f"{workers} (default: {min(4, os.cpu_count() or 1)})" if workers == 0 else str(workers)
        )
        rows.append(
            f"| {label} | {converted} | {skipped} | {med:.2f} s | {min(walls):.2f} s | "
            f"{converted / med:.0f} | {size / 1e6:.1f} MB |"
        )
        print(rows[-1], flush=True)
    cmd = "python " + " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])
    text = "\n".join(
        [
            "### Dataset conversion: Oxford-IIIT Pet -> canonical SAM 2 folder",
            "",
            f"- Machine: {cpu_model()}, `nproc` {os.cpu_count()}, Python "
            f"{platform.python_version()}, torch {torch.__version__} (not used by conversion)",
            f"- Command: `PYTHONPATH=src {cmd}`",
            f"- Input: `{os.path.relpath(args.src, REPO)}` (747 image/trimap pairs, ~75 MB); "
            f"median of {args.repeats} runs, each into a fresh temporary folder (source files in "
            "the OS page cache after the first run)",
            f"- Host load: 1-min load average {load_before:.2f} before the first run "
            "(other processes on a shared machine slow the threaded runs most)",
            "- Work per pair: full JPEG decode to verify it (bytes then copied unchanged), trimap "
            "decode and check, palette PNG + ignore PNG written atomically, SHA-256; then split, "
            "manifest and lists",
            "",
            "| threads | converted | skipped | wall (median) | wall (best) | items/s | output |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
        ]
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "convert.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
