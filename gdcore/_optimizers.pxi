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
# Gradient clipping and parameter groups (set by the network step; an entry runs
# without them) are written once, around the loops, so no loop knows of them:
# optimizer_pass walks the segments of the flat buffer (each with its own scalar row;
# frozen ones skipped) and clips each CLIP_CHUNK chunk of the gradient in place just
# before ``optimizer_range`` reads it.  The norm for clip_norm is one read before the
# pass (grad_norm: fixed blocks and lanes summed in double in a fixed order, so the
# same bits for any thread count).
#
# The entry points validate here, with NumPy's C API, because a Python-level check of
# five buffers and five hyperparameters (~2 us) would cost as much as the whole step on
# 1e4 elements.  The fast checks only accept inputs that are certainly valid; anything
# else goes to gdcore._validation, which raises the error a user reads (naming the
# argument, expected and actual values) or returns a usable copy of ``grads``.

from cpython.float cimport PyFloat_CheckExact, PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_CheckExact, PyLong_AsLongLong
from libc.math cimport fabs
from libc.stdint cimport uint32_t, uint64_t
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
    # gradient clipping (CLIP_<MODE>), applied by the pass to each chunk of the gradient
    # just before the update reads it: CLIP_NORM multiplies by clip_coef (computed from
    # max_norm and the norm of order norm_type first), CLIP_VALUE clamps to +-clip_value
    int clip
    double max_norm
    double norm_type
    double clip_coef
    double clip_value
    # parameter groups: n_seg segments, row j of seg = (start, stop, frozen), updated
    # with the scalars seg_s[j * N_SCALARS ...] (frozen: neither updated nor clipped nor
    # counted in the norm); n_seg 0: the whole buffer with s
    Py_ssize_t n_seg
    const cnp.int64_t* seg
    const double* seg_s


cdef inline void no_options(Optim* o) noexcept nogil:
    """No clipping and one segment: the plain update of an entry."""
    o.clip = CLIP_NONE
    o.max_norm = 0
    o.norm_type = 2
    o.clip_coef = 1
    o.clip_value = 0
    o.n_seg = 0
    o.seg = NULL
    o.seg_s = NULL


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
    elif o.kind == OPT_NADAM:
        nadam_range(o, p, g, start, stop)
    elif o.kind == OPT_ADAMAX:
        adamax_range(o, p, g, start, stop)
    elif o.kind == OPT_RADAM:
        radam_range(o, p, g, start, stop)
    elif o.kind == OPT_RPROP:
        rprop_range(o, p, g, start, stop)
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
    elif (o.kind == OPT_NADAM or o.kind == OPT_ADAMAX or o.kind == OPT_RADAM
          or o.kind == OPT_RPROP):
        return i < 2                      # both buffers, whatever the options
    return i < 2


cdef void clip_range(const Optim* o, floating* g, Py_ssize_t start,
                     Py_ssize_t stop) noexcept nogil:
    """Clip g[start:stop] in place as torch.nn.utils does: times clip_coef (in the
    gradient's dtype), or clamped to [-clip_value, clip_value] (NaN stays NaN)."""
    cdef Py_ssize_t i
    cdef floating c, lo, hi, x
    if o.clip == CLIP_NORM:
        if o.clip_coef == 1:
            return                            # x * 1 is x, bit for bit
        c = <floating>o.clip_coef
        for i in range(start, stop):
            g[i] = g[i] * c
    elif o.clip == CLIP_VALUE:
        hi = <floating>o.clip_value
        lo = -hi
        for i in range(start, stop):
            x = g[i]
            x = lo if x < lo else x
            g[i] = hi if x > hi else x


cdef void update_chunks(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                        Py_ssize_t stop) noexcept nogil:
    """The update of [start, stop) with o.s; with clipping, chunk by chunk: each chunk
    of the gradient is clipped and then read by the update while it is in L1.  The
    update loops are elementwise, so chunking does not change their results."""
    cdef Py_ssize_t a = start, b
    if o.clip == CLIP_NONE or (o.clip == CLIP_NORM and o.clip_coef == 1):
        optimizer_range(o, p, g, start, stop)
        return
    while a < stop:
        b = min(a + CLIP_CHUNK, stop)
        clip_range(o, <floating*>g, a, b)
        optimizer_range(o, p, g, a, b)
        a = b


