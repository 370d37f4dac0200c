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
# The recipe: an optimizer is its name, scalar layout and state layout in
# gdcore/_constants.py (OPT_<NAME>, S_<NAME>_<SCALAR> slots of Optim.s, state slots of
# Optim.state), one ``<name>_range`` loop below that reads them from an Optim, one
# branch in optimizer_range and state_required, and one ``<name>_update`` entry that checks
# its hyperparameters and fills the Optim; its twin is
# gdcore.reference.optimizers.<name>_update.  Written once for all of them: the thread
# split (optimizer_core, also the network step's update), the dtype dispatch and the
# buffer checks (run_update).
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

# ---- fast argument checks -------------------------------------------------------

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


# ---- one step of any optimizer ----------------------------------------------------

cdef struct Optim:
    int kind                  # OPT_<NAME>
    int flags                 # SGD: nesterov; Adam: decoupled weight decay
    double s[N_SCALARS]       # step scalars, slots S_<NAME>_<SCALAR> (gdcore._constants)
    void* state[N_STATE]      # state buffers in the order of OPTIMIZER_STATE, or NULL


cdef void optimizer_range(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                          Py_ssize_t stop) noexcept nogil:
    if o.kind == OPT_SGD:
        sgd_range(o, p, g, start, stop)
    elif o.kind == OPT_ADAGRAD:
        adagrad_range(o, p, g, start, stop)
    elif o.kind == OPT_ADADELTA:
        adadelta_range(o, p, g, start, stop)
    elif o.kind == OPT_RMSPROP:
        rmsprop_range(o, p, g, start, stop)
    else:
        adam_range(o, p, g, start, stop)


cdef bint state_required(const Optim* o, int i) noexcept nogil:
    """Whether the update, given its scalars and flags, needs state slot i.  The buffers
    whose presence selects an option (RMSprop's grad_avg: centered; Adam's
    max_exp_avg_sq: amsgrad) are optional: the update uses them when not NULL."""
    if o.kind == OPT_SGD:
        return i == 0 and o.s[S_SGD_MOMENTUM] != 0
    elif o.kind == OPT_ADAGRAD:
        return i == 0
    elif o.kind == OPT_ADADELTA:
        return i < 2
    elif o.kind == OPT_RMSPROP:
        return i == 0 or (i == 1 and o.s[S_RMSPROP_MOMENTUM] > 0)
    return i < 2


cdef void optimizer_core(const Optim* o, floating* p, const floating* g, Py_ssize_t n,
                         int n_threads) noexcept nogil:
    """The update of p (n elements) by g, split over threads."""
    cdef int t, nt = threads_for(n_threads, n, OPTIMIZER_MIN_PER_THREAD)
    cdef Py_ssize_t start, stop, block
    if nt == 1:
        optimizer_range(o, p, g, 0, n)
        return
    block = thread_block(n, nt)
    for t in prange(nt, schedule='static', num_threads=nt):
        start = min(t * block, n)
        stop = min((t + 1) * block, n)
        optimizer_range(o, p, g, start, stop)


cdef object run_update(Optim* o, object params, object grads, tuple names, tuple buffers,
                       int nt):
    """Check that no two of params, grads and the state buffers (checked already, None
    where unused) overlap, point ``o.state`` at them, and run the update on ``params``'
    dtype without the GIL."""
    cdef Py_ssize_t i
    check_no_overlap(["params", "grads"] + list(names), [params, grads] + list(buffers))
    for i in range(N_STATE):
        o.state[i] = data(buffers[i]) if i < len(buffers) else NULL
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>params, 0)
    cdef void* p = data(params)
    cdef void* g = data(grads)
    with nogil:
        if cnp.PyArray_TYPE(<cnp.ndarray>params) == cnp.NPY_FLOAT32:
            optimizer_core(o, <float*>p, <const float*>g, n, nt)
        else:
            optimizer_core(o, <double*>p, <const double*>g, n, nt)
    return params


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


