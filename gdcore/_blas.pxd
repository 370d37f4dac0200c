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


# BLAS thread control.  Every native call that runs GEMMs brackets them with
# blas_threads_single() / blas_threads_restore(): the BLAS library then runs each GEMM
# on the calling thread, and gdcore's own OpenMP threads split the work.  Only one
# thread pool is ever busy (OpenMP workers spinning while OpenBLAS threads work, or the
# reverse, costs up to 57x).  Nested calls from several Python threads are counted, and
# the BLAS setting is restored when the last one leaves.
cdef void blas_threads_single() noexcept nogil
cdef void blas_threads_restore() noexcept nogil