cdef void optimizer_pass(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                         Py_ssize_t stop) noexcept nogil:
    """The update of [start, stop), segment by segment with each segment's scalars."""
    cdef Optim part
    cdef Py_ssize_t j, a, b
    if o.n_seg == 0:
        update_chunks(o, p, g, start, stop)
        return
    part = o[0]
    for j in range(o.n_seg):
        if o.seg[3 * j + 2] != 0:
            continue                          # frozen: parameters and state untouched
        a = max(start, <Py_ssize_t>o.seg[3 * j])
        b = min(stop, <Py_ssize_t>o.seg[3 * j + 1])
        if a < b:
            memcpy(part.s, o.seg_s + j * N_SCALARS, N_SCALARS * sizeof(double))
            update_chunks(&part, p, g, a, b)


cdef void optimizer_core(const Optim* o, floating* p, const floating* g, Py_ssize_t n,
                         int n_threads) noexcept nogil:
    """The update of p (n elements) by g, split over threads."""
    cdef int t, nt = threads_for(n_threads, n, OPTIMIZER_MIN_PER_THREAD)
    cdef Py_ssize_t start, stop, block
    if nt == 1:
        optimizer_pass(o, p, g, 0, n)
        return
    block = thread_block(n, nt)
    for t in prange(nt, schedule='static', num_threads=nt):
        start = min(t * block, n)
        stop = min((t + 1) * block, n)
        optimizer_pass(o, p, g, start, stop)


