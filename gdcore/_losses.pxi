# Losses and their canonical deltas, fused (included by _native.pxi).
#
# Design
# ------
# One pass per row computes the row's loss (in double) and, when asked, its delta
# D = (Y - T) / B (or the mse / soft-label variants, see gdcore.reference.losses),
# in the reference's operation order.  Rows are grouped into chunks whose size depends
# only on the batch size; each chunk's loss is summed in row order and the chunk sums
# are added in chunk order, so the loss has the same bits for any thread count.
# Logarithms are libm's, on probabilities clipped below at the dtype's smallest normal
# number (a saturated output gives a large finite loss, never inf).  The clip lets NaN
# through, as numpy.maximum does: a NaN output gives a NaN loss, never a finite one.
# huber, mae and poisson (log input) are torch's HuberLoss, L1Loss and PoissonNLLLoss
# (log_input=True, full=False), averaged over all B * K elements like mse; ``lp`` is
# the loss's parameter (huber's delta).

cdef extern from "float.h":
    double FLT_MIN
    double DBL_MIN

cdef enum:
    # chunks of at least this many rows, at most LOSS_MAX_CHUNKS of them
    LOSS_MIN_CHUNK_ROWS = 128
    LOSS_MAX_CHUNKS = 256

from libc.math cimport fabs


cdef inline bint loss_is_mean(int loss) noexcept nogil:
    """True for the losses averaged over all B * K elements (positive terms)."""
    return loss == LOSS_MSE or loss == LOSS_HUBER or loss == LOSS_MAE or loss == LOSS_POISSON


cdef inline double log_clipped(double p, double tiny) noexcept nogil:
    # "not (p < tiny)" keeps NaN (every comparison with NaN is false)
    return log(tiny if p < tiny else p)


cdef double loss_rows(int loss, const floating* Y,       # IN (n_samples, n_out)
                      const floating* T,                  # IN (n_samples, n_out) or NULL
                      const cnp.int64_t* labels,          # IN (n_samples,) or NULL
                      floating* D,                        # OUT (n_samples, n_out) or NULL
                      Py_ssize_t row_start, Py_ssize_t row_stop, Py_ssize_t n_samples,
                      Py_ssize_t n_out, double lp) noexcept nogil:
    """Sum of the per-row terms of the loss over [row_start, row_stop); writes D rows."""
    cdef Py_ssize_t i, j, label
    cdef const floating* y
    cdef const floating* t
    cdef floating* d
    cdef floating diff, row_sum
    cdef floating batch = <floating>n_samples
    cdef floating mse_scale = <floating>(n_samples * n_out)
    cdef floating one = 1, two = 2
    cdef double tiny = FLT_MIN if floating is float else DBL_MIN
    cdef double total = 0, t64, a64
    cdef floating delta = <floating>lp, zero = 0, e
    for i in range(row_start, row_stop):
        y = Y + i * n_out
        d = D + i * n_out if D != NULL else NULL
        if loss == LOSS_CROSS_ENTROPY and labels != NULL:
            label = <Py_ssize_t>labels[i]
            total += log_clipped(y[label], tiny)
            if d != NULL:
                for j in range(n_out):
                    d[j] = y[j] / batch
                d[label] = (y[label] - one) / batch
            continue
        t = T + i * n_out
        if loss == LOSS_SQUARED_ERROR or loss == LOSS_MSE:
            for j in range(n_out):
                diff = y[j] - t[j]
                total += <double>diff * <double>diff
            if d != NULL:
                if loss == LOSS_MSE:
                    for j in range(n_out):
                        d[j] = two * (y[j] - t[j]) / mse_scale
                else:
                    for j in range(n_out):
                        d[j] = (y[j] - t[j]) / batch
        elif loss == LOSS_HUBER:
            for j in range(n_out):
                a64 = fabs(<double>y[j] - <double>t[j])
                total += 0.5 * a64 * a64 if a64 < lp else lp * (a64 - 0.5 * lp)
            if d != NULL:
                for j in range(n_out):
                    diff = y[j] - t[j]
                    diff = -delta if diff < -delta else (delta if diff > delta else diff)
                    d[j] = diff / mse_scale
        elif loss == LOSS_MAE:
            for j in range(n_out):
                total += fabs(<double>y[j] - <double>t[j])
            if d != NULL:
                for j in range(n_out):
                    # numpy.sign: 0 at 0, NaN for NaN
                    diff = y[j] - t[j]
                    d[j] = (one if diff > zero else (-one if diff < zero else diff)) / mse_scale
        elif loss == LOSS_POISSON:
            for j in range(n_out):
                total += exp_f64(<double>y[j]) - <double>t[j] * <double>y[j]
            if d != NULL:
                for j in range(n_out):
                    if floating is float:
                        e = exp_f32(y[j])
                    else:
                        e = exp_f64(y[j])
                    d[j] = (e - t[j]) / mse_scale
        elif loss == LOSS_CROSS_ENTROPY:
            row_sum = 0
            for j in range(n_out):
                total += <double>t[j] * log_clipped(y[j], tiny)
                row_sum = row_sum + t[j]
            if d != NULL:
                for j in range(n_out):
                    d[j] = (y[j] * row_sum - t[j]) / batch
        else:
            for j in range(n_out):
                t64 = t[j]
                total += t64 * log_clipped(y[j], tiny) + (1 - t64) * log_clipped(1 - <double>y[j], tiny)
            if d != NULL:
                for j in range(n_out):
                    d[j] = (y[j] - t[j]) / batch
    return total


