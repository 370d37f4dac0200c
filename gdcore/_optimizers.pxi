# Fused optimizer updates over flat 1-D buffers (included by _native.pxi).
#
# Design
# ------
# One pass over memory per step: each element's parameter and state are read once,
# updated in registers and written once, in exactly the operation order of
# gdcore.reference.optimizers (torch.optim's single-tensor path), so the results are
# bitwise those of the reference.  Step-dependent scalars (bias corrections, the
# decayed rate) are computed once per call in double, with the same expressions
# Python evaluates in the reference (C pow for **), then rounded to the buffers' dtype
# as NumPy rounds a Python float operand.  Options that change which buffers are
# written (momentum, centered, amsgrad) select one of several inlined copies of the
# loop; the others are selects inside it, so that every variant vectorises.
#
# Threads split the buffers into contiguous ranges (identical bits for any count);
# below OPTIMIZER_MIN_PER_THREAD elements per thread the step runs on one thread.
#
# The entry points validate here, with NumPy's C API, because a Python-level check of
# five buffers and five hyperparameters (~2 us) would cost as much as the whole step on
# 1e4 elements.  The fast checks only accept inputs that are certainly valid; anything
# else goes to gdcore._validation, which raises the error a user reads (naming the
# argument, expected and actual values) or returns a usable copy of ``grads``.

from cpython.float cimport PyFloat_CheckExact, PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_CheckExact, PyLong_AsLongLong
from gdcore._openmp cimport resolve_threads

from gdcore import _validation

cdef enum:
    # ~0.2-0.9 ns per element: 65536 elements are ~15-60 us of work
    OPTIMIZER_MIN_PER_THREAD = 65536


# ---- fast argument checks -------------------------------------------------------

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


cdef object checked_params(object params):
    cdef cnp.ndarray arr
    if cnp.PyArray_Check(params):
        arr = <cnp.ndarray>params
        if (cnp.PyArray_NDIM(arr) == 1 and is_float_typenum(cnp.PyArray_TYPE(arr))
                and vector_ok(arr, cnp.PyArray_TYPE(arr), cnp.PyArray_DIM(arr, 0), True)):
            return params
    return _validation.param_vector(params, "params")


cdef object checked_grads(object grads, cnp.ndarray params):
    if vector_ok(grads, cnp.PyArray_TYPE(params), cnp.PyArray_DIM(params, 0), False):
        return grads
    return _validation.grad_vector(grads, params)


cdef object checked_state(object buf, str name, cnp.ndarray params, str needed_for):
    if vector_ok(buf, cnp.PyArray_TYPE(params), cnp.PyArray_DIM(params, 0), True):
        return buf
    return _validation.state_vector(buf, name, params, needed_for)


cdef double checked_real(object value, str name, double low, bint low_open,
                         double high, bint high_open) except? -1.5:
    """A finite float within the bounds (+-inf for none), or the Python check raises."""
    cdef double x
    if PyFloat_CheckExact(value):
        x = PyFloat_AS_DOUBLE(value)
    elif PyLong_CheckExact(value) and -(1 << 52) < value < (1 << 52):
        x = <double>PyLong_AsLongLong(value)
    else:
        x = NAN                                   # not a plain number: the slow path
    if (isfinite(x) and (x > low if low_open else x >= low)
            and (x < high if high_open else x <= high)):
        return x
    return _validation.check_float(value, name, low if isfinite(low) else None,
                                   high if isfinite(high) else None, low_open, high_open)


cdef long long checked_step(object step) except -1:
    if PyLong_CheckExact(step) and 1 <= step <= _validation.MAX_STEP:
        return PyLong_AsLongLong(step)
    return _validation.check_int(step, "step", low=1, high=_validation.MAX_STEP)


cdef void check_no_overlap(list names, list buffers) except *:
    """Raise (through gdcore._validation) if two buffers share memory."""
    cdef Py_ssize_t i, j
    cdef char* a_lo
    cdef char* b_lo
    cdef Py_ssize_t a_len, b_len
    cdef cnp.ndarray a, b
    for i in range(len(buffers)):
        if buffers[i] is None:
            continue
        a = <cnp.ndarray>buffers[i]
        a_lo = <char*>cnp.PyArray_DATA(a)
        a_len = cnp.PyArray_NBYTES(a)
        for j in range(i + 1, len(buffers)):
            if buffers[j] is None:
                continue
            b = <cnp.ndarray>buffers[j]
            b_lo = <char*>cnp.PyArray_DATA(b)
            b_len = cnp.PyArray_NBYTES(b)
            if a_len > 0 and b_len > 0 and a_lo < b_lo + b_len and b_lo < a_lo + a_len:
                _validation.check_no_overlap(list(zip(names, buffers)))


