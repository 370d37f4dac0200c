# Dense layers: forward with fused bias + activation, delta backpropagation
# (included by _native.pxi).
#
# Design
# ------
# Forward, per block of Y (one block per thread), along Y's wider dimension:
#     Y[rows] = X[rows] @ W          one GEMM, BLAS on the calling thread (a narrow
#                                    layer's in row chunks: gemm_row_chunks, _blas.pxd)
#     Y[rows] = f(Y[rows] + b)       epilogue on the rows the GEMM just wrote
# or, when Y has more columns than rows (small batches of wide layers), per block of
# columns: Y[:, cols] = f(X @ W[:, cols] + b[cols]).  Each thread's BLAS call packs
# the whole of its other operand, so the split duplicates the smaller one: a 128-row
# batch of a 784-256 layer split by rows packed all of W twice (11 % of a 2-thread
# step in sgemm_itcopy), split by columns it packs half of W each and X twice.
# Softmax needs whole rows: its layers always split rows.
# The bias is added after the GEMM (not pre-filled with beta = 1) so that U rounds as
# X @ W + b does in NumPy; with K split into blocks inside BLAS, a pre-filled bias
# would be added to the first partial sum instead.
#
# Backward:
#     D = dY * f'(Y), db = column sums of D     one fused pass over column blocks: each
#                                               thread owns whole columns and adds the
#                                               rows in order, in double, so db is the
#                                               same for any thread count (and equals
#                                               NumPy's D.sum(axis=0, dtype=float64))
#     dW = X^T @ D                               GEMMs; threads split the rows of dW
#                                               (narrow: in row chunks, as Y's,
#                                               or over a large batch in chunks of
#                                               the batch, added in order)
#     dX = D @ W^T (skipped for the first layer) and the rows of dX
# With activation 'identity' D is dY itself and no workspace is touched.  At batch 1,
# dW is a rank-1 GEMM (k = 1): BLAS does it in ~16 us for 784 x 256 where NumPy's
# x.T @ d falls into its ~240 us outer-product loop.
#
# The caller switches BLAS to one thread around these cores (blas_threads_single), so
# only gdcore's OpenMP threads run.
#
# Blocks and team: the thread count a core is given fixes its blocks (row or column
# blocks of Y, row blocks of dX and dW), and the blocks fix the bits, since each block
# is one GEMM whatever thread runs it.  ``team`` says who runs them: the OpenMP team, or
# (team 1) the calling thread one block after the other.  The training step uses that to
# fall back to one thread when its team stalls, without changing its results; for a
# given thread count a step is bitwise reproducible.  Between thread counts the GEMM
# blocks differ (float32 dW and dX then differ in the last bits; float64 was bitwise
# equal on the shapes measured); the delta, the bias gradient, the loss and the
# optimizer update never depend on the thread count.

cdef enum:
    # Columns per block of the fused delta / bias-gradient pass (its double
    # accumulators live on the stack).
    BIAS_COLUMN_BLOCK = 64


cdef void dense_forward_rows(int act, const floating* X, const floating* W,
                             const floating* b, floating* Y, Py_ssize_t row_start,
                             Py_ssize_t row_stop, Py_ssize_t n_in,
                             Py_ssize_t n_out) noexcept nogil:
    cdef Py_ssize_t rows = row_stop - row_start
    if rows <= 0:
        return
    gemm_row_chunks(False, False, <int>rows, <int>n_out, <int>n_in, <floating>1,
                    X + row_start * n_in, <int>max(n_in, 1), W, <int>max(n_out, 1),
                    <floating>0, Y + row_start * n_out, <int>max(n_out, 1),
                    FORWARD_CHUNK_MIN_ROWS)
    bias_activation_rows(act, b, Y, row_start, row_stop, n_out)


cdef void dense_forward_cols(int act, const floating* X, const floating* W,
                             const floating* b, floating* Y, Py_ssize_t n_samples,
                             Py_ssize_t col_start, Py_ssize_t col_stop, Py_ssize_t n_in,
                             Py_ssize_t n_out) noexcept nogil:
    """Y[:, cols] = f(X @ W[:, cols] + b[cols]) for an elementwise activation f."""
    cdef Py_ssize_t i, j, cols = col_stop - col_start
    cdef floating* y
    if cols <= 0:
        return
    gemm(False, False, <int>n_samples, <int>cols, <int>n_in, <floating>1, X,
         <int>max(n_in, 1), W + col_start, <int>max(n_out, 1), <floating>0, Y + col_start,
         <int>max(n_out, 1))
    for i in range(n_samples):
        y = Y + i * n_out
        if b != NULL:
            for j in range(col_start, col_stop):
                y[j] = y[j] + b[j]
        if act != ACT_IDENTITY:
            activation_range(act, y, y, col_start, col_stop)


