"""Where the docks' jobs run.

The Annotator's model work (load, embed, predict, model swap) runs on one long-lived compute
thread, so its OpenMP team stays warm from click to click and no second team competes with it
(see :mod:`sam_pets.predict.threads`).  Fine-tuning runs beside it on a background thread (one
core, lower priority), so clicks keep their speed while it trains.  Other long jobs
(evaluation) run on napari's thread pool and free their team when they end.

Two habits of superqt's generator workers are corrected for the long jobs
(:func:`job_worker`, :func:`background_worker`): ``quit()`` (napari's own when the viewer
closes, or ours when the app quits) stops at the next yield but never closes the generator,
so its cleanup (a training run saving its last finished step) would not run; and a
``RuntimeError`` raised by the job (any torch error, e.g. out of memory) becomes a warning with
neither ``errored`` nor ``finished`` emitted, so the dock would wait for the job forever.
"""

from __future__ import annotations

import contextlib
import functools
import inspect

from napari.qt.threading import create_worker
from qtpy.QtCore import QCoreApplication, Qt, QThreadPool, QTimer

from sam_pets.predict.threads import in_background, release_cpu_threads, releasing_cpu_threads

_IDLE_EXPIRY_MS = 5 * 60 * 1000  # the compute thread (and its team) ends after 5 idle minutes
_pools: dict[str, QThreadPool] = {}
_running: dict[int, object] = {}  # workers started here (by id), kept alive until they finish


def _pool(name: str, threads: int, expiry_ms: int) -> QThreadPool:
    if name not in _pools:
        pool = QThreadPool()
        pool.setMaxThreadCount(threads)
        pool.setExpiryTimeout(expiry_ms)
        if not _pools and (app := QCoreApplication.instance()) is not None:
            app.aboutToQuit.connect(_await_workers)  # as napari does for its own pool
        _pools[name] = pool
    return _pools[name]


def _await_workers(msecs: int = 10_000) -> None:
    """Ask running jobs to stop (generators stop at their next step) and wait for them."""
    for worker in list(_running.values()):
        worker.quit()
    for pool in _pools.values():
        pool.waitForDone(msecs)


def compute_pool() -> QThreadPool:
    """The process-wide single-thread pool for model work."""
    return _pool("compute", 1, _IDLE_EXPIRY_MS)


def background_pool() -> QThreadPool:
    """Threads reserved for background training (they keep their lowered priority)."""
    return _pool("background", 2, 30_000)


def _start_on(pool: QThreadPool, worker) -> None:
    release_cpu_threads()  # the GUI thread's own team, if it ever ran a torch kernel
    key = id(worker)
    _running[key] = worker
    # (no slot here may hold the worker: see _let_go)
    worker.finished.connect(lambda: _let_go(key))
    pool.start(worker)


# a worker's signals (superqt; a function worker has no yielded, paused, resumed, aborted)
_SIGNALS = "started returned errored warned yielded paused resumed aborted finished".split()


def _let_go(key: int) -> None:
    """A worker has finished: forget it, and drop every slot of its signals once they are done.

    Qt holds a connected slot for as long as the sender lives, and napari keeps each worker
    (its window's task list) until the window goes: the slots (a dock's callbacks, holding the
    dock, its viewer and every layer) would make a cycle through Qt that Python's collector
    cannot see, and a closed viewer would never be freed.
    """
    worker = _running.pop(key, None)
    if worker is not None:
        QTimer.singleShot(0, functools.partial(_disconnect_all, worker))


def _disconnect_all(worker) -> None:
    for name in _SIGNALS:
        signal = getattr(worker, name, None)
        if signal is not None:
            with contextlib.suppress(TypeError, RuntimeError):  # nothing connected, or gone
                signal.disconnect()