cdef double abs_max(const floating* g, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """max |g_i| over [a, b), NaN when any is NaN: the magnitude bits of IEEE floats
    order as their values, with NaN above infinity, so this is an integer maximum,
    which vectorises (see all_finite)."""
    cdef Py_ssize_t i
    cdef const uint32_t* g32
    cdef const uint64_t* g64
    cdef uint32_t m32 = 0, x32
    cdef uint64_t m64 = 0, x64
    cdef float f32
    cdef double f64
    if floating is float:
        g32 = <const uint32_t*>g
        for i in range(a, b):
            x32 = g32[i] & 0x7fffffffU
            m32 = x32 if x32 > m32 else m32
        memcpy(&f32, &m32, sizeof(float))         # the bits back as a float, no type pun
        return <double>f32
    else:
        g64 = <const uint64_t*>g
        for i in range(a, b):
            x64 = g64[i] & 0x7fffffffffffffffULL
            m64 = x64 if x64 > m64 else m64
        memcpy(&f64, &m64, sizeof(double))
        return f64


cdef void norm_run(const floating* g, Py_ssize_t a, Py_ssize_t b, Py_ssize_t start,
                   double p, double* acc) noexcept nogil:
    """acc[(i - start) mod NORM_LANES] += |g_i|^p for i in [a, b), in order (p = inf:
    the largest, NaN winning).  The lanes live in a local array while the loop runs,
    NORM_LANES elements at a time, so the compiler keeps them in vector registers;
    the additions are those of the element-by-element definition."""
    cdef double lane[NORM_LANES]
    cdef Py_ssize_t i = a, j, k
    cdef double x
    for j in range(NORM_LANES):
        lane[j] = acc[j]
    while i < b:
        k = (i - start) % NORM_LANES
        if k == 0 and i + NORM_LANES <= b:
            if p == 2:
                while i + NORM_LANES <= b:
                    for j in range(NORM_LANES):
                        x = <double>g[i + j]
                        lane[j] = lane[j] + x * x
                    i += NORM_LANES
            elif p == 1:
                while i + NORM_LANES <= b:
                    for j in range(NORM_LANES):
                        lane[j] = lane[j] + fabs(<double>g[i + j])
                    i += NORM_LANES
            elif p == INFINITY:
                # the rest at once: the max does not depend on the order
                x = abs_max(g, i, b)
                lane[0] = x if (x > lane[0] or x != x) else lane[0]
                i = b
            else:
                while i + NORM_LANES <= b:
                    for j in range(NORM_LANES):
                        lane[j] = lane[j] + pow(fabs(<double>g[i + j]), p)
                    i += NORM_LANES
            continue
        x = fabs(<double>g[i])
        if p == INFINITY:
            lane[k] = x if (x > lane[k] or x != x) else lane[k]
        elif p == 2:
            lane[k] = lane[k] + x * x
        elif p == 1:
            lane[k] = lane[k] + x
        else:
            lane[k] = lane[k] + pow(x, p)
        i += 1
    for j in range(NORM_LANES):
        acc[j] = lane[j]


cdef double norm_block(const Optim* o, const floating* g, Py_ssize_t start, Py_ssize_t stop,
                       double p) noexcept nogil:
    """Sum of |g_i|^p (p = inf: max |g_i|, NaN winning) over the block [start, stop),
    skipping frozen segments: NORM_LANES partial sums by (i - start) mod NORM_LANES, in
    double, then added in lane order."""
    cdef double acc[NORM_LANES]
    cdef double total = 0
    cdef Py_ssize_t j, a, b, n_seg = o.n_seg if o.n_seg > 0 else 1
    for j in range(NORM_LANES):
        acc[j] = 0
    for j in range(n_seg):
        if o.n_seg > 0:
            if o.seg[3 * j + 2] != 0:
                continue
            a = max(start, <Py_ssize_t>o.seg[3 * j])
            b = min(stop, <Py_ssize_t>o.seg[3 * j + 1])
        else:
            a, b = start, stop
        if a < b:
            norm_run(g, a, b, start, p, acc)
    for j in range(NORM_LANES):
        if p == INFINITY:
            total = acc[j] if (acc[j] > total or acc[j] != acc[j]) else total
        else:
            total = total + acc[j]
    return total


cdef double grad_norm(const Optim* o, const floating* g, Py_ssize_t n,
                      int n_threads) noexcept nogil:
    """The norm of order o.norm_type of g over the segments that are not frozen (all
    of g without segments), as torch.linalg.vector_norm: fixed blocks (see
    NORM_BLOCK) summed in double, block sums added in block order, so the bits do
    not depend on the thread count."""
    cdef double parts[NORM_MAX_BLOCKS]
    cdef double p = o.norm_type, total = 0
    cdef Py_ssize_t bs = max(<Py_ssize_t>NORM_BLOCK, (n + NORM_MAX_BLOCKS - 1) // NORM_MAX_BLOCKS)
    cdef Py_ssize_t nb = (n + bs - 1) // bs, k
    cdef int nt = threads_for(n_threads, n, OPTIMIZER_MIN_PER_THREAD)
    if nt == 1:
        for k in range(nb):
            parts[k] = norm_block(o, g, k * bs, min((k + 1) * bs, n), p)
    else:
        for k in prange(nb, schedule='static', num_threads=nt):
            parts[k] = norm_block(o, g, k * bs, min((k + 1) * bs, n), p)
    for k in range(nb):
        if p == INFINITY:
            total = parts[k] if (parts[k] > total or parts[k] != parts[k]) else total
        else:
            total = total + parts[k]
    if p == INFINITY or p == 1:
        return total
    if p == 2:
        return sqrt(total)
    return pow(total, 1 / p)


cdef double norm_coef(double max_norm, double total, floating kind) noexcept nogil:
    """torch.nn.utils.clip_grad_norm_'s factor in the gradient's dtype:
    clamp(max_norm / (total + 1e-6), max=1), computed as torch evaluates it (the
    reciprocal times max_norm); NaN stays NaN, an infinite norm gives 0."""
    cdef floating c = (<floating>1 / (<floating>total + <floating>1e-6)) * <floating>max_norm
    return 1.0 if c > 1 else <double>c


cdef void prepare_clip(Optim* o, const floating* g, Py_ssize_t n, int n_threads,
                       double* total) noexcept nogil:
    """For CLIP_NORM: the norm (into ``total``) and o.clip_coef, before the pass."""
    cdef floating kind = 0
    if o.clip == CLIP_NORM:
        total[0] = grad_norm(o, g, n, n_threads)
        o.clip_coef = norm_coef(o.max_norm, total[0], kind)


cdef object run_update(Optim* o, object params, object grads, tuple names, tuple buffers,
                       int nt):
    """Check that no two of params, grads and the state buffers (checked already, None
    where unused) overlap, point ``o.state`` at them, and run the update on ``params``'
    dtype without the GIL."""
    cdef Py_ssize_t i
    check_no_overlap(["params", "grads"] + list(names), [params, grads] + list(buffers))
    no_options(o)
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


# ---- gradient clipping ----------------------------------------------------------

cdef double checked_norm_type(object norm_type) except? -1.5:
    if norm_type == INFINITY:
        return INFINITY
    return checked_real(norm_type, "norm_type", 0, True, INFINITY, False)


def clip_grad_norm(grads, max_norm, *, norm_type=2.0, n_threads=None):
    """Scale ``grads`` in place to norm <= max_norm; returns the norm before.  See
    ``gdcore.reference.clip_grad_norm``."""
    cdef Optim o
    cdef double total = 0
    no_options(&o)
    o.clip = CLIP_NORM
    o.max_norm = checked_real(max_norm, "max_norm", 0, True, INFINITY, False)
    o.norm_type = checked_norm_type(norm_type)
    cdef int nt = resolve_threads(n_threads)
    grads = _validation.param_vector(grads, "grads")
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>grads, 0)
    cdef void* g = data(grads)
    with nogil:
        if cnp.PyArray_TYPE(<cnp.ndarray>grads) == cnp.NPY_FLOAT32:
            prepare_clip(&o, <float*>g, n, nt, &total)
            clip_range(&o, <float*>g, 0, n)
        else:
            prepare_clip(&o, <double*>g, n, nt, &total)
            clip_range(&o, <double*>g, 0, n)
    return total


def clip_grad_value(grads, clip_value, *, n_threads=None):
    """Clamp ``grads`` in place to [-clip_value, clip_value]; returns ``grads``.  See
    ``gdcore.reference.clip_grad_value``."""
    cdef Optim o
    no_options(&o)
    o.clip = CLIP_VALUE
    o.clip_value = checked_real(clip_value, "clip_value", 0, True, INFINITY, False)
    resolve_threads(n_threads)
    grads = _validation.param_vector(grads, "grads")
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>grads, 0)
    cdef void* g = data(grads)
    with nogil:
        if cnp.PyArray_TYPE(<cnp.ndarray>grads) == cnp.NPY_FLOAT32:
            clip_range(&o, <float*>g, 0, n)
        else:
            clip_range(&o, <double*>g, 0, n)
    return grads


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
    cdef floating gi, pi, m, v, vmax, larger, denom
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
            # numpy.maximum / torch.maximum: NaN wins (two selects, so that the loop
            # vectorises: a short-circuit ``or`` would be a branch)
            vmax = max_exp_avg_sq[i]
            larger = vmax if vmax >= v else v
            vmax = vmax if vmax != vmax else larger
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


