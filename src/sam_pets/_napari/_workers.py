"""Where the docks' jobs run.

The Annotator's model work (load, embed, predict, model swap) runs on one long-lived compute
thread, so its OpenMP team stays warm from click to click and no second team competes with it
(see :mod:`sam_pets.predict.threads`).  Other long jobs (training, evaluation) run on napari's
thread pool and free their team when they end.
"""

from __future__ import annotations

from napari.qt.threading import create_worker
from qtpy.QtCore import QThreadPool

from sam_pets.predict.threads import release_cpu_threads, releasing_cpu_threads

_IDLE_EXPIRY_MS = 5 * 60 * 1000  # the compute thread (and its team) ends after 5 idle minutes
_pool: QThreadPool | None = None
_running: set = set()  # workers on the compute thread, kept alive until they finish


def compute_pool() -> QThreadPool:
    """The process-wide single-thread pool for model work."""
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(1)
        _pool.setExpiryTimeout(_IDLE_EXPIRY_MS)
    return _pool


def start_on_compute_thread(worker) -> None:
    """Start a napari worker on the compute thread (queued behind the running model job)."""
    release_cpu_threads()  # the GUI thread's own team, if it ever ran a torch kernel
    _running.add(worker)
    worker.finished.connect(lambda: _running.discard(worker))
    compute_pool().start(worker)


def model_worker(func, *args, _progress=None):
    """A napari worker for model work (start it with :func:`start_on_compute_thread`)."""
    return create_worker(func, *args, _progress=_progress, _ignore_errors=True)


def job_worker(func, *args, **kwargs):
    """A napari worker (errors only to our handlers) whose OpenMP team is freed at its end."""
    return create_worker(releasing_cpu_threads(func), *args, _ignore_errors=True, **kwargs)
