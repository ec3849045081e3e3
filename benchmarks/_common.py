"""Helpers shared by the benchmark scripts: machine description and report snippets."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SAM_PETS_SHARED", REPO.parent / "shared"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    import torch

    gpu = ""
    if torch.cuda.is_available():
        gpu = f", GPU {torch.cuda.get_device_name(0)}"
    n = torch.get_num_threads()
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({n} thread{'s' if n != 1 else ''}), Python {platform.python_version()}{gpu}"
    )


def command() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])


def median_ms(fn, repeats: int, sync=None) -> float:
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def write_snippet(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text.rstrip() + "\n")
    subprocess.run([sys.executable, str(Path(__file__).with_name("make_report.py"))], check=False)
    return path


def cpu_bf16() -> str:
    """Which bf16 instructions the CPU has (from /proc/cpuinfo), in words."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    have = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return ", ".join(have) if have else "no AMX or AVX512-BF16 (bf16 has no fast path)"
