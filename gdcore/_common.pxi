# Helpers every kernel family uses (included by _native.pxi right after the constants,
# before any kernel file, so that no kernel file depends on another's include order).

cdef enum:
    # A thread's range starts on a 64-byte boundary.
    ALIGN_ELEMENTS = 16


cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


cdef inline Py_ssize_t thread_block(Py_ssize_t n, int nt) noexcept nogil:
    """Elements per thread: n split into nt contiguous ranges starting on 64-byte
    boundaries.  Thread t works on [min(t * block, n), min((t + 1) * block, n)).

    The range bounds are assigned directly in the prange body (never through a pointer
    to variables of the enclosing function), so that Cython makes them thread-private."""
    return (ceil_div(n, nt) + ALIGN_ELEMENTS - 1) // ALIGN_ELEMENTS * ALIGN_ELEMENTS


# ---- raw pointers of validated arrays -------------------------------------------

cdef inline const floating* cptr2(const floating[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


cdef inline floating* ptr2(floating[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


cdef inline floating* ptr1(floating[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL


cdef inline void* data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a) if a is not None else NULL


# ---- fast buffer checks (NumPy's C API) ------------------------------------------

cdef inline bint vector_ok(object a, int typenum, Py_ssize_t n, bint writable):
    """a is an aligned, native-order, C-contiguous 1-D array of typenum and length n."""
    cdef cnp.ndarray arr
    if not cnp.PyArray_Check(a):
        return False
    arr = <cnp.ndarray>a
    return (cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_NDIM(arr) == 1
            and cnp.PyArray_DIM(arr, 0) == n and cnp.PyArray_IS_C_CONTIGUOUS(arr)
            and cnp.PyArray_ISALIGNED(arr) and cnp.PyArray_ISNOTSWAPPED(arr)
            and (not writable or cnp.PyArray_ISWRITEABLE(arr)))


cdef inline bint is_float_typenum(int typenum):
    return typenum == cnp.NPY_FLOAT32 or typenum == cnp.NPY_FLOAT64


# ---- debug-build self-check --------------------------------------------------------

def _element(const double[::1] a, Py_ssize_t i):
    """a[i] with no check of i but the build's: a debug build (GDCORE_DEBUG=1) raises
    IndexError for i out of range; a release build reads out of bounds.  Internal: the
    test of the debug build calls it with a wrong index, nothing else calls it."""
    return a[i]