cdef inline void* data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a) if a is not None else NULL


cdef inline Py_ssize_t thread_block(Py_ssize_t n, int nt) noexcept nogil:
    """Elements per thread: n split into nt contiguous ranges starting on 64-byte
    boundaries.  Thread t works on [min(t * block, n), min((t + 1) * block, n)).

    The range bounds are assigned directly in the prange body (never through a pointer
    to variables of the enclosing function), so that Cython makes them thread-private."""
    return (ceil_div(n, nt) + ALIGN_ELEMENTS - 1) // ALIGN_ELEMENTS * ALIGN_ELEMENTS


# ---- SGD ------------------------------------------------------------------------

cdef inline void sgd_loop(floating* p, const floating* g, floating* buf, Py_ssize_t start,
                          Py_ssize_t stop, double lr, double momentum, double dampening,
                          double weight_decay, bint nesterov, bint first_step,
                          const bint use_momentum) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating neg_lr = <floating>(-lr), mom = <floating>momentum
    cdef floating one_minus_damp = <floating>(1 - dampening), wd = <floating>weight_decay
    cdef bint decay = weight_decay != 0
    cdef floating gi, b
    for i in range(start, stop):
        gi = g[i]
        gi = gi + wd * p[i] if decay else gi
        if use_momentum:
            # the buffer starts as the first gradient
            b = gi if first_step else buf[i] * mom + one_minus_damp * gi
            buf[i] = b
            gi = gi + mom * b if nesterov else b
        p[i] = p[i] + neg_lr * gi


cdef void sgd_range(floating* p, const floating* g, floating* buf, Py_ssize_t start,
                    Py_ssize_t stop, double lr, double momentum, double dampening,
                    double weight_decay, bint nesterov, bint first_step) noexcept nogil:
    # one loop per store pattern, so that each vectorises
    if momentum != 0:
        sgd_loop(p, g, buf, start, stop, lr, momentum, dampening, weight_decay, nesterov,
                 first_step, True)
    else:
        sgd_loop(p, g, buf, start, stop, lr, momentum, dampening, weight_decay, nesterov,
                 first_step, False)


cdef void sgd_core(floating* p, const floating* g, floating* buf, Py_ssize_t n, double lr,
                   double momentum, double dampening, double weight_decay, bint nesterov,
                   bint first_step, int n_threads) noexcept nogil:
    cdef int t, nt = threads_for(n_threads, n, OPTIMIZER_MIN_PER_THREAD)
    cdef Py_ssize_t start, stop, block
    if nt == 1:
        sgd_range(p, g, buf, 0, n, lr, momentum, dampening, weight_decay, nesterov, first_step)
        return
    block = thread_block(n, nt)
    for t in prange(nt, schedule='static', num_threads=nt):
        start = min(t * block, n)
        stop = min((t + 1) * block, n)
        sgd_range(p, g, buf, start, stop, lr, momentum, dampening, weight_decay, nesterov,
                  first_step)


