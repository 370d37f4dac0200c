"""Library-wide settings: the thread count, fork safety, and ``show_config``.

gdcore keeps its own thread setting instead of calling ``omp_set_num_threads``: OpenMP
settings belong to the calling thread, so one made in one Python thread would not reach
kernels called from another.  Every kernel resolves ``n_threads=None`` to this setting
and passes the number down explicitly.

Fork safety: libgomp hangs when a forked child enters a parallel region after the
parent ran one.  In a child created by ``os.fork`` (multiprocessing's default 'fork'
start method on Linux) gdcore therefore runs every kernel on one thread, which never
enters a parallel region.  Use the 'spawn' or 'forkserver' start method to get threads
in child processes.
"""
import operator
import os
import sys
import warnings
from typing import Any, Dict, Optional, TextIO

# How many times an idle libgomp worker polls for new work before it sleeps.  libgomp's
# default (300000, several milliseconds) keeps gdcore's workers spinning after a kernel
# returns; a NumPy GEMM called next then shares the cores with them and runs many times
# slower (200 rounds of a 2-thread Adam step on 2e5 elements alternating with a 192^2
# sgemm: 2.1 s instead of 29 ms).  1000 polls keep back-to-back parallel regions (inside
# one native call, or calls in a tight loop) cheap while letting the workers sleep
# within microseconds of returning to Python.
GOMP_SPINCOUNT_DEFAULT = "1000"
_wait_policy = {"GOMP_SPINCOUNT": None, "applied": False, "reason": ""}


def _libgomp_loaded():
    try:
        with open("/proc/self/maps") as maps:
            return "libgomp" in maps.read()
    except OSError:
        return False