cdef void sgd_range(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                    Py_ssize_t stop) noexcept nogil:
    # one loop per store pattern, so that each vectorises
    if o.s[S_SGD_MOMENTUM] != 0:
        sgd_loop(p, g, <floating*>o.state[0], start, stop, o.s[S_SGD_LR], o.s[S_SGD_MOMENTUM],
                 o.s[S_SGD_DAMPENING], o.s[S_SGD_WEIGHT_DECAY], o.flags != 0,
                 o.s[S_SGD_FIRST_STEP] != 0, True)
    else:
        sgd_loop(p, g, <floating*>o.state[0], start, stop, o.s[S_SGD_LR], o.s[S_SGD_MOMENTUM],
                 o.s[S_SGD_DAMPENING], o.s[S_SGD_WEIGHT_DECAY], o.flags != 0,
                 o.s[S_SGD_FIRST_STEP] != 0, False)


def sgd_update(params, grads, momentum_buffer=None, *, step, lr=1e-3, momentum=0.0,
               dampening=0.0, weight_decay=0.0, nesterov=False, n_threads=None):
    """SGD step; see ``gdcore.reference.sgd_update`` for the equations."""
    cdef Optim o
    cdef long long step_ = checked_step(step)
    o.kind = OPT_SGD
    o.s[S_SGD_LR] = checked_real(lr, "lr", 0, False, INFINITY, False)
    o.s[S_SGD_MOMENTUM] = checked_real(momentum, "momentum", 0, False, INFINITY, False)
    o.s[S_SGD_DAMPENING] = checked_real(dampening, "dampening", -INFINITY, False, INFINITY,
                                        False)
    o.s[S_SGD_WEIGHT_DECAY] = checked_real(weight_decay, "weight_decay", 0, False,
                                           INFINITY, False)
    o.s[S_SGD_FIRST_STEP] = step_ == 1
    o.flags = bool(nesterov)
    cdef int nt = resolve_threads(n_threads)
    if o.flags and (o.s[S_SGD_MOMENTUM] <= 0 or o.s[S_SGD_DAMPENING] != 0):
        raise ValueError("nesterov requires momentum > 0 and dampening = 0, got "
                         f"momentum={o.s[S_SGD_MOMENTUM]}, dampening={o.s[S_SGD_DAMPENING]}")
    params = checked_params(params)
    grads = checked_grads(grads, params)
    if state_required(&o, 0):
        momentum_buffer = checked_state(momentum_buffer, "momentum_buffer", params,
                                        "when momentum != 0")
    else:
        momentum_buffer = None
    return run_update(&o, params, grads, ("momentum_buffer",), (momentum_buffer,), nt)


# ---- Adagrad --------------------------------------------------------------------