def sgd_update(params, grads, momentum_buffer=None, *, step, lr=1e-3, momentum=0.0,
               dampening=0.0, weight_decay=0.0, nesterov=False, n_threads=None):
    """SGD step; see ``gdcore.reference.sgd_update`` for the equations."""
    cdef long long step_ = checked_step(step)
    cdef double lr_ = checked_real(lr, "lr", 0, False, INFINITY, False)
    cdef double momentum_ = checked_real(momentum, "momentum", 0, False, INFINITY, False)
    cdef double dampening_ = checked_real(dampening, "dampening", -INFINITY, False, INFINITY, False)
    cdef double weight_decay_ = checked_real(weight_decay, "weight_decay", 0, False, INFINITY, False)
    cdef bint nesterov_ = nesterov
    cdef int nt = resolve_threads(n_threads)
    if nesterov_ and (momentum_ <= 0 or dampening_ != 0):
        raise ValueError("nesterov requires momentum > 0 and dampening = 0, got "
                         f"momentum={momentum_}, dampening={dampening_}")
    params = checked_params(params)
    grads = checked_grads(grads, params)
    if momentum_ != 0:
        momentum_buffer = checked_state(momentum_buffer, "momentum_buffer", params,
                                        "when momentum != 0")
    check_no_overlap(["params", "grads", "momentum_buffer"],
                     [params, grads, momentum_buffer if momentum_ != 0 else None])
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>params, 0)
    cdef void* p = data(params)
    cdef void* g = data(grads)
    cdef void* b = data(momentum_buffer) if momentum_ != 0 else NULL
    with nogil:
        if cnp.PyArray_TYPE(<cnp.ndarray>params) == cnp.NPY_FLOAT32:
            sgd_core(<float*>p, <const float*>g, <float*>b, n, lr_, momentum_, dampening_,
                     weight_decay_, nesterov_, step_ == 1, nt)
        else:
            sgd_core(<double*>p, <const double*>g, <double*>b, n, lr_, momentum_, dampening_,
                     weight_decay_, nesterov_, step_ == 1, nt)
    return params


# ---- Adagrad --------------------------------------------------------------------

cdef void adagrad_range(floating* p, const floating* g, floating* state_sum,
                        Py_ssize_t start, Py_ssize_t stop, double clr, double eps,
                        double weight_decay) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating neg_clr = <floating>(-clr), eps_ = <floating>eps
    cdef floating wd = <floating>weight_decay
    cdef bint decay = weight_decay != 0
    cdef floating gi, s, std
    for i in range(start, stop):
        gi = g[i]
        gi = gi + wd * p[i] if decay else gi
        s = state_sum[i] + gi * gi
        state_sum[i] = s
        if floating is float:
            std = sqrtf(s) + eps_
        else:
            std = sqrt(s) + eps_
        p[i] = p[i] + neg_clr * (gi / std)


cdef void adagrad_core(floating* p, const floating* g, floating* state_sum, Py_ssize_t n,
                       double clr, double eps, double weight_decay,
                       int n_threads) noexcept nogil:
    cdef int t, nt = threads_for(n_threads, n, OPTIMIZER_MIN_PER_THREAD)
    cdef Py_ssize_t start, stop, block
    if nt == 1:
        adagrad_range(p, g, state_sum, 0, n, clr, eps, weight_decay)
        return
    block = thread_block(n, nt)
    for t in prange(nt, schedule='static', num_threads=nt):
        start = min(t * block, n)
        stop = min((t + 1) * block, n)
        adagrad_range(p, g, state_sum, start, stop, clr, eps, weight_decay)


def adagrad_update(params, grads, state_sum, *, step, lr=1e-2, lr_decay=0.0,
                   weight_decay=0.0, eps=1e-10, n_threads=None):
    """Adagrad step; see ``gdcore.reference.adagrad_update`` for the equations."""
    cdef long long step_ = checked_step(step)
    cdef double lr_ = checked_real(lr, "lr", 0, False, INFINITY, False)
    cdef double lr_decay_ = checked_real(lr_decay, "lr_decay", 0, False, INFINITY, False)
    cdef double weight_decay_ = checked_real(weight_decay, "weight_decay", 0, False, INFINITY, False)
    cdef double eps_ = checked_real(eps, "eps", 0, True, INFINITY, False)
    cdef int nt = resolve_threads(n_threads)
    params = checked_params(params)
    grads = checked_grads(grads, params)
    state_sum = checked_state(state_sum, "state_sum", params, "by Adagrad")
    check_no_overlap(["params", "grads", "state_sum"], [params, grads, state_sum])
    cdef double clr = lr_ / (1 + <double>(step_ - 1) * lr_decay_)
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>params, 0)
    cdef void* p = data(params)
    cdef void* g = data(grads)
    cdef void* s = data(state_sum)
    with nogil:
        if cnp.PyArray_TYPE(<cnp.ndarray>params) == cnp.NPY_FLOAT32:
            adagrad_core(<float*>p, <const float*>g, <float*>s, n, clr, eps_, weight_decay_, nt)
        else:
            adagrad_core(<double*>p, <const double*>g, <double*>s, n, clr, eps_, weight_decay_, nt)
    return params


# ---- Adadelta -------------------------------------------------------------------