cdef double loss_core(int loss, const floating* Y, const floating* T,
                      const cnp.int64_t* labels, floating* D, Py_ssize_t n_samples,
                      Py_ssize_t n_out, int n_threads, double lp=0) noexcept nogil:
    """The batch loss (and D when not NULL); NaN for an empty batch."""
    cdef double[LOSS_MAX_CHUNKS] partial
    cdef Py_ssize_t chunk_rows, n_chunks, c
    cdef double total = 0
    cdef int nt
    if n_samples == 0:
        return NAN
    chunk_rows = max(<Py_ssize_t>LOSS_MIN_CHUNK_ROWS, ceil_div(n_samples, LOSS_MAX_CHUNKS))
    n_chunks = ceil_div(n_samples, chunk_rows)
    nt = threads_for(n_threads, n_samples * max(n_out, 1), ELEMENTWISE_MIN_PER_THREAD)
    nt = <int>min(<Py_ssize_t>nt, n_chunks)
    if nt == 1:
        for c in range(n_chunks):
            partial[c] = loss_rows(loss, Y, T, labels, D, c * chunk_rows,
                                   min((c + 1) * chunk_rows, n_samples), n_samples, n_out,
                                   lp)
    else:
        for c in prange(n_chunks, schedule='static', num_threads=nt):
            partial[c] = loss_rows(loss, Y, T, labels, D, c * chunk_rows,
                                   min((c + 1) * chunk_rows, n_samples), n_samples, n_out,
                                   lp)
    for c in range(n_chunks):
        total += partial[c]
    if loss == LOSS_SQUARED_ERROR:
        return 0.5 * total / n_samples
    if loss_is_mean(loss):
        return total / max(n_samples * n_out, 1)
    return -total / n_samples


def loss_delta_targets(int loss, const floating[:, ::1] Y, const floating[:, ::1] T,
                       floating[:, ::1] D, int n_threads, double lp=0):
    """Loss (and D unless D is None) for (n_samples, n_out) targets T; ``lp``: the
    loss's parameter (huber's delta)."""
    cdef double value
    cdef floating* D_ptr = ptr2(D) if D is not None else NULL
    with nogil:
        value = loss_core(loss, cptr2(Y), cptr2(T), NULL, D_ptr, Y.shape[0], Y.shape[1],
                          n_threads, lp)
    return value


def loss_delta_labels(int loss, const floating[:, ::1] Y, const cnp.int64_t[::1] labels,
                      floating[:, ::1] D, int n_threads):
    """Cross-entropy loss (and D unless D is None) for integer labels in [0, n_out)."""
    cdef double value
    cdef floating* D_ptr = ptr2(D) if D is not None else NULL
    cdef const cnp.int64_t* labels_ptr = &labels[0] if labels.shape[0] > 0 else NULL
    with nogil:
        value = loss_core(LOSS_CROSS_ENTROPY, cptr2(Y), NULL, labels_ptr, D_ptr,
                          Y.shape[0], Y.shape[1], n_threads)
    return value