cdef void adagrad_range(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                        Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating* state_sum = <floating*>o.state[0]
    cdef floating neg_clr = <floating>(-o.s[S_ADAGRAD_CLR]), eps_ = <floating>o.s[S_ADAGRAD_EPS]
    cdef floating wd = <floating>o.s[S_ADAGRAD_WEIGHT_DECAY]
    cdef bint decay = o.s[S_ADAGRAD_WEIGHT_DECAY] != 0
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


def adagrad_update(params, grads, state_sum, *, step, lr=1e-2, lr_decay=0.0,
                   weight_decay=0.0, eps=1e-10, n_threads=None):
    """Adagrad step; see ``gdcore.reference.adagrad_update`` for the equations."""
    cdef Optim o
    cdef long long step_ = checked_step(step)
    cdef double lr_ = checked_real(lr, "lr", 0, False, INFINITY, False)
    cdef double lr_decay_ = checked_real(lr_decay, "lr_decay", 0, False, INFINITY, False)
    o.kind = OPT_ADAGRAD
    o.flags = 0
    o.s[S_ADAGRAD_WEIGHT_DECAY] = checked_real(weight_decay, "weight_decay", 0, False,
                                               INFINITY, False)
    o.s[S_ADAGRAD_EPS] = checked_real(eps, "eps", 0, True, INFINITY, False)
    o.s[S_ADAGRAD_CLR] = lr_ / (1 + <double>(step_ - 1) * lr_decay_)
    cdef int nt = resolve_threads(n_threads)
    params = checked_params(params)
    grads = checked_grads(grads, params)
    state_sum = checked_state(state_sum, "state_sum", params, "by Adagrad")
    return run_update(&o, params, grads, ("state_sum",), (state_sum,), nt)


# ---- Adadelta -------------------------------------------------------------------

cdef void adadelta_range(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                         Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating* square_avg = <floating*>o.state[0]
    cdef floating* acc_delta = <floating*>o.state[1]
    cdef double rho = o.s[S_ADADELTA_RHO]
    cdef floating neg_lr = <floating>(-o.s[S_ADADELTA_LR]), rho_ = <floating>rho
    cdef floating one_minus_rho = <floating>(1 - rho), eps_ = <floating>o.s[S_ADADELTA_EPS]
    cdef floating wd = <floating>o.s[S_ADADELTA_WEIGHT_DECAY]
    cdef bint decay = o.s[S_ADADELTA_WEIGHT_DECAY] != 0
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


def adadelta_update(params, grads, square_avg, acc_delta, *, lr=1.0, rho=0.9, eps=1e-6,
                    weight_decay=0.0, n_threads=None):
    """Adadelta step; see ``gdcore.reference.adadelta_update`` for the equations."""
    cdef Optim o
    o.kind = OPT_ADADELTA
    o.flags = 0
    o.s[S_ADADELTA_LR] = checked_real(lr, "lr", 0, False, INFINITY, False)
    o.s[S_ADADELTA_RHO] = checked_real(rho, "rho", 0, False, 1, False)
    o.s[S_ADADELTA_EPS] = checked_real(eps, "eps", 0, True, INFINITY, False)
    o.s[S_ADADELTA_WEIGHT_DECAY] = checked_real(weight_decay, "weight_decay", 0, False,
                                                INFINITY, False)
    cdef int nt = resolve_threads(n_threads)
    params = checked_params(params)
    grads = checked_grads(grads, params)
    square_avg = checked_state(square_avg, "square_avg", params, "by Adadelta")
    acc_delta = checked_state(acc_delta, "acc_delta", params, "by Adadelta")
    return run_update(&o, params, grads, ("square_avg", "acc_delta"),
                      (square_avg, acc_delta), nt)


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


cdef void rmsprop_range(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                        Py_ssize_t stop) noexcept nogil:
    cdef floating* square_avg = <floating*>o.state[0]
    cdef floating* momentum_buffer = <floating*>o.state[1]
    cdef floating* grad_avg = <floating*>o.state[2]
    cdef double lr = o.s[S_RMSPROP_LR], alpha = o.s[S_RMSPROP_ALPHA], eps = o.s[S_RMSPROP_EPS]
    cdef double weight_decay = o.s[S_RMSPROP_WEIGHT_DECAY], momentum = o.s[S_RMSPROP_MOMENTUM]
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


def rmsprop_update(params, grads, square_avg, momentum_buffer=None, grad_avg=None, *,
                   lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                   centered=False, n_threads=None):
    """RMSprop step; see ``gdcore.reference.rmsprop_update`` for the equations."""
    cdef Optim o
    o.kind = OPT_RMSPROP
    o.s[S_RMSPROP_LR] = checked_real(lr, "lr", 0, False, INFINITY, False)
    o.s[S_RMSPROP_ALPHA] = checked_real(alpha, "alpha", 0, False, INFINITY, False)
    o.s[S_RMSPROP_EPS] = checked_real(eps, "eps", 0, True, INFINITY, False)
    o.s[S_RMSPROP_WEIGHT_DECAY] = checked_real(weight_decay, "weight_decay", 0, False,
                                               INFINITY, False)
    o.s[S_RMSPROP_MOMENTUM] = checked_real(momentum, "momentum", 0, False, INFINITY, False)
    o.flags = 0
    cdef bint centered_ = centered
    cdef int nt = resolve_threads(n_threads)
    params = checked_params(params)
    grads = checked_grads(grads, params)
    square_avg = checked_state(square_avg, "square_avg", params, "by RMSprop")
    if state_required(&o, 1):
        momentum_buffer = checked_state(momentum_buffer, "momentum_buffer", params,
                                        "when momentum > 0")
    else:
        momentum_buffer = None
    if centered_:
        grad_avg = checked_state(grad_avg, "grad_avg", params, "when centered=True")
    else:
        grad_avg = None
    return run_update(&o, params, grads, ("square_avg", "momentum_buffer", "grad_avg"),
                      (square_avg, momentum_buffer, grad_avg), nt)


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


cdef void adam_range(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                     Py_ssize_t stop) noexcept nogil:
    # one loop per store pattern, so that each vectorises
    if o.state[2] != NULL:
        adam_loop(p, g, <floating*>o.state[0], <floating*>o.state[1], <floating*>o.state[2],
                  start, stop, o.s[S_ADAM_BETA1], o.s[S_ADAM_BETA2], o.s[S_ADAM_EPS],
                  o.s[S_ADAM_WEIGHT_DECAY], o.flags != 0, o.s[S_ADAM_DECAY_FACTOR],
                  o.s[S_ADAM_STEP_SIZE], o.s[S_ADAM_BIAS_CORRECTION2_SQRT], True)
    else:
        adam_loop(p, g, <floating*>o.state[0], <floating*>o.state[1], <floating*>o.state[2],
                  start, stop, o.s[S_ADAM_BETA1], o.s[S_ADAM_BETA2], o.s[S_ADAM_EPS],
                  o.s[S_ADAM_WEIGHT_DECAY], o.flags != 0, o.s[S_ADAM_DECAY_FACTOR],
                  o.s[S_ADAM_STEP_SIZE], o.s[S_ADAM_BIAS_CORRECTION2_SQRT], False)


cdef object adam_entry(object params, object grads, object exp_avg, object exp_avg_sq,
                       object max_exp_avg_sq, object step, object lr, object betas,
                       object eps, object weight_decay, object amsgrad, bint decoupled,
                       object n_threads):
    cdef Optim o
    cdef long long step_ = checked_step(step)
    cdef double lr_ = checked_real(lr, "lr", 0, False, INFINITY, False)
    cdef double beta1, beta2
    if type(betas) is tuple and len(<tuple>betas) == 2:
        beta1 = checked_real((<tuple>betas)[0], "betas[0]", 0, False, 1, True)
        beta2 = checked_real((<tuple>betas)[1], "betas[1]", 0, False, 1, True)
    else:
        beta1, beta2 = _validation.check_betas(betas)
    o.kind = OPT_ADAM
    o.flags = decoupled
    o.s[S_ADAM_BETA1] = beta1
    o.s[S_ADAM_BETA2] = beta2
    o.s[S_ADAM_EPS] = checked_real(eps, "eps", 0, True, INFINITY, False)
    o.s[S_ADAM_WEIGHT_DECAY] = checked_real(weight_decay, "weight_decay", 0, False, INFINITY,
                                            False)
    cdef bint amsgrad_ = amsgrad
    cdef int nt = resolve_threads(n_threads)
    params = checked_params(params)
    grads = checked_grads(grads, params)
    exp_avg = checked_state(exp_avg, "exp_avg", params, "by Adam")
    exp_avg_sq = checked_state(exp_avg_sq, "exp_avg_sq", params, "by Adam")
    if amsgrad_:
        max_exp_avg_sq = checked_state(max_exp_avg_sq, "max_exp_avg_sq", params,
                                       "when amsgrad=True")
    else:
        max_exp_avg_sq = None
    # the scalars of torch.optim.Adam, as Python computes them in the reference
    cdef double bias_correction1 = 1 - pow(beta1, <double>step_)
    cdef double bias_correction2 = 1 - pow(beta2, <double>step_)
    o.s[S_ADAM_STEP_SIZE] = lr_ / bias_correction1
    o.s[S_ADAM_BIAS_CORRECTION2_SQRT] = pow(bias_correction2, 0.5)
    o.s[S_ADAM_DECAY_FACTOR] = 1 - lr_ * o.s[S_ADAM_WEIGHT_DECAY]
    return run_update(&o, params, grads, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
                      (exp_avg, exp_avg_sq, max_exp_avg_sq), nt)


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