cdef void adadelta_range(floating* p, const floating* g, floating* square_avg,
                         floating* acc_delta, Py_ssize_t start, Py_ssize_t stop, double lr,
                         double rho, double eps, double weight_decay) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating neg_lr = <floating>(-lr), rho_ = <floating>rho
    cdef floating one_minus_rho = <floating>(1 - rho), eps_ = <floating>eps
    cdef floating wd = <floating>weight_decay
    cdef bint decay = weight_decay != 0
    cdef floating gi, v, u, std, delta
    for i in range(start, stop):
        gi = g[i]
        gi = gi + wd * p[i] if decay else gi
        v = square_avg[i] * rho_
        v = v + one_minus_rho * gi * gi
        square_avg[i] = v
        if floating is float:
            std = sqrtf(v + eps_)
            delta = sqrtf(acc_delta[i] + eps_) / std * gi
        else:
            std = sqrt(v + eps_)
            delta = sqrt(acc_delta[i] + eps_) / std * gi
        u = acc_delta[i] * rho_
        u = u + one_minus_rho * delta * delta
        acc_delta[i] = u
        p[i] = p[i] + neg_lr * delta


cdef void adadelta_core(floating* p, const floating* g, floating* square_avg,
                        floating* acc_delta, Py_ssize_t n, double lr, double rho, double eps,
                        double weight_decay, int n_threads) noexcept nogil:
    cdef int t, nt = threads_for(n_threads, n, OPTIMIZER_MIN_PER_THREAD)
    cdef Py_ssize_t start, stop, block
    if nt == 1:
        adadelta_range(p, g, square_avg, acc_delta, 0, n, lr, rho, eps, weight_decay)
        return
    block = thread_block(n, nt)
    for t in prange(nt, schedule='static', num_threads=nt):
        start = min(t * block, n)
        stop = min((t + 1) * block, n)
        adadelta_range(p, g, square_avg, acc_delta, start, stop, lr, rho, eps, weight_decay)


def adadelta_update(params, grads, square_avg, acc_delta, *, lr=1.0, rho=0.9, eps=1e-6,
                    weight_decay=0.0, n_threads=None):
    """Adadelta step; see ``gdcore.reference.adadelta_update`` for the equations."""
    cdef double lr_ = checked_real(lr, "lr", 0, False, INFINITY, False)
    cdef double rho_ = checked_real(rho, "rho", 0, False, 1, False)
    cdef double eps_ = checked_real(eps, "eps", 0, True, INFINITY, False)
    cdef double weight_decay_ = checked_real(weight_decay, "weight_decay", 0, False, INFINITY, False)
    cdef int nt = resolve_threads(n_threads)
    params = checked_params(params)
    grads = checked_grads(grads, params)
    square_avg = checked_state(square_avg, "square_avg", params, "by Adadelta")
    acc_delta = checked_state(acc_delta, "acc_delta", params, "by Adadelta")
    check_no_overlap(["params", "grads", "square_avg", "acc_delta"],
                     [params, grads, square_avg, acc_delta])
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>params, 0)
    cdef void* p = data(params)
    cdef void* g = data(grads)
    cdef void* v = data(square_avg)
    cdef void* u = data(acc_delta)
    with nogil:
        if cnp.PyArray_TYPE(<cnp.ndarray>params) == cnp.NPY_FLOAT32:
            adadelta_core(<float*>p, <const float*>g, <float*>v, <float*>u, n, lr_, rho_,
                          eps_, weight_decay_, nt)
        else:
            adadelta_core(<double*>p, <const double*>g, <double*>v, <double*>u, n, lr_, rho_,
                          eps_, weight_decay_, nt)
    return params


# ---- RMSprop --------------------------------------------------------------------

cdef inline floating lerp(floating start, floating end, floating weight,
                          floating one_minus_weight, bint small_weight) noexcept nogil:
    """torch.lerp: start + w (end - start) for |w| < 0.5, else end - (end - start)(1 - w)."""
    if small_weight:
        return start + weight * (end - start)
    return end - (end - start) * one_minus_weight


