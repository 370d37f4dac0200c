import io
import multiprocessing
import os

import numpy as np
import pytest

import gdcore as gd
from gdcore import _openmp


@pytest.fixture(autouse=True)
def _restore_threads():
    yield
    gd.set_num_threads(None)


def test_set_and_get_num_threads():
    gd.set_num_threads(1)
    assert gd.get_num_threads() == 1
    gd.set_num_threads(3)
    # requests above the usable CPUs are clamped to them
    assert gd.get_num_threads() == min(3, gd._config.usable_cpus())
    gd.set_num_threads(None)
    assert gd.get_num_threads() == max(1, _openmp.max_threads())


@pytest.mark.parametrize("bad, exc, message", [
    (0, ValueError, r"^n must be >= 1, got 0$"), (-2, ValueError, r"^n must be >= 1, got -2$"),
    (1.5, TypeError, r"^n must be a positive integer or None, got 1\.5$"),
    ("2", TypeError, r"^n must be a positive integer or None, got '2'$")])
def test_set_num_threads_rejects_bad_values(bad, exc, message):
    before = gd.get_num_threads()
    with pytest.raises(exc, match=message):
        gd.set_num_threads(bad)
    assert gd.get_num_threads() == before          # nothing half-updated


def test_default_follows_threadpoolctl_openmp_limit():
    from threadpoolctl import threadpool_limits
    if not _openmp.openmp_enabled():
        pytest.skip("serial build")
    with threadpool_limits(1, user_api="openmp"):
        assert gd.get_num_threads() == 1


def test_openmp_runs_threads():
    if not _openmp.openmp_enabled():
        pytest.skip("serial build")
    if os.cpu_count() < 2:
        pytest.skip("one processor")
    assert _openmp.parallel_thread_ids(2) == [0, 1]
    assert _openmp.parallel_thread_ids(1) == [0]


@pytest.mark.parametrize("n_threads, work, per_thread, expected", [
    (1, 10**9, 1, 1), (4, 10**9, 10, 4), (4, 25, 10, 2), (4, 9, 10, 1), (2, 0, 10, 1),
])
def test_threads_for_caps_small_work(n_threads, work, per_thread, expected):
    got = _openmp.threads_used(n_threads, work, per_thread)
    assert got == (expected if _openmp.openmp_enabled() else 1)


def test_show_config_lists_threads_and_libraries():
    buf = io.StringIO()
    gd.show_config(file=buf)
    text = buf.getvalue()
    assert f"gdcore {gd.__version__}" in text
    assert "OpenMP:" in text and "threads:" in text
    info = gd._config.config_info()
    assert info["num_threads"] == gd.get_num_threads()
    assert any(p["user_api"] == "blas" for p in info["threadpools"])


def _child_runs_parallel_region(queue):
    queue.put((gd.get_num_threads(), _openmp.parallel_thread_ids(gd.get_num_threads())))


def test_forked_child_does_not_hang_after_parent_ran_threads():
    if not _openmp.openmp_enabled():
        pytest.skip("serial build")
    _openmp.parallel_thread_ids(2)          # the parent's OpenMP pool now exists
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_runs_parallel_region, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("forked child hung in an OpenMP region")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == (1, [0])
