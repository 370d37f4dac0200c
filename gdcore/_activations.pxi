# Activations and their backward pass (included by _native.pxi).
#
# Design
# ------
# Elementwise activations run over the flat array in contiguous ranges, one per thread,
# and give the same bits for any thread count.  Softmax works per row: max, exp of the
# shifted row, a sum accumulated in double, one division per element.  Work below
# ELEMENTWISE_MIN_PER_THREAD elements runs on one thread.

cdef inline floating act_value(int act, floating u) noexcept nogil:
    """f(u) for the elementwise activations (all but softmax)."""
    cdef floating zero = 0
    if act == ACT_SIGMOID:
        if floating is float:
            return sigmoid_f32(u)
        else:
            return sigmoid_f64(u)
    elif act == ACT_TANH:
        if floating is float:
            return tanh_f32(u)
        else:
            return tanh_f64(u)
    elif act == ACT_RELU:
        # numpy.maximum(u, 0): NaN passes through (the comparison is false), -0.0
        # becomes +0.0; one comparison, so the loop stays a vector select
        return zero if u <= zero else u
    return u


cdef void activation_range(int act, const floating* U, floating* Y,
                           Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    """Y[i] = f(U[i]) for i in [start, stop); one loop per activation, so each
    vectorises."""
    cdef Py_ssize_t i
    if act == ACT_SIGMOID:
        for i in range(start, stop):
            Y[i] = act_value(ACT_SIGMOID, U[i])
    elif act == ACT_TANH:
        for i in range(start, stop):
            Y[i] = act_value(ACT_TANH, U[i])
    elif act == ACT_RELU:
        for i in range(start, stop):
            Y[i] = act_value(ACT_RELU, U[i])
    elif U != Y:
        for i in range(start, stop):
            Y[i] = U[i]


cdef void bias_activation_rows(int act, const floating* b, floating* Y,
                               Py_ssize_t row_start, Py_ssize_t row_stop,
                               Py_ssize_t n_cols) noexcept nogil:
    """Y[i, :] = f(Y[i, :] + b) for rows [row_start, row_stop): the epilogue of a dense
    layer, run on rows the GEMM just wrote.  b may be NULL (no bias)."""
    cdef Py_ssize_t i, j
    cdef floating* y
    for i in range(row_start, row_stop):
        y = Y + i * n_cols
        if b != NULL:
            for j in range(n_cols):
                y[j] = y[j] + b[j]
        if act == ACT_SOFTMAX:
            softmax_row(y, y, n_cols)
        elif act != ACT_IDENTITY:
            activation_range(act, y, y, 0, n_cols)


cdef void softmax_row(const floating* u, floating* y, Py_ssize_t n) noexcept nogil:
    """y = exp(u - max u) / sum(exp(u - max u)); u and y may be the same row."""
    cdef Py_ssize_t j
    cdef floating m
    cdef floating s
    cdef double total = 0
    if n == 0:
        return
    m = u[0]
    for j in range(1, n):
        if u[j] > m:
            m = u[j]
    for j in range(n):
        if floating is float:
            y[j] = exp_f32(u[j] - m)
        else:
            y[j] = exp_f64(u[j] - m)
    for j in range(n):
        total += y[j]
    s = <floating>total
    for j in range(n):
        y[j] = y[j] / s


cdef void activation_core(int act, const floating* U, floating* Y, Py_ssize_t n_rows,
                          Py_ssize_t n_cols, int n_threads) noexcept nogil:
    cdef Py_ssize_t n = n_rows * n_cols
    cdef int nt = threads_for(n_threads, n, ELEMENTWISE_MIN_PER_THREAD)
    cdef Py_ssize_t t, block, i
    if act == ACT_SOFTMAX:
        nt = min(nt, <int>max(n_rows, 1))
        if nt == 1:
            for i in range(n_rows):
                softmax_row(U + i * n_cols, Y + i * n_cols, n_cols)
        else:
            for i in prange(n_rows, schedule='static', num_threads=nt):
                softmax_row(U + i * n_cols, Y + i * n_cols, n_cols)
        return
    if nt == 1:
        activation_range(act, U, Y, 0, n)
        return
    block = thread_block(n, nt)
    for t in prange(nt, schedule='static', num_threads=nt):
        activation_range(act, U, Y, min(t * block, n), min((t + 1) * block, n))


cdef void activation_backward_range(int act, const floating* Y, const floating* dY,
                                    floating* D, Py_ssize_t start,
                                    Py_ssize_t stop) noexcept nogil:
    """D[i] = dY[i] f'(from Y[i]) for the elementwise activations, in the reference's
    operation order: (dY * Y) * (1 - Y) and dY * (1 - Y * Y)."""
    cdef Py_ssize_t i
    cdef floating one = 1, zero = 0
    if act == ACT_SIGMOID:
        for i in range(start, stop):
            D[i] = dY[i] * Y[i] * (one - Y[i])
    elif act == ACT_TANH:
        for i in range(start, stop):
            D[i] = dY[i] * (one - Y[i] * Y[i])
    elif act == ACT_RELU:
        for i in range(start, stop):
            D[i] = dY[i] if Y[i] > zero else zero
    elif D != dY:
        for i in range(start, stop):
            D[i] = dY[i]


cdef void softmax_backward_row(const floating* y, const floating* dy, floating* d,
                               Py_ssize_t n) noexcept nogil:
    """d = y * (dy - sum(dy * y)); d may be dy."""
    cdef Py_ssize_t j
    cdef double dot = 0
    cdef floating s
    for j in range(n):
        dot += dy[j] * y[j]
    s = <floating>dot
    for j in range(n):
        d[j] = y[j] * (dy[j] - s)


cdef void activation_backward_core(int act, const floating* Y, const floating* dY,
                                   floating* D, Py_ssize_t n_rows, Py_ssize_t n_cols,
                                   int n_threads) noexcept nogil:
    cdef Py_ssize_t n = n_rows * n_cols
    cdef int nt = threads_for(n_threads, n, ELEMENTWISE_MIN_PER_THREAD)
    cdef Py_ssize_t t, block, i
    if act == ACT_SOFTMAX:
        nt = min(nt, <int>max(n_rows, 1))
        if nt == 1:
            for i in range(n_rows):
                softmax_backward_row(Y + i * n_cols, dY + i * n_cols, D + i * n_cols, n_cols)
        else:
            for i in prange(n_rows, schedule='static', num_threads=nt):
                softmax_backward_row(Y + i * n_cols, dY + i * n_cols, D + i * n_cols, n_cols)
        return
    if nt == 1:
        activation_backward_range(act, Y, dY, D, 0, n)
        return
    block = thread_block(n, nt)
    for t in prange(nt, schedule='static', num_threads=nt):
        activation_backward_range(act, Y, dY, D, min(t * block, n), min((t + 1) * block, n))


def activation_forward(int act, const floating[:, ::1] U, floating[:, ::1] Y, int n_threads):
    """Y = f(U) on validated arrays of one shape (``gdcore.kernels.activation``)."""
    if U.shape[0] == 0 or U.shape[1] == 0:
        return
    with nogil:
        activation_core(act, &U[0, 0], &Y[0, 0], U.shape[0], U.shape[1], n_threads)


def activation_backward(int act, const floating[:, ::1] Y, const floating[:, ::1] dY,
                        floating[:, ::1] D, int n_threads):
    """D = dY * f'(from Y) on validated arrays (``gdcore.kernels.activation_backward``)."""
    if Y.shape[0] == 0 or Y.shape[1] == 0:
        return
    with nogil:
        activation_backward_core(act, &Y[0, 0], &dY[0, 0], &D[0, 0], Y.shape[0],
                                 Y.shape[1], n_threads)
