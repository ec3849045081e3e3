"""CPU compute threads: keep at most one OpenMP thread team alive at a time.

PyTorch runs its CPU kernels in OpenMP parallel regions.  With GNU OpenMP (what the PyPI
wheels bundle) every thread that starts a parallel region gets its own team of helper threads,
kept for as long as that thread lives.  As soon as the helpers of all teams outnumber the
cores, libgomp stops letting idle helpers spin and puts them to sleep after a few spins, so
every later parallel region pays a kernel wake-up.  A GUI application computes in worker
threads, and the main thread (which built the model) keeps its team: on a 2-core machine a
SAM 2 click then costs ~60 % more in the worker than on the main thread, and small kernels
are up to 8x slower (``benchmarks/bench_annotator.py`` measures the click).

:func:`release_cpu_threads` frees the calling thread's team (OpenMP 5
``omp_pause_resource_all``); the next parallel region of that thread builds a new one.
Long-lived compute threads keep their team; short-lived jobs and the GUI thread release it.
"""

from __future__ import annotations

import ctypes
import functools
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch

_OMP_PAUSE_SOFT = 1
_RUNTIME = re.compile(r"lib(g|i|i5)?omp[^/]*\.(so[.0-9]*|dylib)$")


def _candidates() -> list[str]:
    """Paths of OpenMP runtimes: torch's own first, then any other one loaded here."""
    torch_lib = Path(torch.__file__).resolve().parent / "lib"
    found = sorted(str(p) for p in torch_lib.glob("*omp*") if _RUNTIME.search(p.name))
    maps = Path("/proc/self/maps")
    if maps.exists():
        for line in maps.read_text().splitlines():
            path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
            if _RUNTIME.search(path) and path not in found:
                found.append(path)
    return found


@functools.lru_cache(maxsize=1)
def _pause_fn() -> Callable[[int], int] | None:
    if sys.platform == "win32":
        return None
    for path in _candidates():
        try:
            fn = ctypes.CDLL(path).omp_pause_resource_all
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


def release_cpu_threads() -> bool:
    """Free the calling thread's OpenMP helper threads; True if they were released.

    Cheap (well under a millisecond) and safe to call from any thread outside a parallel
    region; a no-op (False) where the OpenMP runtime cannot pause.
    """
    fn = _pause_fn()
    return fn is not None and fn(_OMP_PAUSE_SOFT) == 0


def releasing_cpu_threads(func: Callable) -> Callable:
    """Wrap a job (function or generator function) to release its thread's team at the end."""
    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args, **kwargs):
            try:
                return (yield from func(*args, **kwargs))
            finally:
                release_cpu_threads()

        return gen_wrapper

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            release_cpu_threads()

    return wrapper