cdef inline void rmsprop_loop(floating* p, const floating* g, floating* square_avg,
                              floating* momentum_buffer, floating* grad_avg,
                              Py_ssize_t start, Py_ssize_t stop, double lr, double alpha,
                              double eps, double weight_decay, double momentum,
                              const bint centered, const bint use_momentum) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating neg_lr = <floating>(-lr), alpha_ = <floating>alpha
    cdef floating one_minus_alpha = <floating>(1 - alpha), eps_ = <floating>eps
    cdef floating wd = <floating>weight_decay, mom = <floating>momentum
    cdef floating w = <floating>(1 - alpha)
    cdef floating one_minus_w = <floating>1 - w
    cdef bint small_weight = (w if w >= 0 else -w) < <floating>0.5
    cdef bint decay = weight_decay != 0
    cdef floating gi, v, ga, avg, b
    for i in range(start, stop):
        gi = g[i]
        gi = gi + wd * p[i] if decay else gi
        v = square_avg[i] * alpha_
        v = v + one_minus_alpha * gi * gi
        square_avg[i] = v
        if centered:
            ga = lerp(grad_avg[i], gi, w, one_minus_w, small_weight)
            grad_avg[i] = ga
            v = v - ga * ga
        if floating is float:
            avg = sqrtf(v)
        else:
            avg = sqrt(v)
        avg = avg + eps_
        if use_momentum:
            b = momentum_buffer[i] * mom
            b = b + gi / avg
            momentum_buffer[i] = b
            p[i] = p[i] + neg_lr * b
        else:
            p[i] = p[i] + neg_lr * (gi / avg)


cdef void rmsprop_range(floating* p, const floating* g, floating* square_avg,
                        floating* momentum_buffer, floating* grad_avg, Py_ssize_t start,
                        Py_ssize_t stop, double lr, double alpha, double eps,
                        double weight_decay, double momentum) noexcept nogil:
    # one loop per store pattern, so that each vectorises
    if grad_avg != NULL and momentum > 0:
        rmsprop_loop(p, g, square_avg, momentum_buffer, grad_avg, start, stop, lr, alpha,
                     eps, weight_decay, momentum, True, True)
    elif grad_avg != NULL:
        rmsprop_loop(p, g, square_avg, momentum_buffer, grad_avg, start, stop, lr, alpha,
                     eps, weight_decay, momentum, True, False)
    elif momentum > 0:
        rmsprop_loop(p, g, square_avg, momentum_buffer, grad_avg, start, stop, lr, alpha,
                     eps, weight_decay, momentum, False, True)
    else:
        rmsprop_loop(p, g, square_avg, momentum_buffer, grad_avg, start, stop, lr, alpha,
                     eps, weight_decay, momentum, False, False)


cdef void rmsprop_core(floating* p, const floating* g, floating* square_avg,
                       floating* momentum_buffer, floating* grad_avg, Py_ssize_t n,
                       double lr, double alpha, double eps, double weight_decay,
                       double momentum, int n_threads) noexcept nogil:
    cdef int t, nt = threads_for(n_threads, n, OPTIMIZER_MIN_PER_THREAD)
    cdef Py_ssize_t start, stop, block
    if nt == 1:
        rmsprop_range(p, g, square_avg, momentum_buffer, grad_avg, 0, n, lr, alpha, eps,
                      weight_decay, momentum)
        return
    block = thread_block(n, nt)
    for t in prange(nt, schedule='static', num_threads=nt):
        start = min(t * block, n)
        stop = min((t + 1) * block, n)
        rmsprop_range(p, g, square_avg, momentum_buffer, grad_avg, start, stop, lr, alpha,
                      eps, weight_decay, momentum)


