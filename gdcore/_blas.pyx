"""BLAS access for gdcore's kernels.

Design
------
``gemm`` (in ``_blas.pxd``) is an inline fused wrapper over ``scipy.linalg.cython_blas``
for C-ordered arrays.  This module also owns the BLAS thread control: scipy's OpenBLAS
(pthreads build) keeps its own thread pool, and calling it with more than one thread
while gdcore's OpenMP threads are active oversubscribes the cores.  At import the
OpenBLAS libraries in the process are found with ``threadpoolctl``; the addresses of
their ``openblas_get_num_threads``/``openblas_set_num_threads`` are kept so that a
native call can switch them to one thread and back without the GIL, in well under a
microsecond.  BLAS libraries without such an entry point (MKL, BLIS) are left alone:
inside an OpenMP parallel region MKL and OpenMP-built BLAS run single-threaded anyway.
"""
from cython cimport floating
from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock,
                               PyThread_acquire_lock, PyThread_release_lock, WAIT_LOCK)

ctypedef int (*get_num_threads_t)() noexcept nogil
ctypedef void (*set_num_threads_t)(int) noexcept nogil

cdef enum:
    MAX_LIBS = 8

cdef get_num_threads_t[MAX_LIBS] _get_threads
cdef set_num_threads_t[MAX_LIBS] _set_threads
cdef int[MAX_LIBS] _saved_threads
cdef int _n_libs = 0
cdef int _depth = 0
cdef Py_ssize_t _small_gemm_madds = 0
cdef PyThread_type_lock _lock = PyThread_allocate_lock()

_controlled = []   # descriptions of the libraries under control, for show_config()
_gemm_core = [None]   # the OpenBLAS core (kernel family) cython_blas runs, if known

# OpenBLAS cores with small-matrix GEMM kernels (see gemm_row_chunks in _blas.pxd), and
# the size under which OpenBLAS sends a product to them (its 100^3 rule).
SMALL_GEMM_CORES = ("skylakex", "cooperlake", "sapphirerapids")
SMALL_GEMM_MADDS = 1000000


cdef Py_ssize_t small_gemm_madds() noexcept nogil:
    return _small_gemm_madds


cdef void blas_threads_single() noexcept nogil:
    global _depth
    cdef int i
    if _n_libs == 0:
        return
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    if _depth == 0:
        for i in range(_n_libs):
            _saved_threads[i] = _get_threads[i]()
            if _saved_threads[i] != 1:
                _set_threads[i](1)
    _depth += 1
    PyThread_release_lock(_lock)


cdef void blas_threads_restore() noexcept nogil:
    global _depth
    cdef int i
    if _n_libs == 0:
        return
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    _depth -= 1
    if _depth == 0:
        for i in range(_n_libs):
            if _saved_threads[i] != 1:
                _set_threads[i](_saved_threads[i])
    PyThread_release_lock(_lock)


