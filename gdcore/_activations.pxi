# Activations and their backward pass (included by _native.pxi).
#
# Design
# ------
# Elementwise activations run over the flat array in contiguous ranges, one per thread,
# and give the same bits for any thread count.  Softmax works per row: max, exp of the
# shifted row, a sum accumulated in double, one division per element.  Work below
# ELEMENTWISE_MIN_PER_THREAD elements runs on one thread.
#
# The parametrised activations (leaky_relu .. silu, the codes from ACT_LEAKY_RELU on)
# take two float64 parameters p0, p1 (see gdcore._validation.native_params) and are
# not fused into the dense layer's epilogue: the network step runs them as their own
# pass over the layer output.  Their backward pass reads "stored values" S: the output
# Y, except for gelu and silu, whose derivative is not a function of Y, where S is the
# pre-activation U.

cdef extern from "math.h" nogil:
    float erff(float)
    double erf(double)
    float expm1f(float)
    double expm1(double)
    float log1pf(float)
    double log1p(double)

cdef enum:
    # first code of the parametrised activations
    ACT_FIRST_PARAM = ACT_LEAKY_RELU
    # elements per activation call of a dense layer's epilogue (whole rows; in L1)
    EPILOGUE_GROUP = 1024

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


cdef inline floating param_act_value(int act, double p0, double p1,
                                     floating u) noexcept nogil:
    """f(u) of a parametrised activation, in torch's formulas."""
    cdef floating zero = 0, one = 1, half = 0.5, a = <floating>p0, bu, s, inner
    if act == ACT_LEAKY_RELU:
        return u if u > zero else u * a
    elif act == ACT_ELU:
        if floating is float:
            return u if u > zero else a * expm1f(u)
        else:
            return u if u > zero else a * expm1(u)
    elif act == ACT_GELU:
        if p0 != 0:       # tanh approximation
            inner = <floating>0.7978845608028654 * (u + <floating>0.044715 * u * u * u)
            if floating is float:
                return half * u * (one + tanh_f32(inner))
            else:
                return half * u * (one + tanh_f64(inner))
        if floating is float:
            return u * half * (one + erff(u * <floating>0.7071067811865476))
        else:
            return u * half * (one + erf(u * <floating>0.7071067811865476))
    elif act == ACT_SOFTPLUS:
        # log1p(exp(b u)) / b as max(b u, 0) + log1p(exp(-|b u|)): never overflows
        bu = a * u
        if bu > <floating>p1:
            return u
        if floating is float:
            return ((bu if bu > zero else zero) + log1pf(exp_f32(-bu if bu > zero else bu))) / a
        else:
            return ((bu if bu > zero else zero) + log1p(exp_f64(-bu if bu > zero else bu))) / a
    # silu
    if floating is float:
        s = sigmoid_f32(u)
    else:
        s = sigmoid_f64(u)
    return u * s


cdef inline floating param_act_slope(int act, double p0, double p1,
                                     floating s) noexcept nogil:
    """f'(u) of a parametrised activation from its stored value s (the output y, or
    the pre-activation u for gelu and silu)."""
    cdef floating zero = 0, one = 1, half = 0.5, a = <floating>p0, t, x2, sg, by
    if act == ACT_LEAKY_RELU:
        return one if s > zero else a
    elif act == ACT_ELU:
        return one if s > zero else s + a
    elif act == ACT_SOFTPLUS:
        # sigmoid(b u) = 1 - exp(-b y)
        by = a * s
        if by > <floating>p1:
            return one
        if floating is float:
            return -expm1f(-by)
        else:
            return -expm1(-by)
    elif act == ACT_GELU:
        x2 = s * s
        if p0 != 0:
            if floating is float:
                t = tanh_f32(<floating>0.7978845608028654 * (s + <floating>0.044715 * x2 * s))
            else:
                t = tanh_f64(<floating>0.7978845608028654 * (s + <floating>0.044715 * x2 * s))
            return (half * (one + t) + half * s * (one - t * t)
                    * (<floating>0.7978845608028654 * (one + <floating>0.134145 * x2)))
        if floating is float:
            return (half * (one + erff(s * <floating>0.7071067811865476))
                    + s * exp_f32(-half * x2) * <floating>0.3989422804014327)
        else:
            return (half * (one + erf(s * <floating>0.7071067811865476))
                    + s * exp_f64(-half * x2) * <floating>0.3989422804014327)
    # silu
    if floating is float:
        sg = sigmoid_f32(s)
    else:
        sg = sigmoid_f64(s)
    return sg * (one + s * (one - sg))


cdef void param_activation_range(int act, double p0, double p1, const floating* U,
                                 floating* Y, Py_ssize_t start,
                                 Py_ssize_t stop) noexcept nogil:
    """Y[i] = f(U[i]) for a parametrised activation; one loop per activation."""
    cdef Py_ssize_t i
    if act == ACT_LEAKY_RELU:
        for i in range(start, stop):
            Y[i] = param_act_value(ACT_LEAKY_RELU, p0, p1, U[i])
    elif act == ACT_ELU:
        for i in range(start, stop):
            Y[i] = param_act_value(ACT_ELU, p0, p1, U[i])
    elif act == ACT_GELU and p0 != 0:
        # the tanh form in a loop of its own: no libm call in it, so it vectorises
        for i in range(start, stop):
            Y[i] = param_act_value(ACT_GELU, 1.0, p1, U[i])
    elif act == ACT_GELU:
        for i in range(start, stop):
            Y[i] = param_act_value(ACT_GELU, 0.0, p1, U[i])
    elif act == ACT_SOFTPLUS:
        for i in range(start, stop):
            Y[i] = param_act_value(ACT_SOFTPLUS, p0, p1, U[i])
    else:
        for i in range(start, stop):
            Y[i] = param_act_value(ACT_SILU, p0, p1, U[i])