def rmsprop_update(params, grads, square_avg, momentum_buffer=None, grad_avg=None, *,
                   lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                   centered=False, n_threads=None):
    """RMSprop step; see ``gdcore.reference.rmsprop_update`` for the equations."""
    cdef double lr_ = checked_real(lr, "lr", 0, False, INFINITY, False)
    cdef double alpha_ = checked_real(alpha, "alpha", 0, False, INFINITY, False)
    cdef double eps_ = checked_real(eps, "eps", 0, True, INFINITY, False)
    cdef double weight_decay_ = checked_real(weight_decay, "weight_decay", 0, False, INFINITY, False)
    cdef double momentum_ = checked_real(momentum, "momentum", 0, False, INFINITY, False)
    cdef bint centered_ = centered
    cdef int nt = resolve_threads(n_threads)
    params = checked_params(params)
    grads = checked_grads(grads, params)
    square_avg = checked_state(square_avg, "square_avg", params, "by RMSprop")
    if momentum_ > 0:
        momentum_buffer = checked_state(momentum_buffer, "momentum_buffer", params,
                                        "when momentum > 0")
    if centered_:
        grad_avg = checked_state(grad_avg, "grad_avg", params, "when centered=True")
    check_no_overlap(["params", "grads", "square_avg", "momentum_buffer", "grad_avg"],
                     [params, grads, square_avg,
                      momentum_buffer if momentum_ > 0 else None,
                      grad_avg if centered_ else None])
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>params, 0)
    cdef void* p = data(params)
    cdef void* g = data(grads)
    cdef void* v = data(square_avg)
    cdef void* b = data(momentum_buffer) if momentum_ > 0 else NULL
    cdef void* a = data(grad_avg) if centered_ else NULL
    with nogil:
        if cnp.PyArray_TYPE(<cnp.ndarray>params) == cnp.NPY_FLOAT32:
            rmsprop_core(<float*>p, <const float*>g, <float*>v, <float*>b, <float*>a, n, lr_,
                         alpha_, eps_, weight_decay_, momentum_, nt)
        else:
            rmsprop_core(<double*>p, <const double*>g, <double*>v, <double*>b, <double*>a, n,
                         lr_, alpha_, eps_, weight_decay_, momentum_, nt)
    return params


# ---- Adam and AdamW -------------------------------------------------------------

cdef inline void adam_loop(floating* p, const floating* g, floating* exp_avg,
                           floating* exp_avg_sq, floating* max_exp_avg_sq, Py_ssize_t start,
                           Py_ssize_t stop, double beta1, double beta2, double eps,
                           double weight_decay, bint decoupled, double decay_factor,
                           double step_size, double bias_correction2_sqrt,
                           const bint amsgrad) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating w1 = <floating>(1 - beta1)
    cdef floating one_minus_w1 = <floating>1 - w1
    cdef bint small_weight = (w1 if w1 >= 0 else -w1) < <floating>0.5
    cdef floating beta2_ = <floating>beta2, one_minus_beta2 = <floating>(1 - beta2)
    cdef floating eps_ = <floating>eps, wd = <floating>weight_decay
    cdef floating decay = <floating>decay_factor, neg_step = <floating>(-step_size)
    cdef floating bc2_sqrt = <floating>bias_correction2_sqrt
    cdef bint coupled_decay = weight_decay != 0 and not decoupled
    cdef bint decoupled_decay = weight_decay != 0 and decoupled
    cdef floating gi, pi, m, v, vmax, denom
    for i in range(start, stop):
        gi = g[i]
        pi = p[i]
        pi = pi * decay if decoupled_decay else pi
        gi = gi + wd * pi if coupled_decay else gi
        m = lerp(exp_avg[i], gi, w1, one_minus_w1, small_weight)
        exp_avg[i] = m
        v = exp_avg_sq[i] * beta2_
        v = v + one_minus_beta2 * gi * gi
        exp_avg_sq[i] = v
        if amsgrad:
            # numpy.maximum / torch.maximum: NaN wins
            vmax = max_exp_avg_sq[i]
            vmax = vmax if (vmax >= v or vmax != vmax) else v
            max_exp_avg_sq[i] = vmax
            v = vmax
        if floating is float:
            denom = sqrtf(v) / bc2_sqrt + eps_
        else:
            denom = sqrt(v) / bc2_sqrt + eps_
        p[i] = pi + neg_step * (m / denom)


cdef void adam_range(floating* p, const floating* g, floating* exp_avg, floating* exp_avg_sq,
                     floating* max_exp_avg_sq, Py_ssize_t start, Py_ssize_t stop,
                     double beta1, double beta2, double eps, double weight_decay,
                     bint decoupled, double decay_factor, double step_size,
                     double bias_correction2_sqrt) noexcept nogil:
    # one loop per store pattern, so that each vectorises
    if max_exp_avg_sq != NULL:
        adam_loop(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, start, stop, beta1, beta2, eps,
                  weight_decay, decoupled, decay_factor, step_size, bias_correction2_sqrt,
                  True)
    else:
        adam_loop(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, start, stop, beta1, beta2, eps,
                  weight_decay, decoupled, decay_factor, step_size, bias_correction2_sqrt,
                  False)


