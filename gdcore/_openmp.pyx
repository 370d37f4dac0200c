# cython: boundscheck=False, wraparound=False, cdivision=True
"""OpenMP shim and the thread-count rule every kernel uses.

Design
------
A kernel is handed ``n_threads`` (the caller's request, already resolved from
``gdcore.set_num_threads``) and the size of its work.  ``threads_for`` caps the count
so that each thread gets at least ``min_work_per_thread`` units: small work runs on
one thread and never enters an OpenMP parallel region, so it neither pays for waking
a second thread nor stalls when the other core is busy (a 2-thread region can wait a
whole scheduler slice, 6-16 ms, for a preempted worker).  One thread means no parallel
region at all, which is also what keeps a forked child safe (see ``gdcore._config``).
"""
from cython.parallel cimport prange


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


def openmp_enabled():
    """True when the extension modules were compiled with OpenMP."""
    return bool(GDCORE_HAVE_OPENMP)


def max_threads():
    """``omp_get_max_threads()`` in the calling thread (1 without OpenMP).

    It honours ``OMP_NUM_THREADS`` and a ``threadpoolctl`` limit on the OpenMP API set
    from this thread."""
    return omp_get_max_threads()


def num_procs():
    """Processors available to this process according to the OpenMP runtime."""
    return omp_get_num_procs()


def threads_used(int n_threads, Py_ssize_t work, Py_ssize_t min_work_per_thread):
    """The thread count ``threads_for`` picks (exposed for tests)."""
    return threads_for(n_threads, work, min_work_per_thread)


def parallel_thread_ids(int n_threads):
    """Run a parallel region of ``n_threads`` and return the ids that ran an iteration.

    Used by the tests to show that OpenMP really starts threads, and that a forked
    child survives a region."""
    cdef int i
    cdef int[64] seen
    cdef int n = min(max(n_threads, 1), 64)
    for i in range(64):
        seen[i] = -1
    with nogil:
        for i in prange(n, schedule='static', num_threads=n):
            seen[i] = omp_get_thread_num()
    return sorted(set(seen[i] for i in range(n)))