cdef void param_activation_backward_range(int act, double p0, double p1,
                                          const floating* S, const floating* dY,
                                          floating* D, Py_ssize_t start,
                                          Py_ssize_t stop) noexcept nogil:
    """D[i] = dY[i] f'(from S[i]) for a parametrised activation."""
    cdef Py_ssize_t i
    if act == ACT_LEAKY_RELU:
        for i in range(start, stop):
            D[i] = dY[i] * param_act_slope(ACT_LEAKY_RELU, p0, p1, S[i])
    elif act == ACT_ELU:
        for i in range(start, stop):
            D[i] = dY[i] * param_act_slope(ACT_ELU, p0, p1, S[i])
    elif act == ACT_GELU and p0 != 0:
        for i in range(start, stop):
            D[i] = dY[i] * param_act_slope(ACT_GELU, 1.0, p1, S[i])
    elif act == ACT_GELU:
        for i in range(start, stop):
            D[i] = dY[i] * param_act_slope(ACT_GELU, 0.0, p1, S[i])
    elif act == ACT_SOFTPLUS:
        for i in range(start, stop):
            D[i] = dY[i] * param_act_slope(ACT_SOFTPLUS, p0, p1, S[i])
    else:
        for i in range(start, stop):
            D[i] = dY[i] * param_act_slope(ACT_SILU, p0, p1, S[i])


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
    layer, run on rows the GEMM just wrote.  b may be NULL (no bias).

    An elementwise f runs over groups of whole rows of about EPILOGUE_GROUP elements,
    not row by row: a narrow layer's rows (15 outputs) are shorter than the vector
    loop's body, and f ran in its scalar remainder (a float32 sigmoid on 512 x 15 took
    ~25 us, 7 % of a 784-15-10 step).  Every element is computed the same way in the
    loop's body and in its remainder, so the grouping does not change the bits."""
    cdef Py_ssize_t i, j, start, stop
    cdef Py_ssize_t group = max(1, EPILOGUE_GROUP // max(n_cols, 1))
    cdef floating* y
    start = row_start
    while start < row_stop:
        stop = min(start + group, row_stop)
        for i in range(start, stop):
            y = Y + i * n_cols
            if b != NULL:
                for j in range(n_cols):
                    y[j] = y[j] + b[j]
            if act == ACT_SOFTMAX:
                softmax_row(y, y, n_cols)
        if act != ACT_SOFTMAX and act != ACT_IDENTITY:
            activation_range(act, Y, Y, start * n_cols, stop * n_cols)
        start = stop


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
                          Py_ssize_t n_cols, int n_threads, double p0=0,
                          double p1=0) noexcept nogil:
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
    if act >= ACT_FIRST_PARAM:
        if nt == 1:
            param_activation_range(act, p0, p1, U, Y, 0, n)
            return
        block = thread_block(n, nt)
        for t in prange(nt, schedule='static', num_threads=nt):
            param_activation_range(act, p0, p1, U, Y, min(t * block, n),
                                   min((t + 1) * block, n))
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
                                   int n_threads, double p0=0, double p1=0) noexcept nogil:
    """D = dY f'(from Y); for the parametrised activations Y holds the stored values
    (the pre-activation for gelu and silu)."""
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
    if act >= ACT_FIRST_PARAM:
        if nt == 1:
            param_activation_backward_range(act, p0, p1, Y, dY, D, 0, n)
            return
        block = thread_block(n, nt)
        for t in prange(nt, schedule='static', num_threads=nt):
            param_activation_backward_range(act, p0, p1, Y, dY, D, min(t * block, n),
                                            min((t + 1) * block, n))
        return
    if nt == 1:
        activation_backward_range(act, Y, dY, D, 0, n)
        return
    block = thread_block(n, nt)
    for t in prange(nt, schedule='static', num_threads=nt):
        activation_backward_range(act, Y, dY, D, min(t * block, n), min((t + 1) * block, n))


def activation_forward(int act, const floating[:, ::1] U, floating[:, ::1] Y, int n_threads,
                       double p0=0, double p1=0):
    """Y = f(U) on validated arrays of one shape (``gdcore.kernels.activation``);
    p0, p1: the parameters of a parametrised activation."""
    if U.shape[0] == 0 or U.shape[1] == 0:
        return
    with nogil:
        activation_core(act, &U[0, 0], &Y[0, 0], U.shape[0], U.shape[1], n_threads, p0, p1)


def activation_backward(int act, const floating[:, ::1] Y, const floating[:, ::1] dY,
                        floating[:, ::1] D, int n_threads, double p0=0, double p1=0):
    """D = dY * f'(from Y) on validated arrays (``gdcore.kernels.activation_backward``);
    Y holds the pre-activation for gelu and silu."""
    if Y.shape[0] == 0 or Y.shape[1] == 0:
        return
    with nogil:
        activation_backward_core(act, &Y[0, 0], &dY[0, 0], &D[0, 0], Y.shape[0],
                                 Y.shape[1], n_threads, p0, p1)