# ---- shared by NAdam, Adamax and RAdam ------------------------------------------

cdef object checked_betas(object betas):
    """(beta1, beta2), each in [0, 1), or the Python check raises."""
    if type(betas) is tuple and len(<tuple>betas) == 2:
        return (checked_real((<tuple>betas)[0], "betas[0]", 0, False, 1, True),
                checked_real((<tuple>betas)[1], "betas[1]", 0, False, 1, True))
    return _validation.check_betas(betas)


cdef inline floating moments(floating* exp_avg, floating* exp_avg_sq, Py_ssize_t i,
                             floating gi, floating w1, floating one_minus_w1,
                             bint small_weight, floating beta2_,
                             floating one_minus_beta2) noexcept nogil:
    """Adam's moment updates of element i (m by lerp, v = beta2 v + (1 - beta2) g^2);
    returns the new m."""
    cdef floating m = lerp(exp_avg[i], gi, w1, one_minus_w1, small_weight)
    cdef floating v = exp_avg_sq[i] * beta2_
    exp_avg[i] = m
    exp_avg_sq[i] = v + one_minus_beta2 * gi * gi
    return m


# ---- NAdam ----------------------------------------------------------------------

cdef void nadam_range(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                      Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating* exp_avg = <floating*>o.state[0]
    cdef floating* exp_avg_sq = <floating*>o.state[1]
    cdef floating w1 = <floating>(1 - o.s[S_NADAM_BETA1])
    cdef floating one_minus_w1 = <floating>1 - w1
    cdef bint small_weight = (w1 if w1 >= 0 else -w1) < <floating>0.5
    cdef floating beta2_ = <floating>o.s[S_NADAM_BETA2]
    cdef floating one_minus_beta2 = <floating>(1 - o.s[S_NADAM_BETA2])
    cdef floating eps_ = <floating>o.s[S_NADAM_EPS], wd = <floating>o.s[S_NADAM_WEIGHT_DECAY]
    cdef floating decay = <floating>o.s[S_NADAM_DECAY_FACTOR]
    cdef floating bc2 = <floating>o.s[S_NADAM_BIAS_CORRECTION2]
    cdef floating grad_coef = <floating>o.s[S_NADAM_GRAD_COEF]
    cdef floating exp_avg_coef = <floating>o.s[S_NADAM_EXP_AVG_COEF]
    cdef bint coupled_decay = o.s[S_NADAM_WEIGHT_DECAY] != 0 and o.flags == 0
    cdef bint decoupled_decay = o.s[S_NADAM_WEIGHT_DECAY] != 0 and o.flags != 0
    cdef floating gi, pi, m, denom
    for i in range(start, stop):
        gi = g[i]
        pi = p[i]
        pi = pi * decay if decoupled_decay else pi
        gi = gi + wd * pi if coupled_decay else gi
        m = moments(exp_avg, exp_avg_sq, i, gi, w1, one_minus_w1, small_weight, beta2_,
                    one_minus_beta2)
        if floating is float:
            denom = sqrtf(exp_avg_sq[i] / bc2) + eps_
        else:
            denom = sqrt(exp_avg_sq[i] / bc2) + eps_
        pi = pi + grad_coef * (gi / denom)
        p[i] = pi + exp_avg_coef * (m / denom)


cdef double nadam_mu_product(double beta1, double momentum_decay,
                             long long steps) noexcept nogil:
    """mu_1 mu_2 ... mu_steps, multiplied in this order (torch's running product)."""
    cdef double product = 1.0
    cdef long long t
    for t in range(1, steps + 1):
        product = product * (beta1 * (1.0 - 0.5 * pow(0.96, <double>t * momentum_decay)))
    return product


def nadam_update(params, grads, exp_avg, exp_avg_sq, *, step, lr=2e-3, betas=(0.9, 0.999),
                 eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, mu_product=None, n_threads=None):
    """NAdam step; see ``gdcore.reference.nadam_update`` for the equations."""
    cdef Optim o
    cdef long long step_ = checked_step(step)
    cdef double lr_ = checked_real(lr, "lr", 0, False, INFINITY, False)
    cdef double beta1, beta2
    beta1, beta2 = checked_betas(betas)
    o.kind = OPT_NADAM
    o.flags = 1 if decoupled_weight_decay else 0
    o.s[S_NADAM_BETA1] = beta1
    o.s[S_NADAM_BETA2] = beta2
    o.s[S_NADAM_EPS] = checked_real(eps, "eps", 0, True, INFINITY, False)
    cdef double wd = checked_real(weight_decay, "weight_decay", 0, False, INFINITY, False)
    cdef double decay_rate = checked_real(momentum_decay, "momentum_decay", 0, False,
                                          INFINITY, False)
    cdef double product
    if mu_product is None:
        product = nadam_mu_product(beta1, decay_rate, step_ - 1)
    else:
        product = checked_real(mu_product, "mu_product", 0, False, 1, False)
    cdef int nt = resolve_threads(n_threads)
    params = checked_params(params)
    grads = checked_grads(grads, params)
    exp_avg = checked_state(exp_avg, "exp_avg", params, "by NAdam")
    exp_avg_sq = checked_state(exp_avg_sq, "exp_avg_sq", params, "by NAdam")
    # the scalars of torch.optim.NAdam, as Python computes them in the reference
    cdef double t = <double>step_
    cdef double mu = beta1 * (1.0 - 0.5 * pow(0.96, t * decay_rate))
    cdef double mu_next = beta1 * (1.0 - 0.5 * pow(0.96, (t + 1) * decay_rate))
    product = product * mu
    o.s[S_NADAM_WEIGHT_DECAY] = wd
    o.s[S_NADAM_DECAY_FACTOR] = 1 - lr_ * wd
    o.s[S_NADAM_BIAS_CORRECTION2] = 1 - pow(beta2, t)
    o.s[S_NADAM_GRAD_COEF] = -lr_ * (1.0 - mu) / (1.0 - product)
    o.s[S_NADAM_EXP_AVG_COEF] = (-lr_ * mu_next) / (1.0 - product * mu_next)
    return run_update(&o, params, grads, ("exp_avg", "exp_avg_sq"), (exp_avg, exp_avg_sq),
                      nt)


# ---- Adamax ---------------------------------------------------------------------

cdef void adamax_range(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                       Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating* exp_avg = <floating*>o.state[0]
    cdef floating* exp_inf = <floating*>o.state[1]
    cdef floating w1 = <floating>(1 - o.s[S_ADAMAX_BETA1])
    cdef floating one_minus_w1 = <floating>1 - w1
    cdef bint small_weight = (w1 if w1 >= 0 else -w1) < <floating>0.5
    cdef floating beta2_ = <floating>o.s[S_ADAMAX_BETA2], eps_ = <floating>o.s[S_ADAMAX_EPS]
    cdef floating wd = <floating>o.s[S_ADAMAX_WEIGHT_DECAY]
    cdef floating neg_clr = <floating>(-o.s[S_ADAMAX_CLR])
    cdef bint decay = o.s[S_ADAMAX_WEIGHT_DECAY] != 0
    cdef floating gi, m, u, a
    for i in range(start, stop):
        gi = g[i]
        gi = gi + wd * p[i] if decay else gi
        m = lerp(exp_avg[i], gi, w1, one_minus_w1, small_weight)
        exp_avg[i] = m
        u = exp_inf[i] * beta2_
        a = (gi if gi >= 0 else -gi) + eps_
        # numpy.maximum / torch.maximum: NaN wins (two selects, so that the loop
        # vectorises: a short-circuit ``or`` would be a branch)
        a = u if u >= a else a
        u = u if u != u else a
        exp_inf[i] = u
        p[i] = p[i] + neg_clr * (m / u)


def adamax_update(params, grads, exp_avg, exp_inf, *, step, lr=2e-3, betas=(0.9, 0.999),
                  eps=1e-8, weight_decay=0.0, n_threads=None):
    """Adamax step; see ``gdcore.reference.adamax_update`` for the equations."""
    cdef Optim o
    cdef long long step_ = checked_step(step)
    cdef double lr_ = checked_real(lr, "lr", 0, False, INFINITY, False)
    cdef double beta1, beta2
    beta1, beta2 = checked_betas(betas)
    o.kind = OPT_ADAMAX
    o.flags = 0
    o.s[S_ADAMAX_BETA1] = beta1
    o.s[S_ADAMAX_BETA2] = beta2
    o.s[S_ADAMAX_EPS] = checked_real(eps, "eps", 0, True, INFINITY, False)
    o.s[S_ADAMAX_WEIGHT_DECAY] = checked_real(weight_decay, "weight_decay", 0, False,
                                              INFINITY, False)
    o.s[S_ADAMAX_CLR] = lr_ / (1 - pow(beta1, <double>step_))
    cdef int nt = resolve_threads(n_threads)
    params = checked_params(params)
    grads = checked_grads(grads, params)
    exp_avg = checked_state(exp_avg, "exp_avg", params, "by Adamax")
    exp_inf = checked_state(exp_inf, "exp_inf", params, "by Adamax")
    return run_update(&o, params, grads, ("exp_avg", "exp_inf"), (exp_avg, exp_inf), nt)


# ---- RAdam ----------------------------------------------------------------------

cdef inline void radam_loop(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                            Py_ssize_t stop, const bint rectified) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating* exp_avg = <floating*>o.state[0]
    cdef floating* exp_avg_sq = <floating*>o.state[1]
    cdef floating w1 = <floating>(1 - o.s[S_RADAM_BETA1])
    cdef floating one_minus_w1 = <floating>1 - w1
    cdef bint small_weight = (w1 if w1 >= 0 else -w1) < <floating>0.5
    cdef floating beta2_ = <floating>o.s[S_RADAM_BETA2]
    cdef floating one_minus_beta2 = <floating>(1 - o.s[S_RADAM_BETA2])
    cdef floating eps_ = <floating>o.s[S_RADAM_EPS], wd = <floating>o.s[S_RADAM_WEIGHT_DECAY]
    # torch's decoupled factor, 1 - lr * weight_decay in double as Python computes it
    cdef floating decay = <floating>(1 - o.s[S_RADAM_LR] * o.s[S_RADAM_WEIGHT_DECAY])
    cdef floating lr_ = <floating>o.s[S_RADAM_LR], bc1 = <floating>o.s[S_RADAM_BIAS_CORRECTION1]
    cdef floating bc2_sqrt = <floating>o.s[S_RADAM_BIAS_CORRECTION2_SQRT]
    cdef floating rect = <floating>o.s[S_RADAM_RECT]
    cdef bint coupled_decay = o.s[S_RADAM_WEIGHT_DECAY] != 0 and o.flags == 0
    cdef bint decoupled_decay = o.s[S_RADAM_WEIGHT_DECAY] != 0 and o.flags != 0
    cdef floating gi, pi, m, u, root
    for i in range(start, stop):
        gi = g[i]
        pi = p[i]
        pi = pi * decay if decoupled_decay else pi
        gi = gi + wd * pi if coupled_decay else gi
        m = moments(exp_avg, exp_avg_sq, i, gi, w1, one_minus_w1, small_weight, beta2_,
                    one_minus_beta2)
        u = m / bc1 * lr_
        if rectified:
            # the adaptive rate is torch's  bias_correction2 ** 0.5 / (sqrt(v) + eps),
            # which Tensor.__rtruediv__ evaluates as reciprocal(sqrt(v) + eps) * scalar
            if floating is float:
                root = sqrtf(exp_avg_sq[i]) + eps_
            else:
                root = sqrt(exp_avg_sq[i]) + eps_
            u = u * (<floating>1 / root * bc2_sqrt) * rect
        p[i] = pi - u


cdef void radam_range(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                      Py_ssize_t stop) noexcept nogil:
    # one loop per step kind (rectified or not), so that each vectorises
    if o.s[S_RADAM_RECT] > 0:
        radam_loop(o, p, g, start, stop, True)
    else:
        radam_loop(o, p, g, start, stop, False)


def radam_update(params, grads, exp_avg, exp_avg_sq, *, step, lr=1e-3, betas=(0.9, 0.999),
                 eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False, n_threads=None):
    """RAdam step; see ``gdcore.reference.radam_update`` for the equations."""
    cdef Optim o
    cdef long long step_ = checked_step(step)
    cdef double lr_ = checked_real(lr, "lr", 0, False, INFINITY, False)
    cdef double beta1, beta2
    beta1, beta2 = checked_betas(betas)
    o.kind = OPT_RADAM
    o.flags = 1 if decoupled_weight_decay else 0
    o.s[S_RADAM_BETA1] = beta1
    o.s[S_RADAM_BETA2] = beta2
    o.s[S_RADAM_EPS] = checked_real(eps, "eps", 0, True, INFINITY, False)
    o.s[S_RADAM_WEIGHT_DECAY] = checked_real(weight_decay, "weight_decay", 0, False,
                                             INFINITY, False)
    o.s[S_RADAM_LR] = lr_
    cdef int nt = resolve_threads(n_threads)
    params = checked_params(params)
    grads = checked_grads(grads, params)
    exp_avg = checked_state(exp_avg, "exp_avg", params, "by RAdam")
    exp_avg_sq = checked_state(exp_avg_sq, "exp_avg_sq", params, "by RAdam")
    # the scalars of torch.optim.RAdam, as Python computes them in the reference
    cdef double t = <double>step_
    cdef double bias_correction2 = 1 - pow(beta2, t)
    cdef double rho_inf = 2 / (1 - beta2) - 1
    cdef double rho_t = rho_inf - 2 * t * pow(beta2, t) / bias_correction2
    o.s[S_RADAM_BIAS_CORRECTION1] = 1 - pow(beta1, t)
    o.s[S_RADAM_BIAS_CORRECTION2_SQRT] = pow(bias_correction2, 0.5)
    if rho_t > 5.0:
        o.s[S_RADAM_RECT] = pow((rho_t - 4) * (rho_t - 2) * rho_inf
                                / ((rho_inf - 4) * (rho_inf - 2) * rho_t), 0.5)
    else:
        o.s[S_RADAM_RECT] = 0.0
    return run_update(&o, params, grads, ("exp_avg", "exp_avg_sq"), (exp_avg, exp_avg_sq),
                      nt)


# ---- Rprop ----------------------------------------------------------------------

cdef void rprop_range(const Optim* o, floating* p, const floating* g, Py_ssize_t start,
                      Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating* prev = <floating*>o.state[0]
    cdef floating* step_size = <floating*>o.state[1]
    cdef floating etaminus = <floating>o.s[S_RPROP_ETAMINUS]
    cdef floating etaplus = <floating>o.s[S_RPROP_ETAPLUS]
    cdef floating lo = <floating>o.s[S_RPROP_STEP_SIZE_MIN]
    cdef floating hi = <floating>o.s[S_RPROP_STEP_SIZE_MAX]
    cdef floating one = 1, zero = 0
    cdef floating gi, prod, factor, size, sign
    for i in range(start, stop):
        gi = g[i]
        # torch's sign of grad * prev (0 for NaN) mapped to etaplus / etaminus / 1
        prod = gi * prev[i]
        factor = etaplus if prod > 0 else (etaminus if prod < 0 else one)
        size = step_size[i] * factor
        size = lo if size < lo else size
        size = hi if size > hi else size
        step_size[i] = size
        gi = zero if factor == etaminus else gi
        sign = one if gi > 0 else (-one if gi < 0 else zero)
        p[i] = p[i] + (-sign) * size
        prev[i] = gi


def rprop_update(params, grads, prev, step_size, *, etas=(0.5, 1.2), step_sizes=(1e-6, 50),
                 n_threads=None):
    """Rprop step; see ``gdcore.reference.rprop_update`` for the equations."""
    cdef Optim o
    o.kind = OPT_RPROP
    o.flags = 0
    if not (type(etas) is tuple and len(<tuple>etas) == 2):
        etas = _validation.check_pair(etas, "etas", "(etaminus, etaplus)")
    if not (type(step_sizes) is tuple and len(<tuple>step_sizes) == 2):
        step_sizes = _validation.check_pair(step_sizes, "step_sizes",
                                            "(min_step_size, max_step_size)")
    o.s[S_RPROP_ETAMINUS] = checked_real(etas[0], "etas[0]", 0, True, 1, True)
    o.s[S_RPROP_ETAPLUS] = checked_real(etas[1], "etas[1]", 1, True, INFINITY, False)
    o.s[S_RPROP_STEP_SIZE_MIN] = checked_real(step_sizes[0], "step_sizes[0]", 0, False,
                                              INFINITY, False)
    o.s[S_RPROP_STEP_SIZE_MAX] = checked_real(step_sizes[1], "step_sizes[1]",
                                              o.s[S_RPROP_STEP_SIZE_MIN], False, INFINITY,
                                              False)
    cdef int nt = resolve_threads(n_threads)
    params = checked_params(params)
    grads = checked_grads(grads, params)
    prev = checked_state(prev, "prev", params, "by Rprop")
    step_size = checked_state(step_size, "step_size", params, "by Rprop")
    return run_update(&o, params, grads, ("prev", "step_size"), (prev, step_size), nt)