cdef void adam_core(floating* p, const floating* g, floating* exp_avg, floating* exp_avg_sq,
                    floating* max_exp_avg_sq, Py_ssize_t n, double beta1, double beta2,
                    double eps, double weight_decay, bint decoupled, double decay_factor,
                    double step_size, double bias_correction2_sqrt,
                    int n_threads) noexcept nogil:
    cdef int t, nt = threads_for(n_threads, n, OPTIMIZER_MIN_PER_THREAD)
    cdef Py_ssize_t start, stop, block
    if nt == 1:
        adam_range(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, 0, n, beta1, beta2, eps,
                   weight_decay, decoupled, decay_factor, step_size, bias_correction2_sqrt)
        return
    block = thread_block(n, nt)
    for t in prange(nt, schedule='static', num_threads=nt):
        start = min(t * block, n)
        stop = min((t + 1) * block, n)
        adam_range(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, start, stop, beta1, beta2,
                   eps, weight_decay, decoupled, decay_factor, step_size,
                   bias_correction2_sqrt)


cdef object adam_entry(object params, object grads, object exp_avg, object exp_avg_sq,
                       object max_exp_avg_sq, object step, object lr, object betas,
                       object eps, object weight_decay, object amsgrad, bint decoupled,
                       object n_threads):
    cdef long long step_ = checked_step(step)
    cdef double lr_ = checked_real(lr, "lr", 0, False, INFINITY, False)
    cdef double beta1, beta2
    if type(betas) is tuple and len(<tuple>betas) == 2:
        beta1 = checked_real((<tuple>betas)[0], "betas[0]", 0, False, 1, True)
        beta2 = checked_real((<tuple>betas)[1], "betas[1]", 0, False, 1, True)
    else:
        beta1, beta2 = _validation.check_betas(betas)
    cdef double eps_ = checked_real(eps, "eps", 0, True, INFINITY, False)
    cdef double weight_decay_ = checked_real(weight_decay, "weight_decay", 0, False, INFINITY, False)
    cdef bint amsgrad_ = amsgrad
    cdef int nt = resolve_threads(n_threads)
    params = checked_params(params)
    grads = checked_grads(grads, params)
    exp_avg = checked_state(exp_avg, "exp_avg", params, "by Adam")
    exp_avg_sq = checked_state(exp_avg_sq, "exp_avg_sq", params, "by Adam")
    if amsgrad_:
        max_exp_avg_sq = checked_state(max_exp_avg_sq, "max_exp_avg_sq", params,
                                       "when amsgrad=True")
    check_no_overlap(["params", "grads", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
                     [params, grads, exp_avg, exp_avg_sq,
                      max_exp_avg_sq if amsgrad_ else None])
    # the scalars of torch.optim.Adam, as Python computes them in the reference
    cdef double bias_correction1 = 1 - pow(beta1, <double>step_)
    cdef double bias_correction2 = 1 - pow(beta2, <double>step_)
    cdef double step_size = lr_ / bias_correction1
    cdef double bias_correction2_sqrt = pow(bias_correction2, 0.5)
    cdef double decay_factor = 1 - lr_ * weight_decay_
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>params, 0)
    cdef void* p = data(params)
    cdef void* g = data(grads)
    cdef void* m = data(exp_avg)
    cdef void* v = data(exp_avg_sq)
    cdef void* vmax = data(max_exp_avg_sq) if amsgrad_ else NULL
    with nogil:
        if cnp.PyArray_TYPE(<cnp.ndarray>params) == cnp.NPY_FLOAT32:
            adam_core(<float*>p, <const float*>g, <float*>m, <float*>v, <float*>vmax, n,
                      beta1, beta2, eps_, weight_decay_, decoupled, decay_factor, step_size,
                      bias_correction2_sqrt, nt)
        else:
            adam_core(<double*>p, <const double*>g, <double*>m, <double*>v, <double*>vmax, n,
                      beta1, beta2, eps_, weight_decay_, decoupled, decay_factor, step_size,
                      bias_correction2_sqrt, nt)
    return params


def adam_update(params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, step,
                lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                n_threads=None):
    """Adam step; see ``gdcore.reference.adam_update`` for the equations."""
    return adam_entry(params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, betas,
                      eps, weight_decay, amsgrad, False, n_threads)


def adamw_update(params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, step,
                 lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 n_threads=None):
    """AdamW step; see ``gdcore.reference.adamw_update`` for the equations."""
    return adam_entry(params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, betas,
                      eps, weight_decay, amsgrad, True, n_threads)