cdef void dense_forward_core(int act, const floating* X,      # IN (n_samples, n_in)
                             const floating* W,                # IN (n_in, n_out)
                             const floating* b,                # IN (n_out,) or NULL
                             floating* Y,                      # OUT (n_samples, n_out)
                             Py_ssize_t n_samples, Py_ssize_t n_in, Py_ssize_t n_out,
                             int n_threads, int team, Py_ssize_t gemm_min) noexcept nogil:
    """``n_threads`` and ``gemm_min`` (multiply-adds per thread) fix the blocks (of
    rows, or of columns when Y is wider than tall; see the Design note), and so the
    bits of Y; ``team`` runs them: 1 runs the same blocks one after the other on the
    calling thread."""
    cdef int nt
    cdef Py_ssize_t t, s, block
    if n_samples == 0 or n_out == 0:
        return
    nt = threads_for(n_threads, n_samples * max(n_in, 1) * n_out, gemm_min)
    if nt > 1 and n_out > n_samples and act != ACT_SOFTMAX:
        nt = <int>min(<Py_ssize_t>nt, ceil_div(n_out, ALIGN_ELEMENTS))
        block = thread_block(n_out, nt)
        if team <= 1:
            for s in range(nt):
                dense_forward_cols(act, X, W, b, Y, n_samples, min(s * block, n_out),
                                   min((s + 1) * block, n_out), n_in, n_out)
            return
        for t in prange(nt, schedule='static', num_threads=nt):
            dense_forward_cols(act, X, W, b, Y, n_samples, min(t * block, n_out),
                               min((t + 1) * block, n_out), n_in, n_out)
        return
    nt = <int>min(<Py_ssize_t>nt, n_samples)
    if nt <= 1:
        dense_forward_rows(act, X, W, b, Y, 0, n_samples, n_in, n_out)
        return
    block = ceil_div(n_samples, nt)
    if team <= 1:
        for s in range(nt):
            dense_forward_rows(act, X, W, b, Y, min(s * block, n_samples),
                               min((s + 1) * block, n_samples), n_in, n_out)
        return
    for t in prange(nt, schedule='static', num_threads=nt):
        dense_forward_rows(act, X, W, b, Y, min(t * block, n_samples),
                           min((t + 1) * block, n_samples), n_in, n_out)


cdef void delta_bias_block(int act, const floating* Y, const floating* dY, floating* D,
                           floating* db, Py_ssize_t n_samples, Py_ssize_t n_out,
                           Py_ssize_t col_start, Py_ssize_t col_stop) noexcept nogil:
    """D[:, cols] = dY * f'(Y) (act 'identity': D is given, only summed) and
    db[cols] = sum over rows of D."""
    cdef double[BIAS_COLUMN_BLOCK] acc
    cdef Py_ssize_t i, j, width = col_stop - col_start
    cdef const floating* d
    for j in range(width):
        acc[j] = 0
    for i in range(n_samples):
        if act != ACT_IDENTITY:
            activation_backward_range(act, Y + i * n_out, dY + i * n_out, D + i * n_out,
                                      col_start, col_stop)
        d = D + i * n_out + col_start
        for j in range(width):
            acc[j] += d[j]
    for j in range(width):
        db[col_start + j] = <floating>acc[j]


cdef const floating* delta_and_bias_grad(int act, const floating* Y, const floating* dY,
                                         floating* delta, floating* db,
                                         Py_ssize_t n_samples, Py_ssize_t n_out,
                                         int n_threads) noexcept nogil:
    """Compute D = dY * f'(Y) into ``delta`` (or use dY itself for 'identity') and the
    bias gradient; return D.  Its column blocks do not depend on ``n_threads``."""
    cdef const floating* D = dY
    cdef Py_ssize_t n_blocks = ceil_div(n_out, BIAS_COLUMN_BLOCK)
    cdef Py_ssize_t blk
    cdef int nt
    if act == ACT_SOFTMAX:
        activation_backward_core(ACT_SOFTMAX, Y, dY, delta, n_samples, n_out, n_threads)
        D = delta
        act = ACT_IDENTITY        # the column pass below only sums
    elif act != ACT_IDENTITY:
        D = delta
    nt = threads_for(n_threads, n_samples * n_out, ELEMENTWISE_MIN_PER_THREAD)
    nt = <int>min(<Py_ssize_t>nt, n_blocks)
    if nt <= 1:
        for blk in range(n_blocks):
            delta_bias_block(act, Y, dY, <floating*>D, db, n_samples, n_out,
                             blk * BIAS_COLUMN_BLOCK, min((blk + 1) * BIAS_COLUMN_BLOCK, n_out))
    else:
        for blk in prange(n_blocks, schedule='static', num_threads=nt):
            delta_bias_block(act, Y, dY, <floating*>D, db, n_samples, n_out,
                             blk * BIAS_COLUMN_BLOCK, min((blk + 1) * BIAS_COLUMN_BLOCK, n_out))
    return D