def _configure_openmp_wait_policy():
    """Set GOMP_SPINCOUNT for libgomp, before it is loaded, unless the user chose a wait
    policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment)."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        _wait_policy.update(reason="set by the user environment",
                            GOMP_SPINCOUNT=os.environ.get("GOMP_SPINCOUNT"))
        return
    if _libgomp_loaded():
        _wait_policy.update(reason="libgomp was loaded before gdcore: its default applies")
        return
    os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT_DEFAULT
    _wait_policy.update(applied=True, GOMP_SPINCOUNT=GOMP_SPINCOUNT_DEFAULT,
                        reason="set by gdcore at import")


_configure_openmp_wait_policy()
from . import _openmp  # noqa: E402  (loads libgomp: after the wait policy)

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_openmp.mark_forked_child)

# Thread counts above this are rejected as mistakes; below it they are clamped to the
# usable CPUs.
MAX_THREADS = 1 << 16


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the OS has one
    (``os.sched_getaffinity``, which follows taskset, cgroup cpusets and
    ``docker --cpuset-cpus``), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


_openmp.set_cpu_limit(usable_cpus())


def _check_thread_count(n, name):
    """A requested thread count: an int in [1, MAX_THREADS] (not a bool)."""
    if isinstance(n, bool) or (hasattr(n, "dtype") and getattr(n, "dtype").kind == "b"):
        raise ValueError(f"{name} must be a positive integer or None, got the bool {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"{name} must be a positive integer or None, got {n!r}") from None
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
    if n > MAX_THREADS:
        raise ValueError(f"{name} must be <= {MAX_THREADS} (counts above the usable "
                         f"CPUs, {usable_cpus()} here, are clamped to them), got {n}")
    return n


def set_num_threads(n: Optional[int]) -> None:
    """Set the number of threads gdcore's kernels use.

    Parameters
    ----------
    n : int or None
        Threads for every kernel called without an explicit ``n_threads``.  ``None``
        restores the default: ``omp_get_max_threads()`` of the calling thread, which
        honours ``OMP_NUM_THREADS`` and ``threadpoolctl`` limits on OpenMP.

    Notes
    -----
    A count above the CPUs this process may use (its affinity mask, see
    ``usable_cpus``) is clamped to them: gdcore never starts more threads than CPUs.
    0, negative numbers, bools and counts above 65536 raise ``ValueError``.
    Kernels use fewer threads than this when their work is too small to pay for more
    (see ``gdcore.kernels``), and exactly one in a child process created by ``fork``.
    """
    n = None if n is None else _check_thread_count(n, "n")
    _openmp.set_library_threads(0 if n is None else n)
    if _openmp.in_forked_child() and n is not None and n > 1:
        warnings.warn(
            "gdcore runs on one thread in a process created by fork (OpenMP cannot "
            "start threads there safely); use multiprocessing's 'spawn' or "
            "'forkserver' start method for parallel kernels in child processes",
            RuntimeWarning, stacklevel=2,
        )


def get_num_threads() -> int:
    """The number of threads a kernel called with ``n_threads=None`` may use."""
    return _openmp.resolve(None)


def resolve_threads(n_threads: Optional[int]) -> int:
    """``n_threads`` argument of a kernel -> the thread count to pass to the core."""
    if n_threads is None:
        return get_num_threads()
    n_threads = _check_thread_count(n_threads, "n_threads")
    return 1 if _openmp.in_forked_child() else min(n_threads, _openmp.cpu_limit())


def config_info() -> Dict[str, Any]:
    """The facts ``show_config`` prints, as a dict."""
    from threadpoolctl import threadpool_info

    from . import __version__, _blas

    import numpy
    import scipy

    return {
        "gdcore": __version__,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "openmp": _openmp.openmp_enabled(),
        "num_threads": get_num_threads(),
        "num_threads_source": (
            "forked child" if _openmp.in_forked_child()
            else "set_num_threads" if _openmp.library_threads() > 0
            else "omp_get_max_threads"
        ),
        "num_procs": _openmp.num_procs(),
        "blas_thread_control": _blas.controlled_libraries(),
        "blas_small_gemm": dict(zip(("core", "chunk_madds"), _blas.small_gemm_chunks())),
        "openmp_wait_policy": dict(_wait_policy, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY")),
        "threadpools": threadpool_info(),
    }


def show_config(file: Optional[TextIO] = None) -> None:
    """Print gdcore's version, OpenMP status, thread setting and the thread pools
    (BLAS and OpenMP libraries) that ``threadpoolctl`` finds in this process."""
    info = config_info()
    out = file if file is not None else sys.stdout
    w = lambda s="": print(s, file=out)
    w(f"gdcore {info['gdcore']}  (python {info['python']}, numpy {info['numpy']}, "
      f"scipy {info['scipy']})")
    w(f"  OpenMP:   {'enabled' if info['openmp'] else 'disabled (serial build)'}")
    w(f"  threads:  {info['num_threads']} (from {info['num_threads_source']}; "
      f"{info['num_procs']} processors)")
    wp = info["openmp_wait_policy"]
    w(f"  OpenMP idle workers: GOMP_SPINCOUNT={wp['GOMP_SPINCOUNT']}, "
      f"OMP_WAIT_POLICY={wp['OMP_WAIT_POLICY']} ({wp['reason']})")
    if info["blas_thread_control"]:
        w("  BLAS thread control (1 thread inside gdcore's native calls):")
        for lib in info["blas_thread_control"]:
            w(f"    {lib}")
    else:
        w("  BLAS thread control: none (no pthreads OpenBLAS found)")
    small = info["blas_small_gemm"]
    chunks = (f"row chunks of <= {small['chunk_madds']} multiply-adds"
              if small["chunk_madds"] else "one product each")
    w(f"  narrow GEMMs: {chunks} (OpenBLAS core {small['core']})")
    w("  thread pools (threadpoolctl):")
    for pool in info["threadpools"]:
        w(f"    {pool.get('user_api')}/{pool.get('internal_api')} "
          f"{pool.get('version')}  threads={pool.get('num_threads')}  "
          f"{pool.get('filepath')}")
