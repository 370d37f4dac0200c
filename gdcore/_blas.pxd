# Row-major BLAS through scipy.linalg.cython_blas, for both float32 and float64.
#
# A C-ordered (m x n) matrix is, to Fortran BLAS, its (n x m) transpose.  So the
# row-major product C = op(A) @ op(B) is the column-major C^T = op(B)^T op(A)^T:
# swap the operands and m/n, keep each operand's own transpose flag, and pass each
# stored row length as its leading dimension.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* A, int lda,
                      const floating* B, int ldb,
                      floating beta, floating* C, int ldc) noexcept nogil:
    """C (m x n, row stride ldc) = alpha * op(A) @ op(B) + beta * C.

    op(A) is (m x k) and op(B) is (k x n); lda/ldb/ldc are the row lengths of the
    arrays as stored.  Does nothing when m or n is 0; with k == 0 it only scales C
    (BLAS rejects leading dimensions of 0, so those cases never reach it).  A product
    with one row or one column goes to gemv: OpenBLAS's gemm packs the whole other
    operand first (87 us instead of 10 for a 1 x 256 @ 256 x 784 product)."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef char gemv_trans
    cdef int rows, cols, inc_x, one = 1
    cdef Py_ssize_t i, j
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        for i in range(m):
            for j in range(n):
                C[i * ldc + j] = 0 if beta == 0 else beta * C[i * ldc + j]
        return
    if m == 1:
        # C[0, :] = op(B)^T a, a = row 0 of op(A); op(B) seen column-major is B^T (N)
        # or, stored transposed, (k x n) to be used transposed (T)
        gemv_trans = b'T' if trans_b else b'N'
        rows, cols = (k, n) if trans_b else (n, k)
        inc_x = lda if trans_a else 1
        if floating is float:
            sgemv(&gemv_trans, &rows, &cols, &alpha, <float*>B, &ldb, <float*>A, &inc_x,
                  &beta, C, &one)
        else:
            dgemv(&gemv_trans, &rows, &cols, &alpha, <double*>B, &ldb, <double*>A, &inc_x,
                  &beta, C, &one)
        return
    if n == 1:
        # C[:, 0] = op(A) b, b = column 0 of op(B); C's column has stride ldc
        gemv_trans = b'N' if trans_a else b'T'
        rows, cols = (m, k) if trans_a else (k, m)
        inc_x = 1 if trans_b else ldb
        if floating is float:
            sgemv(&gemv_trans, &rows, &cols, &alpha, <float*>A, &lda, <float*>B, &inc_x,
                  &beta, C, &ldc)
        else:
            dgemv(&gemv_trans, &rows, &cols, &alpha, <double*>A, &lda, <double*>B, &inc_x,
                  &beta, C, &ldc)
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>B, &ldb, <float*>A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>B, &ldb, <double*>A, &lda,
              &beta, C, &ldc)


# Narrow products in chunks of rows.  On the cores where OpenBLAS has small-matrix
# kernels (SkylakeX and its successors), a product of at most 100^3 multiply-adds skips
# the packing of the regular path; for a narrow C (a layer with few outputs) the regular
# path spends about as long packing the tall operand as multiplying, so the same
# product split into small chunks runs up to 2x faster (OpenBLAS 0.3.30, one thread,
# SkylakeX kernels, numpy.matmul on slices: float32 512 x 784 @ 784 x 15 318 -> 135
# us, 784 x 512 @ 512 x 15 303 -> 141 us; float64 578 -> 300 and 550 -> 298 us).
# Wider C, and chunks of a few rows, lose (784 x 256: 0.7-1.1x); so do chunks of
# dX = D @ W^T (the narrow dimension is k there: 0.5-0.9x), which is never chunked.
# ``small_gemm_madds`` is 1e6 where the kernels exist and 0 elsewhere (then this is
# plain gemm); the choice is made once at import (see _blas.pyx), so it fixes the bits
# of a process's products.  Haswell kernels have no small-matrix path, and one product
# is faster there (chunks of 32-64 rows 0.7-1.0x).  A weight gradient over a batch too
# large for row chunks of WEIGHT_GRAD_CHUNK_MIN_ROWS is split along the batch instead
# and its chunks added into C in order (784-15 layer, batch 2048, dense_backward
# without dX on one thread: float32 2163 -> 1051 us, float64 3577 -> 2290 us).
cdef enum:
    SMALL_GEMM_MAX_WIDTH = 32       # widest C that is chunked
    # Fewest rows per chunk of a layer's Y = X @ W and of dW = X^T @ D: chunks of
    # X^T @ D with fewer than ~64 rows lost to one product (batch 2048, 784 x 15:
    # 32-row chunks 0.83x); chunks of X @ W gained down to 32 rows (2048 x 2048 @
    # 2048 x 15: 2.5x).
    FORWARD_CHUNK_MIN_ROWS = 16
    WEIGHT_GRAD_CHUNK_MIN_ROWS = 64
    # Fewest terms per chunk of the inner dimension when a product too deep for row
    # chunks is split along k instead (gemm_row_chunks with split_k)
    CHUNK_MIN_DEPTH = 32

cdef Py_ssize_t small_gemm_madds() noexcept nogil


cdef inline Py_ssize_t ceil_div_rows(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


cdef inline bint worth_chunking(Py_ssize_t limit, Py_ssize_t m, Py_ssize_t n,
                                Py_ssize_t k) noexcept nogil:
    """A (m x n) product with inner dimension k is narrow and larger than one chunk."""
    return (limit > 0 and 2 <= n <= SMALL_GEMM_MAX_WIDTH and m > 0 and k > 0
            and m * n * k > limit)


cdef inline Py_ssize_t chunk_rows(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                  Py_ssize_t min_rows) noexcept nogil:
    """Rows per chunk of a (m x n) C = op(A) @ op(B) with inner dimension k: m (one
    product) unless C is narrow and even chunks of at most ``small_gemm_madds()``
    multiply-adds have ``min_rows`` rows or more."""
    cdef Py_ssize_t limit = small_gemm_madds()
    cdef Py_ssize_t rows
    if not worth_chunking(limit, m, n, k):
        return m
    rows = limit // (n * k)
    if rows < max(min_rows, 1):
        return m
    return ceil_div_rows(m, ceil_div_rows(m, rows))


cdef inline Py_ssize_t chunk_depth(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                   Py_ssize_t min_rows) noexcept nogil:
    """Terms per chunk of the inner dimension for a narrow product whose rows cannot
    be chunked (``chunk_rows`` gives m because k is deep: a weight gradient over a
    large batch): k (one product) unless even chunks of k of at most
    ``small_gemm_madds()`` multiply-adds over all m rows have CHUNK_MIN_DEPTH terms."""
    cdef Py_ssize_t limit = small_gemm_madds()
    cdef Py_ssize_t depth
    if not worth_chunking(limit, m, n, k) or chunk_rows(m, n, k, min_rows) < m:
        return k
    depth = limit // (n * m)
    if depth < CHUNK_MIN_DEPTH:
        return k
    return ceil_div_rows(k, ceil_div_rows(k, depth))


cdef inline void gemm_row_chunks(bint trans_a, bint trans_b, int m, int n, int k,
                                 floating alpha, const floating* A, int lda,
                                 const floating* B, int ldb, floating beta, floating* C,
                                 int ldc, int min_rows, bint split_k=False) noexcept nogil:
    """gemm, with the rows of C in chunks of ``chunk_rows`` rows: each element of C
    is still one product over the whole of k.  With ``split_k`` (op(A) = A^T and
    op(B) = B, as dW = X^T @ D is), a product whose rows cannot be chunked is summed
    over chunks of k of ``chunk_depth`` terms instead, each added to C in order (as
    BLAS's own blocking of k adds its partial products): C = sum_j A_j^T B_j."""
    cdef Py_ssize_t rows = chunk_rows(m, n, k, min_rows)
    cdef Py_ssize_t depth, start = 0, stop
    if split_k and trans_a and not trans_b:
        depth = chunk_depth(m, n, k, min_rows)
        if depth < k:
            while start < k:
                stop = min(<Py_ssize_t>k, start + depth)
                gemm(True, False, m, n, <int>(stop - start), alpha, A + start * lda, lda,
                     B + start * ldb, ldb, beta if start == 0 else <floating>1, C, ldc)
                start = stop
            return
    while start < m:
        stop = min(<Py_ssize_t>m, start + rows)
        gemm(trans_a, trans_b, <int>(stop - start), n, k, alpha,
             A + (start if trans_a else start * lda), lda, B, ldb, beta,
             C + start * ldc, ldc)
        start = stop


# BLAS thread control.  Every native call that runs GEMMs brackets them with
# blas_threads_single() / blas_threads_restore(): the BLAS library then runs each GEMM
# on the calling thread, and gdcore's own OpenMP threads split the work.  Only one
# thread pool is ever busy (OpenMP workers spinning while OpenBLAS threads work, or the
# reverse, costs up to 57x).  Nested calls from several Python threads are counted, and
# the BLAS setting is restored when the last one leaves.
cdef void blas_threads_single() noexcept nogil
cdef void blas_threads_restore() noexcept nogil
