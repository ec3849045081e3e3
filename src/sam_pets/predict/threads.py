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

:func:`background_compute` goes further for jobs that run beside the interactive model
(fine-tuning): the thread computes on one core without a team and at a lower scheduling
priority, so clicks keep their speed.  Measured here (2 cores, Quick preset, built-in model;
``benchmarks/bench_predict_during_finetune.py``): a click during training 7.8 ms against 8.4
alone (19.7 with a plain 2-thread training thread), and training steps of 0.55 s against 1.18.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import inspect
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

_OMP_PAUSE_SOFT = 1
BACKGROUND_NICE = 10  # scheduling niceness of background compute threads (Linux)
_RUNTIME = re.compile(r"lib[gi]?omp[^/]*\.(so[.0-9]*|dylib)$")  # libgomp, libomp, libiomp5


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
def _openmp() -> ctypes.CDLL | None:
    """The OpenMP runtime torch uses, if it can pause (OpenMP 5)."""
    if sys.platform == "win32":
        return None
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            lib.omp_pause_resource_all.argtypes = [ctypes.c_int]
        except (OSError, AttributeError):
            continue
        lib.omp_pause_resource_all.restype = ctypes.c_int
        lib.omp_set_num_threads.argtypes = [ctypes.c_int]
        lib.omp_get_max_threads.restype = ctypes.c_int
        return lib
    return None


def _pause_fn() -> Callable[[int], int] | None:
    lib = _openmp()
    return None if lib is None else lib.omp_pause_resource_all


@functools.lru_cache(maxsize=1)
def _mkl_local() -> Callable | None:
    """MKL's per-thread thread count (Fortran-style: takes an int pointer), if torch has MKL."""
    lib = Path(torch.__file__).resolve().parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib"):
        try:
            fn = ctypes.CDLL(str(lib / name)).mkl_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_int
        return lambda n: fn(ctypes.byref(ctypes.c_int(n)))
    return None


def release_cpu_threads() -> bool:
    """Free the calling thread's OpenMP helper threads; True if they were released.

    Cheap (well under a millisecond) and safe to call from any thread outside a parallel
    region; a no-op (False) where the OpenMP runtime cannot pause.
    """
    fn = _pause_fn()
    return fn is not None and fn(_OMP_PAUSE_SOFT) == 0


@contextlib.contextmanager
def _released() -> Iterator[None]:
    try:
        yield
    finally:
        release_cpu_threads()


def _wrapped(func: Callable, context: Callable) -> Callable:
    """``func`` (a function or generator function) run inside ``context()``."""
    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args, **kwargs):
            with context():
                return (yield from func(*args, **kwargs))

        return gen_wrapper

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with context():
            return func(*args, **kwargs)

    return wrapper


def releasing_cpu_threads(func: Callable) -> Callable:
    """Wrap a job (function or generator function) to release its thread's team at the end."""
    return _wrapped(func, _released)


def in_background(func: Callable) -> Callable:
    """Wrap a job (function or generator function) to run under :func:`background_compute`."""
    return _wrapped(func, background_compute)


def _lower_priority() -> None:
    """Raise this thread's niceness to BACKGROUND_NICE (Linux threads have their own)."""
    if sys.platform != "linux":
        return  # elsewhere setpriority would apply to the whole process
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        if os.getpriority(os.PRIO_PROCESS, tid) < BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)


@contextlib.contextmanager
def background_compute() -> Iterator[None]:
    """Run this thread's torch work on one core, at lower priority, without an OpenMP team.

    The thread count is restored on exit; the priority is not (an unprivileged thread cannot
    raise it again), so use it on threads reserved for background work.
    """
    lib, mkl = _openmp(), _mkl_local()
    torch.get_num_threads()  # torch sets this thread's OpenMP count on first use: do it now
    torch.ones(2).sum()
    before = lib.omp_get_max_threads() if lib is not None else None
    release_cpu_threads()
    if lib is not None:
        lib.omp_set_num_threads(1)
    if mkl is not None:
        mkl(1)
    _lower_priority()
    try:
        yield
    finally:
        release_cpu_threads()
        if lib is not None:
            lib.omp_set_num_threads(before)
        if mkl is not None:
            mkl(0)  # 0: back to MKL's process-wide setting