cdef void weight_input_grads_part(const floating* X, const floating* W, const floating* D,
                                  floating* dW, floating* dX, Py_ssize_t n_samples,
                                  Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t in_start,
                                  Py_ssize_t in_stop, Py_ssize_t row_start,
                                  Py_ssize_t row_stop) noexcept nogil:
    """dW[in_start:in_stop] = X[:, in_start:in_stop]^T @ D and
    dX[row_start:row_stop] = D[row_start:row_stop] @ W^T (when dX is not NULL)."""
    if in_stop > in_start and n_out > 0:
        gemm_row_chunks(True, False, <int>(in_stop - in_start), <int>n_out,
                        <int>n_samples, <floating>1, X + in_start, <int>max(n_in, 1), D,
                        <int>max(n_out, 1), <floating>0, dW + in_start * n_out,
                        <int>max(n_out, 1), WEIGHT_GRAD_CHUNK_MIN_ROWS, True)
    if dX != NULL and row_stop > row_start and n_in > 0:
        gemm(False, True, <int>(row_stop - row_start), <int>n_in, <int>n_out,
             <floating>1, D + row_start * n_out, <int>max(n_out, 1), W, <int>max(n_out, 1),
             <floating>0, dX + row_start * n_in, <int>max(n_in, 1))


cdef void dense_backward_core(int act, const floating* X,     # IN (n_samples, n_in)
                              const floating* W,               # IN (n_in, n_out)
                              const floating* Y,               # IN (n_samples, n_out)
                              const floating* dY,              # IN (n_samples, n_out)
                              floating* delta,                 # WORK (n_samples, n_out)
                              floating* dX,                    # OUT (n_samples, n_in) or NULL
                              floating* dW,                    # OUT (n_in, n_out)
                              floating* db,                    # OUT (n_out,)
                              Py_ssize_t n_samples, Py_ssize_t n_in, Py_ssize_t n_out,
                              int n_threads, int team, Py_ssize_t gemm_min) noexcept nogil:
    """``n_threads`` fixes the blocks of dW and dX (and so their bits); ``team`` runs
    them (1: one after the other on the calling thread, as dense_forward_core)."""
    cdef const floating* D
    cdef Py_ssize_t t, s, in_block, row_block
    cdef Py_ssize_t work = n_samples * n_in * n_out * (2 if dX != NULL else 1)
    cdef int nt
    D = delta_and_bias_grad(act, Y, dY, delta, db, n_samples, n_out, team)
    nt = threads_for(n_threads, work, gemm_min)
    nt = <int>min(<Py_ssize_t>nt, max(n_in, n_samples))
    if nt <= 1:
        weight_input_grads_part(X, W, D, dW, dX, n_samples, n_in, n_out,
                                0, n_in, 0, n_samples)
        return
    in_block = ceil_div(n_in, nt)
    row_block = ceil_div(n_samples, nt)
    if team <= 1:
        for s in range(nt):
            weight_input_grads_part(X, W, D, dW, dX, n_samples, n_in, n_out,
                                    min(s * in_block, n_in), min((s + 1) * in_block, n_in),
                                    min(s * row_block, n_samples),
                                    min((s + 1) * row_block, n_samples))
        return
    for t in prange(nt, schedule='static', num_threads=nt):
        weight_input_grads_part(X, W, D, dW, dX, n_samples, n_in, n_out,
                                min(t * in_block, n_in), min((t + 1) * in_block, n_in),
                                min(t * row_block, n_samples),
                                min((t + 1) * row_block, n_samples))


def dense_forward(int act, const floating[:, ::1] X, const floating[:, ::1] W,
                  const floating[::1] b, floating[:, ::1] Y, int n_threads):
    """Y = f(X @ W + b) on validated arrays (``gdcore.kernels.dense_forward``);
    b may be None (no bias)."""
    cdef const floating* b_ptr = &b[0] if b is not None and b.shape[0] > 0 else NULL
    with nogil:
        blas_threads_single()
        dense_forward_core(act, cptr2(X), cptr2(W), b_ptr, ptr2(Y), X.shape[0],
                           X.shape[1], W.shape[1], n_threads, n_threads,
                           GEMM_MIN_PER_THREAD)
        blas_threads_restore()


def dense_backward(int act, const floating[:, ::1] X, const floating[:, ::1] W,
                   const floating[:, ::1] Y, const floating[:, ::1] dY,
                   floating[:, ::1] delta, floating[:, ::1] dX, floating[:, ::1] dW,
                   floating[::1] db, int n_threads):
    """Layer gradients on validated arrays (``gdcore.kernels.dense_backward``).
    ``delta`` is the (n_samples, n_out) workspace, None for 'identity'; ``dX`` is None
    when it is not wanted."""
    cdef floating* dX_ptr = ptr2(dX) if dX is not None else NULL
    cdef floating* delta_ptr = ptr2(delta) if delta is not None else NULL
    with nogil:
        blas_threads_single()
        dense_backward_core(act, cptr2(X), cptr2(W), cptr2(Y), cptr2(dY), delta_ptr, dX_ptr,
                            ptr2(dW), ptr1(db), X.shape[0], X.shape[1], W.shape[1],
                            n_threads, n_threads, GEMM_MIN_PER_THREAD)
        blas_threads_restore()