def _find_openblas_entry_points():
    """(description, get address, set address) for each pthreads OpenBLAS loaded."""
    import ctypes
    import itertools
    import os

    import scipy
    from threadpoolctl import ThreadpoolController

    found = []
    controllers = ThreadpoolController().select(internal_api="openblas").lib_controllers
    # Prefer the OpenBLAS that scipy bundles (the one cython_blas calls); NumPy's own
    # copy is never called by gdcore.  With a shared system BLAS, control that one.
    scipy_dir = os.path.dirname(os.path.abspath(scipy.__file__))
    bundled = [c for c in controllers
               if os.path.abspath(c.filepath).startswith((scipy_dir + os.sep, scipy_dir + ".libs"))]
    if len(bundled or controllers) == 1:
        _gemm_core[0] = getattr((bundled or controllers)[0], "architecture", None)
    for ctl in bundled or controllers:
        if getattr(ctl, "threading_layer", None) == "openmp":
            continue   # OpenMP-built OpenBLAS follows the OpenMP nesting rules itself
        for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
            get = getattr(ctl.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_ = getattr(ctl.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                found.append((
                    f"{ctl.filepath} (OpenBLAS {ctl.version}, {ctl.threading_layer})",
                    ctypes.cast(get, ctypes.c_void_p).value,
                    ctypes.cast(set_, ctypes.c_void_p).value,
                ))
                break
    return found


def _configure():
    global _n_libs, _small_gemm_madds
    cdef size_t get_addr, set_addr
    _n_libs = 0
    del _controlled[:]
    _gemm_core[0] = None
    try:
        found = _find_openblas_entry_points()
    except Exception:   # threadpoolctl cannot inspect this platform: leave BLAS alone
        found = []
    for description, get_addr, set_addr in found[:MAX_LIBS]:
        _get_threads[_n_libs] = <get_num_threads_t>get_addr
        _set_threads[_n_libs] = <set_num_threads_t>set_addr
        _controlled.append(description)
        _n_libs += 1
    core = str(_gemm_core[0] or "").lower()
    _small_gemm_madds = SMALL_GEMM_MADDS if core in SMALL_GEMM_CORES else 0


_configure()


def small_gemm_chunks():
    """(OpenBLAS core of scipy's BLAS or None, multiply-adds per chunk of a narrow
    product; 0: narrow products are not chunked)."""
    return _gemm_core[0], _small_gemm_madds


CHUNK_MIN_ROWS = {"forward": FORWARD_CHUNK_MIN_ROWS,
                  "weight_grad": WEIGHT_GRAD_CHUNK_MIN_ROWS}
CHUNK_MIN_DEPTH_TERMS = CHUNK_MIN_DEPTH


def small_gemm_chunk_rows(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, Py_ssize_t min_rows):
    """Rows per chunk that gdcore's GEMMs use for a (m x n) product with inner
    dimension k under the current setting (m: one product)."""
    return chunk_rows(m, n, k, min_rows)


def small_gemm_chunk_depth(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, Py_ssize_t min_rows):
    """Terms per chunk of the inner dimension of a weight-gradient product too deep for
    row chunks, under the current setting (k: one product)."""
    return chunk_depth(m, n, k, min_rows)


def set_small_gemm_madds(Py_ssize_t madds):
    """Set the chunk size of narrow products (0 turns chunking off) and return the
    previous one.  For tests and benchmarks: the import picks the right value, and
    changing it between two calls changes the bits of their products."""
    global _small_gemm_madds
    if madds < 0:
        raise ValueError(f"madds must be >= 0, got {madds}")
    previous = _small_gemm_madds
    _small_gemm_madds = madds
    return previous


def controlled_libraries():
    """The BLAS libraries whose thread count gdcore switches to 1 around its GEMMs."""
    return list(_controlled)


def blas_threads_inside_native_call():
    """The thread count each controlled BLAS reports while a native call is running
    (exposed for tests of the thread control)."""
    cdef int i
    result = []
    with nogil:
        blas_threads_single()
    try:
        for i in range(_n_libs):
            result.append(_get_threads[i]())
    finally:
        with nogil:
            blas_threads_restore()
    return result


def matmul(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] C,
           bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """C = alpha * op(A) @ op(B) + beta * C on C-contiguous arrays (for tests).

    Shapes are checked here; the kernels that use ``gemm`` check theirs at the public
    boundary."""
    cdef int m = A.shape[1] if trans_a else A.shape[0]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    cdef int kb = B.shape[1] if trans_b else B.shape[0]
    cdef int n = B.shape[0] if trans_b else B.shape[1]
    if k != kb or C.shape[0] != m or C.shape[1] != n:
        raise ValueError(
            f"shapes do not match: op(A) is ({m}, {k}), op(B) is ({kb}, {n}), "
            f"C is ({C.shape[0]}, {C.shape[1]})")
    cdef const floating* a = &A[0, 0] if A.shape[0] > 0 and A.shape[1] > 0 else NULL
    cdef const floating* b = &B[0, 0] if B.shape[0] > 0 and B.shape[1] > 0 else NULL
    cdef floating* c = &C[0, 0] if C.shape[0] > 0 and C.shape[1] > 0 else NULL
    with nogil:
        blas_threads_single()
        gemm(trans_a, trans_b, m, n, k, <floating>alpha, a, max(<int>A.shape[1], 1),
             b, max(<int>B.shape[1], 1), <floating>beta, c, max(n, 1))
        blas_threads_restore()
