"""The asv suites label their thread rows truthfully.

A native kernel gives a second thread only to work above its threshold
(``gdcore.kernels.THRESHOLDS``), so an asv row labelled 2 threads at a smaller size
would time the 1-thread path.  Every suite class with a thread parameter declares the
work of its rows (``thread_work``); here every n-thread row either splits n ways or is
skipped in ``setup`` (NotImplementedError, before any work), and every class that
keeps a 2-thread label has rows that split.
"""
import importlib
import inspect
import itertools
import pathlib
import sys

import pytest

import gdcore
from gdcore import _openmp

BENCH_ROOT = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
SUITE_NAMES = sorted(p.stem for p in (BENCH_ROOT / "benchmarks").glob("bench_*.py"))


def _suites():
    if str(BENCH_ROOT) not in sys.path:
        sys.path.insert(0, str(BENCH_ROOT))
    for name in SUITE_NAMES:
        yield importlib.import_module(f"benchmarks.{name}")


def _threaded_classes():
    """(class, index of its thread parameter, rows, the suites' common module) of every
    suite class whose parameters include a thread count (``n_threads`` or
    ``*_threads``, integers)."""
    found = []
    for module in _suites():
        common = importlib.import_module("benchmarks.common")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            names = list(getattr(cls, "param_names", []))
            params = getattr(cls, "params", [])
            if names and not isinstance(params[0], (list, tuple)):
                params = [params]
            # a thread count: named *threads with integer values (not a policy name)
            thread_params = [i for i, n in enumerate(names) if n.endswith("threads")
                             and all(isinstance(x, int) for x in params[i])]
            if not thread_params:
                continue
            found.append((cls, thread_params[0], list(itertools.product(*params)), common))
    return found


THREADED = _threaded_classes()


def test_the_suites_are_found():
    # the suites with kernel grids: a renamed file or parameter must not empty the check
    names = {cls.__name__ for cls, *_ in THREADED}
    assert {"TimeDenseForward", "TimeDenseBackward", "TimeActivation", "TimeLossDelta",
            "TimeOptimizerUpdate", "TimeTrainStep", "TimeInterleavedPools",
            "TimeStepGrid"} <= names


@pytest.mark.parametrize("cls, index, rows, common", THREADED,
                         ids=[c.__name__ for c, *_ in THREADED])
def test_thread_rows_split_or_are_skipped(cls, index, rows, common):
    assert hasattr(cls, "thread_work"), (
        f"{cls.__name__} has a thread parameter but no thread_work(*params)")
    splitting = 0
    for row in rows:
        n_threads = row[index]
        if n_threads is None or n_threads <= 1:
            continue
        work, threshold = cls.thread_work(*row)
        assert isinstance(work, int) and work >= 0
        if common.threads_used(n_threads, work, threshold) >= n_threads:
            splitting += 1
            continue
        # a row that cannot split never reaches its timed code
        with pytest.raises(NotImplementedError):
            bench = cls()
            try:
                bench.setup(*row)
            finally:
                if hasattr(bench, "teardown"):
                    bench.teardown(*row)
    two = any(row[index] == 2 for row in rows)
    if two and _openmp.openmp_enabled():
        assert splitting, (f"{cls.__name__}: no 2-thread row has work enough for two "
                           f"threads; drop the 2-thread label")


def test_threads_used_follows_the_native_rule():
    """The suites' rule is the kernels' own: a threshold's multiple splits, one unit
    less does not."""
    from benchmarks import common
    if not _openmp.openmp_enabled():
        pytest.skip("built without OpenMP: everything runs on one thread")
    for key, per_thread in gdcore.kernels.THRESHOLDS.items():
        assert common.threads_used(2, 2 * per_thread, key) == 2
        assert common.threads_used(2, 2 * per_thread - 1, key) == 1
        assert common.threads_used(1, 10 * per_thread, key) == 1
    assert common.threads_used(2, 2 * common.OPENBLAS_GEMM_MIN_PER_THREAD,
                               "openblas_gemm") == 2
    with pytest.raises(NotImplementedError, match="1 thread"):
        common.require_split(2, 100, "elementwise_min_per_thread")
    common.require_split(1, 100, "elementwise_min_per_thread")
