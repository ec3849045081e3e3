"""Releasing a thread's OpenMP team (sam_pets.predict.threads)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

import pytest
import torch

from sam_pets.predict import threads


@pytest.mark.skipif(sys.platform != "linux", reason="torch's PyPI wheels bundle libgomp here")
def test_release_finds_torch_runtime_and_torch_keeps_working():
    x = torch.randn(200_000)
    expected = (x + x).sum()  # a parallel region: this thread now owns a team
    assert threads.release_cpu_threads() is True
    assert torch.equal((x + x).sum(), expected)  # a new team is built on demand
    assert threads.release_cpu_threads() is True  # and released again


def test_release_in_a_worker_thread():
    results = []

    def work():
        torch.randn(200_000).add_(1.0)
        results.append(threads.release_cpu_threads())

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert results == [threads._pause_fn() is not None]


def test_release_is_a_no_op_without_a_runtime(monkeypatch):
    monkeypatch.setattr(threads, "_pause_fn", lambda: None)
    assert threads.release_cpu_threads() is False


@pytest.fixture
def released(monkeypatch):
    calls = []
    monkeypatch.setattr(threads, "release_cpu_threads", lambda: calls.append(1) or True)
    return calls


def test_wrapped_function_releases_after_return_and_error(released):
    assert threads.releasing_cpu_threads(lambda a, b=0: a + b)(1, b=2) == 3
    assert released == [1]

    def boom():
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        threads.releasing_cpu_threads(boom)()
    assert released == [1, 1]


def test_wrapped_generator_stays_a_generator_and_releases_at_its_end(released):
    def job(n):
        yield from range(n)
        return "done"

    wrapped = threads.releasing_cpu_threads(job)
    gen = wrapped(3)
    assert next(gen) == 0 and released == []  # nothing released while it runs
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    assert stop.value.value == "done" and released == [1]
    gen = wrapped(5)
    next(gen)
    gen.close()  # a cancelled job releases too
    assert released == [1, 1]


def test_background_compute_uses_one_core_at_lower_priority_then_restores():
    seen = {}

    def work():
        tid = threading.get_native_id()
        seen["before"] = torch.get_num_threads()
        with threads.background_compute():
            seen["inside"] = torch.get_num_threads()
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, tid) if sys.platform == "linux" else 0
            seen["value"] = (torch.ones(64, 64) @ torch.ones(64, 64)).sum().item()
        seen["after"] = torch.get_num_threads()

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen["value"] == 64.0**3
    assert seen["after"] == seen["before"] == torch.get_num_threads()
    if threads._openmp() is not None:
        assert seen["inside"] == 1
    if sys.platform == "linux":
        assert seen["nice"] >= threads.BACKGROUND_NICE
        assert os.getpriority(os.PRIO_PROCESS, 0) < threads.BACKGROUND_NICE  # not the process


def test_in_background_wraps_a_generator(monkeypatch):
    entered = []

    @contextlib.contextmanager
    def fake():
        entered.append("in")
        yield
        entered.append("out")

    monkeypatch.setattr(threads, "background_compute", fake)

    def job():
        yield 1
        return 2

    gen = threads.in_background(job)()
    assert next(gen) == 1 and entered == ["in"]
    with pytest.raises(StopIteration):
        next(gen)
    assert entered == ["in", "out"]
