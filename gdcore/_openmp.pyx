"""OpenMP shim, the library thread setting, and the thread-count rule of every kernel.

Design
------
The library setting lives here, in C, so that native entry points resolve
``n_threads=None`` without a Python call: 0 means "follow omp_get_max_threads() of the
calling thread" (which honours OMP_NUM_THREADS and threadpoolctl limits), a positive
value is the count from ``gdcore.set_num_threads``.  After ``fork`` the child is pinned
to one thread (see ``gdcore._config``).

A kernel is handed the resolved ``n_threads`` and the size of its work;
``threads_for`` caps the count so that each thread gets at least
``min_work_per_thread`` units.  Small work runs on one thread and never enters an
OpenMP parallel region, so it neither pays for waking a second thread nor stalls when
the other core is busy (a 2-thread region can wait a scheduler slice, 6-16 ms, for a
preempted worker).  One thread means no parallel region at all, which is also what
keeps a forked child safe.
"""
from cpython.long cimport PyLong_CheckExact, PyLong_AsLong
from cython.parallel cimport prange

cdef int _library_threads = 0
cdef bint _forked_child = False
# The CPUs this process may run on (gdcore._config sets it at import): no kernel starts
# more threads than this, whatever it is asked for.
cdef int _cpu_limit = 1 << 16


cdef int threads_for(int n_threads, Py_ssize_t work, Py_ssize_t min_work_per_thread) noexcept nogil:
    cdef Py_ssize_t most
    if n_threads <= 1 or not GDCORE_HAVE_OPENMP:
        return 1
    most = work // min_work_per_thread
    if most < 1:
        return 1
    if most < n_threads:
        return <int>most
    return n_threads


cdef int resolve_threads(object n_threads) except -1:
    cdef long n
    if n_threads is None:
        if _forked_child:
            return 1
        if _library_threads > 0:
            return min(_library_threads, _cpu_limit)
        n = omp_get_max_threads()
        return <int>min(n, _cpu_limit) if n > 0 else 1
    if PyLong_CheckExact(n_threads) and 1 <= n_threads <= (1 << 16):
        n = PyLong_AsLong(n_threads)
        return 1 if _forked_child else <int>min(n, _cpu_limit)
    from gdcore._config import resolve_threads as checked
    return checked(n_threads)


def set_library_threads(int n):
    """0: follow omp_get_max_threads(); n > 0: use n threads."""
    global _library_threads
    _library_threads = n if n > 0 else 0


def set_cpu_limit(int n):
    """The most threads any kernel may use (the usable CPUs)."""
    global _cpu_limit
    _cpu_limit = n if n > 0 else 1


def cpu_limit():
    return _cpu_limit


def library_threads():
    return _library_threads


def mark_forked_child():
    global _forked_child
    _forked_child = True


def in_forked_child():
    return _forked_child


def resolve(n_threads):
    """The thread count a kernel called with ``n_threads`` uses (before the size cap)."""
    return resolve_threads(n_threads)


def openmp_enabled():
    """True when the extension modules were compiled with OpenMP."""
    return bool(GDCORE_HAVE_OPENMP)


def max_threads():
    """``omp_get_max_threads()`` in the calling thread (1 without OpenMP)."""
    return omp_get_max_threads()


def num_procs():
    """Processors available to this process according to the OpenMP runtime."""
    return omp_get_num_procs()


def threads_used(int n_threads, Py_ssize_t work, Py_ssize_t min_work_per_thread):
    """The thread count ``threads_for`` picks (exposed for tests)."""
    return threads_for(n_threads, work, min_work_per_thread)


def parallel_thread_ids(int n_threads):
    """Run a parallel region of ``n_threads`` (after the fork rule) and return the ids
    of the threads that ran an iteration.  Used by tests to show that OpenMP starts
    threads and that a forked child survives."""
    cdef int i
    cdef int[64] seen
    cdef int n = min(max(n_threads, 1), 64)
    if _forked_child:
        n = 1
    for i in range(64):
        seen[i] = -1
    if n == 1:
        return [omp_get_thread_num()]
    with nogil:
        for i in prange(n, schedule='static', num_threads=n):
            seen[i] = omp_get_thread_num()
    return sorted(set(seen[i] for i in range(n)))