def _released(func, args: tuple, kwargs: dict):
    """``func(*args, **kwargs)`` as a function of no arguments that lets go of them when run.

    A worker keeps the function it ran and its arguments, and napari keeps the worker: a
    click's prediction would keep its masks (12 MB each on a 12 MP photo), a load its model.
    """
    box = [(func, args, kwargs)]

    def run():
        f, a, k = box.pop()
        return f(*a, **k)

    def run_generator():  # napari makes a generator worker (progress, yielded) of this
        f, a, k = box.pop()
        return (yield from f(*a, **k))

    job = run_generator if inspect.isgeneratorfunction(func) else run
    job.__name__ = job.__qualname__ = getattr(func, "__name__", "job")
    return job


def start_in_order(worker) -> None:
    """Start a worker on the one thread for dataset writes: one at a time, in click order.

    Two exports at once would each read a dataset's manifest and write it back, the slower
    one dropping the other's items.
    """
    _start_on(_pool("writes", 1, 30_000), worker)


def start_job(worker) -> None:
    """Start a long job (an evaluation) on a thread of its own, not on Qt's global pool.

    napari's activity dock waits on Qt's global pool when it adds a progress bar; long jobs
    holding its threads (two on a 2-core machine) could freeze the window.
    """
    _start_on(_pool("jobs", 1, 30_000), worker)


def start_on_compute_thread(worker) -> None:
    """Start a napari worker on the compute thread (queued behind the running model job)."""
    _start_on(compute_pool(), worker)


def start_in_background(worker) -> None:
    """Start a worker made by :func:`background_worker` on a background thread."""
    _start_on(background_pool(), worker)


def function_worker(func, *args, _progress=None):
    """A napari worker for one call (model work: start it with :func:`start_on_compute_thread`).

    A generator function gives a generator worker (``yielded`` for each answer, ``returned``
    with its return value) whose ``RuntimeError`` is reported like a function's. Errors go to
    the worker's ``errored`` handlers only.
    """
    if inspect.isgeneratorfunction(func):
        func = _reporting_errors(func)
    return create_worker(_released(func, args, {}), _progress=_progress, _ignore_errors=True)


def free_compute_team() -> None:
    """Let the compute thread drop its idle OpenMP team before a long job elsewhere.

    An idle team in another thread slows a 2-thread job by ~20 % (SAM 2.1 tiny embedding:
    3.45 vs 2.89 s); the next click builds the team again.
    """
    start_on_compute_thread(function_worker(release_cpu_threads))


class JobError(Exception):
    """A job's ``RuntimeError``, raised again as a type that superqt reports through ``errored``."""


def _reporting_errors(func):
    """Wrap a generator function so that a RuntimeError it raises is a :class:`JobError`."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        try:
            return (yield from func(*args, **kwargs))
        except RuntimeError as e:
            raise JobError(str(e)) from e

    return run


def _long_job_worker(func, args, kwargs):
    """A worker for ``func``; a generator is closed in the worker's thread when it is quit."""
    options = {k: v for k, v in kwargs.items() if k.startswith("_")}  # create_worker's own
    if not inspect.isgeneratorfunction(func):
        call = {k: v for k, v in kwargs.items() if k not in options}
        return create_worker(_released(func, args, call), _ignore_errors=True, **options)
    gen = _reporting_errors(func)(*args, **{k: v for k, v in kwargs.items() if k not in options})

    @functools.wraps(func)
    def job():
        return (yield from gen)

    worker = create_worker(job, _ignore_errors=True, **options)
    # emitted by the worker's thread when it stops for a quit(): close there, at once
    worker.aborted.connect(gen.close, Qt.ConnectionType.DirectConnection)
    return worker


def job_worker(func, *args, **kwargs):
    """A napari worker (errors only to our handlers) whose OpenMP team is freed at its end."""
    return _long_job_worker(releasing_cpu_threads(func), args, kwargs)


def background_worker(func, *args, **kwargs):
    """A napari worker that computes on one core at lower priority (start it in background)."""
    return _long_job_worker(in_background(func), args, kwargs)
