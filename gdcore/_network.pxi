# The MLP's training step in one native call (included by _native.pxi).
#
# Design
# ------
# A NetworkWorkspace holds, for one network and a batch capacity, every buffer a step
# needs: each layer's output A_l, its dropped-out copy when the layer has dropout, and
# G_l, which receives dE/dA_l from the layer above and is turned into the layer's delta
# in place.  A step, without the GIL and without allocating:
#
#     inputs (+ Gaussian noise)                          training only
#     for each layer:  A_l = f(A_{l-1} W_l + b_l)         dense_forward_core
#                      (parametrised activations: a pass of their own after the
#                      GEMM, the pre-activation kept in Z_l for gelu and silu)
#                      inverted dropout on hidden A_l     training only
#     E, G_L = loss_delta(A_L, T)                         canonical delta (Y - T) / B
#     for each layer, last first:
#                      G_l *= dropout mask / keep
#                      dW_l, db_l, G_{l-1} = backward     dense_backward_core
#     dW += l2 W + l1 sign(W);  E += penalties
#     the optimizer's fused update over the flat buffer  one kernel call
#       (clip_norm: the gradient's norm first, one read; the clipping and the
#       parameter groups' segments inside the update's pass, see optimizer_core)
#
# The optimizer's step-dependent scalars come from Python (gdcore.optim), in float64.
# Threads: a step whose layer GEMMs are all below STEP_GEMM_MIN_PER_THREAD runs on one
# thread throughout (see net_step); in a threaded step each layer splits its GEMMs from
# STEP_LAYER_MIN_PER_THREAD (see _constants.py); a threaded step that does not beat one
# thread sends the following steps to the calling thread alone (team_for_step).
# Random numbers (dropout masks, input noise) come from a counter-based hash of
# (step seed, stream, element index), splitmix64, so they do not depend on the thread
# count and gdcore.network reproduces them exactly with NumPy for the reference backend.
# run_epoch loops over mini-batches (gathering shuffled rows into the workspace) and
# calls the same step, so fit() does not return to Python between steps.

from libc.math cimport cos, fabs
from libc.stdint cimport uint32_t, uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef extern from "Python.h":
    # declared noexcept: an exception a signal handler raises stays set, and the epoch
    # loop stops after its current step and re-raises it with the GIL (see epoch)
    int gd_check_signals "PyErr_CheckSignals" () noexcept

cdef extern from *:
    """
    #define gd_prefetch(p) __builtin_prefetch((p), 0, 2)
    #define GD_SM64_GAMMA 0x9E3779B97F4A7C15ULL
    #define GD_SM64_M1 0xBF58476D1CE4E5B9ULL
    #define GD_SM64_M2 0x94D049BB133111EBULL
    """
    unsigned long long GD_SM64_GAMMA
    unsigned long long GD_SM64_M1
    unsigned long long GD_SM64_M2
    void gd_prefetch(const void* p) noexcept nogil

cdef enum:
    STATUS_OK = 0
    STATUS_BAD_LABEL = 1
    STATUS_NONFINITE_X = 2
    STATUS_NONFINITE_T = 3
    STATUS_INTERRUPTED = 4
    # how often (nanoseconds of work) the epoch loop takes the GIL to run signal handlers
    SIGNAL_CHECK_NS = 5000000
    # stall guard (see team_for_step): the running mean of threaded steps, from
    # STALL_MIN_RUN of them on, above STALL_FACTOR_PCT % of the solo mean plus
    # STALL_MARGIN_NS, or one threaded step above twice the solo mean plus STALL_NS
    # (a worker descheduled for a scheduler slice), runs the next steps solo: first
    # SOLO_STEPS_MIN of them, doubling on each further stall up to SOLO_STEPS_MAX;
    # CALIBRATION_STEPS solo steps start every new batch size.  Means are exponential,
    # a new step weighing 1/MEAN_WEIGHT.
    STALL_FACTOR_PCT = 110
    STALL_MARGIN_NS = 50000
    STALL_NS = 1000000
    STALL_MIN_RUN = 3
    MEAN_WEIGHT = 4
    CALIBRATION_STEPS = 2
    SOLO_STEPS_MIN = 8
    SOLO_STEPS_MAX = 2048

cdef inline unsigned long long splitmix64(unsigned long long x) noexcept nogil:
    """Steele, Lea & Flood (2014): a 64-bit counter hashed to a uniform 64-bit value."""
    cdef unsigned long long z = x + GD_SM64_GAMMA
    z = (z ^ (z >> 30)) * GD_SM64_M1
    z = (z ^ (z >> 27)) * GD_SM64_M2
    return z ^ (z >> 31)


cdef struct Net:
    int n_layers
    int loss
    int output_backward       # activation of the output layer's backward pass
    Py_ssize_t capacity
    Py_ssize_t n_params
    Py_ssize_t sizes[MAX_LAYERS + 1]
    int acts[MAX_LAYERS]
    double act_p0[MAX_LAYERS]   # parameters of parametrised activations
    double act_p1[MAX_LAYERS]
    void* Z[MAX_LAYERS]         # pre-activation of gelu/silu layers, else NULL
    double loss_param           # huber's delta
    Py_ssize_t w_off[MAX_LAYERS]
    Py_ssize_t b_off[MAX_LAYERS]
    double keep[MAX_LAYERS]
    void* params
    void* grads
    void* A[MAX_LAYERS]
    void* Ad[MAX_LAYERS]
    void* G[MAX_LAYERS]
    void* Xn
    void* Xb
    void* Tb
    cnp.int64_t* Lb
    void* sw                  # sample weights (B,) of the current step, or NULL
    # the stall guard of threaded steps (see team_for_step)
    Py_ssize_t timed_batch    # batch size the timings below belong to
    double solo_ns            # running mean of steps of that size on the calling thread
    double team_ns            # running mean of the current run of threaded steps
    int team_run              # threaded steps since the last solo step
    int solo_left             # steps still to run on the calling thread alone
    int backoff               # length of the last run of solo steps
    long long team_steps      # steps that could be threaded, run by the team
    long long solo_steps      # ... and run on the calling thread (calibration, guard)
    double grad_norm          # the gradient norm of the last step that clipped by norm


cdef struct Regularization:
    double l1
    double l2
    double noise_std


cdef void dropout_forward(const floating* A, floating* Ad, Py_ssize_t n, double keep,
                          unsigned long long key) noexcept nogil:
    """Ad = A * (1/keep) where the hash of the element index keeps it, else 0."""
    cdef Py_ssize_t i
    cdef unsigned long long threshold = <unsigned long long>(keep * 9007199254740992.0)
    cdef floating scale = <floating>(1 / keep), zero = 0
    for i in range(n):
        Ad[i] = A[i] * scale if (splitmix64(key + <unsigned long long>i) >> 11) < threshold else zero


cdef void dropout_backward(floating* G, Py_ssize_t n, double keep,
                           unsigned long long key) noexcept nogil:
    cdef Py_ssize_t i
    cdef unsigned long long threshold = <unsigned long long>(keep * 9007199254740992.0)
    cdef floating scale = <floating>(1 / keep), zero = 0
    for i in range(n):
        G[i] = G[i] * scale if (splitmix64(key + <unsigned long long>i) >> 11) < threshold else zero


cdef void add_noise(const floating* X, floating* Xn, Py_ssize_t n, double std,
                    unsigned long long key) noexcept nogil:
    """Xn = X + std * z, z standard normal by Box-Muller from two hashed uniforms."""
    cdef Py_ssize_t i
    cdef double u1, u2, z
    for i in range(n):
        u1 = <double>((splitmix64(key + 2 * <unsigned long long>i) >> 11) + 1) * 1.1102230246251565e-16
        u2 = <double>(splitmix64(key + 2 * <unsigned long long>i + 1) >> 11) * 1.1102230246251565e-16
        z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)
        Xn[i] = X[i] + <floating>(std * z)


cdef double regularize(floating* W, floating* dW, Py_ssize_t n, double l1,
                       double l2) noexcept nogil:
    """dW += l2 W; dW += l1 sign(W); returns 1/2 l2 sum W^2 + l1 sum |W|.

    The gradient passes vectorise; each penalty sum is the gradient norm's reduction
    (norm_run: NORM_LANES partial sums in double, added in lane order), so it runs at
    the speed of the read and its bits do not depend on threads or the build."""
    cdef Py_ssize_t i
    cdef floating l1_ = <floating>l1, l2_ = <floating>l2, zero = 0, one = 1, w
    cdef double penalty = 0
    if l2 != 0:
        for i in range(n):
            dW[i] = dW[i] + l2_ * W[i]
        penalty += 0.5 * l2 * lane_sum(W, n, 2.0)
    if l1 != 0:
        for i in range(n):
            w = W[i]
            # numpy.sign: -1, 0 or 1, and NaN for NaN
            dW[i] = dW[i] + l1_ * (one if w > zero else (-one if w < zero else w))
        penalty += l1 * lane_sum(W, n, 1.0)
    return penalty


cdef double lane_sum(const floating* W, Py_ssize_t n, double p) noexcept nogil:
    """sum |W_i|^p for p = 1 or 2, by norm_run's lanes added in lane order."""
    cdef double acc[NORM_LANES]
    cdef double total = 0
    cdef Py_ssize_t j
    for j in range(NORM_LANES):
        acc[j] = 0
    norm_run(W, 0, n, 0, p, acc)
    for j in range(NORM_LANES):
        total = total + acc[j]
    return total


cdef bint all_finite(const floating* a, Py_ssize_t n) noexcept nogil:
    """True when none of the n values is NaN or infinite.  The magnitude bits of an
    IEEE float are at least those of infinity exactly for inf and NaN; their maximum is
    an integer reduction, which vectorises (a floating-point one would not without
    -ffast-math), so the check costs about one read of the array."""
    cdef Py_ssize_t i
    cdef const uint32_t* a32
    cdef const uint64_t* a64
    cdef uint32_t m32 = 0, x32
    cdef uint64_t m64 = 0, x64
    if floating is float:
        a32 = <const uint32_t*>a
        for i in range(n):
            x32 = a32[i] & 0x7fffffffU
            m32 = x32 if x32 > m32 else m32
        return m32 < 0x7f800000U
    else:
        a64 = <const uint64_t*>a
        for i in range(n):
            x64 = a64[i] & 0x7fffffffffffffffULL
            m64 = x64 if x64 > m64 else m64
        return m64 < 0x7ff0000000000000ULL


cdef double weighted_loss_core(int loss, const floating* Y, const floating* T,
                               const cnp.int64_t* labels, const floating* sw,
                               floating* D, Py_ssize_t n_samples,
                               Py_ssize_t n_out, double lp) noexcept nogil:
    """The sample-weighted batch loss sum_i w_i E_i / sum_i w_i and its delta
    D_i = w_i (Y_i - T_i) / sum_i w_i (scikit-learn's weighted MLP loss).  Serial, in
    row order: the per-row terms come from loss_rows, so each is the unweighted one."""
    cdef Py_ssize_t i, j
    cdef double total = 0, sw_sum = 0, row
    cdef floating scale
    for i in range(n_samples):
        sw_sum += sw[i]
    for i in range(n_samples):
        row = loss_rows(loss, Y, T, labels, D, i, i + 1, n_samples, n_out, lp)
        total += sw[i] * row
        scale = <floating>(sw[i] * n_samples / sw_sum)
        for j in range(n_out):
            D[i * n_out + j] = D[i * n_out + j] * scale
    if loss == LOSS_SQUARED_ERROR:
        return 0.5 * total / sw_sum
    if loss_is_mean(loss):
        return total / (sw_sum * n_out)
    return -total / sw_sum


cdef inline long long monotonic_ns() noexcept nogil:
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec * 1000000000LL + now.tv_nsec


cdef int team_for_step(Net* net, Py_ssize_t B, int nt) noexcept nogil:
    """The threads that run this step's blocks: ``nt``, or 1 while the stall guard
    holds the step on the calling thread.

    A parallel region waits for its slowest thread; when another process holds the
    other core, the worker can be descheduled for a scheduler slice (6-16 ms measured
    here) and the step waits with it; a busy machine can also make the team merely
    slower than one thread.  The guard times every step that could be threaded: the
    first CALIBRATION_STEPS steps of each batch size run solo, and when the threaded
    steps do not pay -- their running mean above the solo mean by the STALL_ rule, or
    one of them stalled outright -- the next SOLO_STEPS_MIN..SOLO_STEPS_MAX steps run
    on the calling thread alone (doubling while it repeats, halving after each
    threaded step that pays).  Means rather than single steps: on a shared machine a
    lone slow step is common and says little, and sending the team away for it cost
    more than the slow step (measured here: two threads 1.0-1.1x one thread on a
    784-256-128-10 step at batch 512 with single-step decisions, 1.7-1.9x with means).
    The blocks are fixed by ``nt`` whatever runs them, so the results are the same
    bits either way."""
    if nt <= 1:
        return 1
    if B != net.timed_batch:
        net.timed_batch = B
        net.solo_ns = 0
        net.team_ns = 0
        net.team_run = 0
        net.backoff = 0
        net.solo_left = CALIBRATION_STEPS
    if net.solo_left > 0:
        net.solo_left -= 1
        return 1
    return nt


cdef inline double running_mean(double mean, long long sample, bint first) noexcept nogil:
    return <double>sample if first else mean + (<double>sample - mean) / MEAN_WEIGHT


cdef void record_step(Net* net, int team, long long elapsed) noexcept nogil:
    """Fold a timed step into the stall guard (see team_for_step)."""
    cdef double solo = net.solo_ns
    if team <= 1:
        net.solo_steps += 1
        # a faster solo step replaces the mean: the first steps of a size (cold caches,
        # page faults) must not make one thread look slower than it is
        net.solo_ns = running_mean(solo, elapsed, solo == 0 or elapsed < solo)
        net.team_run = 0
        return
    net.team_steps += 1
    net.team_ns = running_mean(net.team_ns, elapsed, net.team_run == 0)
    net.team_run += 1
    if solo > 0 and (elapsed > 2 * solo + STALL_NS
                     or (net.team_run >= STALL_MIN_RUN
                         and net.team_ns * 100 > solo * STALL_FACTOR_PCT + STALL_MARGIN_NS * 100)):
        net.backoff = min(max(2 * net.backoff, <int>SOLO_STEPS_MIN), <int>SOLO_STEPS_MAX)
        net.solo_left = net.backoff
        net.team_run = 0
    elif net.team_run >= STALL_MIN_RUN:
        net.backoff //= 2


cdef double net_step(Net* net, const floating* X, const floating* T,
                     const cnp.int64_t* labels, Py_ssize_t B, bint training,
                     Optim* opt, Regularization* reg, unsigned long long seed, int nt,
                     int* status) noexcept nogil:
    """Forward, loss, backward into net.grads; with ``opt`` also the update.
    ``training`` turns dropout and input noise on.  Returns the loss."""
    cdef int l, L = net.n_layers
    cdef Py_ssize_t i, n_in, n_out, K = net.sizes[L]
    cdef floating* params = <floating*>net.params
    cdef floating* grads = <floating*>net.grads
    cdef const floating* inp
    cdef const floating* layer_in
    cdef floating* G
    cdef double value, penalty = 0
    cdef Py_ssize_t largest
    cdef bint drop
    cdef int team, act
    cdef long long started
    cdef floating* pre
    if labels != NULL:
        for i in range(B):
            if labels[i] < 0 or labels[i] >= K:
                status[0] = STATUS_BAD_LABEL
                return NAN
    # A step whose GEMMs are all too small for a second thread runs entirely on one:
    # its other parallel regions (the optimizer update above all) would otherwise wake
    # a worker that went to sleep during the single-threaded GEMMs, which costs more
    # (tens of microseconds) than the split saves.
    largest = 0
    for l in range(L):
        largest = max(largest, B * net.sizes[l] * net.sizes[l + 1])
    if threads_for(nt, largest, STEP_GEMM_MIN_PER_THREAD) == 1:
        nt = 1
    team = team_for_step(net, B, nt)
    started = monotonic_ns() if nt > 1 else 0
    inp = X
    if training and reg.noise_std > 0:
        add_noise(X, <floating*>net.Xn, B * net.sizes[0], reg.noise_std,
                  splitmix64(seed + NOISE_STREAM))
        inp = <floating*>net.Xn
    layer_in = inp
    for l in range(L):
        n_in, n_out = net.sizes[l], net.sizes[l + 1]
        act = net.acts[l]
        if act >= ACT_FIRST_PARAM:
            pre = <floating*>(net.Z[l] if net.Z[l] != NULL else net.A[l])
            dense_forward_core(ACT_IDENTITY, layer_in, params + net.w_off[l],
                               params + net.b_off[l], pre, B, n_in, n_out, nt, team,
                               STEP_LAYER_MIN_PER_THREAD)
            activation_core(act, pre, <floating*>net.A[l], B, n_out, team, net.act_p0[l],
                            net.act_p1[l])
        else:
            dense_forward_core(act, layer_in, params + net.w_off[l], params + net.b_off[l],
                               <floating*>net.A[l], B, n_in, n_out, nt, team,
                               STEP_LAYER_MIN_PER_THREAD)
        drop = training and net.keep[l] < 1
        if drop:
            dropout_forward(<floating*>net.A[l], <floating*>net.Ad[l], B * n_out, net.keep[l],
                            splitmix64(seed + <unsigned long long>l))
            layer_in = <floating*>net.Ad[l]
        else:
            layer_in = <floating*>net.A[l]
    if net.sw != NULL:
        value = weighted_loss_core(net.loss, <floating*>net.A[L - 1], T, labels,
                                   <floating*>net.sw, <floating*>net.G[L - 1], B, K,
                                   net.loss_param)
    else:
        value = loss_core(net.loss, <floating*>net.A[L - 1], T, labels,
                          <floating*>net.G[L - 1], B, K, team, net.loss_param)
    for l in range(L - 1, -1, -1):
        n_in, n_out = net.sizes[l], net.sizes[l + 1]
        G = <floating*>net.G[l]
        if training and net.keep[l] < 1:
            dropout_backward(G, B * n_out, net.keep[l], splitmix64(seed + <unsigned long long>l))
        if l == 0:
            layer_in = inp
        elif training and net.keep[l - 1] < 1:
            layer_in = <floating*>net.Ad[l - 1]
        else:
            layer_in = <floating*>net.A[l - 1]
        act = net.output_backward if l == L - 1 else net.acts[l]
        if act >= ACT_FIRST_PARAM:
            # G = G f'(A or Z), then the layer's backward pass as an identity layer
            activation_backward_core(act, <floating*>(net.Z[l] if net.Z[l] != NULL else net.A[l]),
                                     G, G, B, n_out, team, net.act_p0[l], net.act_p1[l])
            act = ACT_IDENTITY
        dense_backward_core(act, layer_in,
                            params + net.w_off[l], <floating*>net.A[l], G, G,
                            <floating*>net.G[l - 1] if l > 0 else NULL,
                            grads + net.w_off[l], grads + net.b_off[l], B, n_in, n_out, nt,
                            team, STEP_LAYER_MIN_PER_THREAD)
    if reg.l1 != 0 or reg.l2 != 0:
        for l in range(L):
            penalty += regularize(params + net.w_off[l], grads + net.w_off[l],
                                  net.sizes[l] * net.sizes[l + 1], reg.l1, reg.l2)
    if opt != NULL:
        if opt.clip == CLIP_NORM:
            prepare_clip(opt, grads, net.n_params, team, &net.grad_norm)
        optimizer_core(opt, params, grads, net.n_params, team)
    if nt > 1:
        record_step(net, team, monotonic_ns() - started)
    return value + penalty


cdef void gather_rows(const floating* src, floating* dst, const cnp.int64_t* rows,
                      Py_ssize_t n_rows, Py_ssize_t width, int n_threads) noexcept nogil:
    """dst[r] = src[rows[r]]: the shuffled mini-batch, copied row by row (a memory-bound
    copy, split between threads like the elementwise kernels)."""
    cdef Py_ssize_t r
    cdef int nt = threads_for(n_threads, n_rows * width, ELEMENTWISE_MIN_PER_THREAD)
    if nt == 1:
        for r in range(n_rows):
            memcpy(dst + r * width, src + rows[r] * width, width * sizeof(floating))
        return
    for r in prange(n_rows, schedule='static', num_threads=nt):
        memcpy(dst + r * width, src + rows[r] * width, width * sizeof(floating))


cdef void prefetch_rows(const void* src, const cnp.int64_t* rows, Py_ssize_t n_rows,
                        Py_ssize_t row_bytes) noexcept nogil:
    """Ask the memory system for the rows of the next mini-batch: shuffled rows of a
    large X are cache misses, which the current step's work then hides."""
    cdef Py_ssize_t r, offset
    cdef const char* row
    for r in range(n_rows):
        row = <const char*>src + rows[r] * row_bytes
        offset = 0
        while offset < row_bytes:
            gd_prefetch(row + offset)
            offset += 64


cdef double net_epoch(Net* net, const floating* X, const floating* T,
                      const cnp.int64_t* labels, Py_ssize_t N, const cnp.int64_t* order,
                      Py_ssize_t batch, Optim* opt, const double* scalars,
                      const unsigned long long* seeds, Regularization* reg, int nt,
                      int* status) noexcept nogil:
    """One epoch of mini-batch steps over the rows in ``order`` (NULL: 0..N-1).
    Returns the sum over batches of (batch loss x batch size)."""
    cdef Py_ssize_t start, k = 0, B, j, next_b
    cdef Py_ssize_t n_in = net.sizes[0], K = net.sizes[net.n_layers]
    cdef const floating* Xk
    cdef const floating* Tk
    cdef const cnp.int64_t* Lk
    cdef double total = 0, value
    cdef timespec now
    cdef long long last_check, now_ns
    clock_gettime(CLOCK_MONOTONIC, &now)
    last_check = now.tv_sec * 1000000000LL + now.tv_nsec
    start = 0
    while start < N:
        if start > 0:
            # Ctrl-C: between steps, every SIGNAL_CHECK_NS of work, run the signal
            # handlers (a clock read per step; the GIL only every few milliseconds)
            clock_gettime(CLOCK_MONOTONIC, &now)
            now_ns = now.tv_sec * 1000000000LL + now.tv_nsec
            if now_ns - last_check >= SIGNAL_CHECK_NS:
                last_check = now_ns
                with gil:
                    if gd_check_signals() != 0:
                        status[0] = STATUS_INTERRUPTED
                        return total
        B = min(batch, N - start)
        if order != NULL:
            gather_rows(X, <floating*>net.Xb, order + start, B, n_in,
                        1 if net.solo_left > 0 else nt)
            Xk = <floating*>net.Xb
            if labels != NULL:
                for j in range(B):
                    net.Lb[j] = labels[order[start + j]]
                Lk = net.Lb
                Tk = NULL
            else:
                gather_rows(T, <floating*>net.Tb, order + start, B, K,
                            1 if net.solo_left > 0 else nt)
                Tk = <floating*>net.Tb
                Lk = NULL
            if start + B < N:
                next_b = min(batch, N - start - B)
                prefetch_rows(X, order + start + B, next_b, n_in * sizeof(floating))
                if labels != NULL:
                    prefetch_rows(labels, order + start + B, next_b, sizeof(cnp.int64_t))
                else:
                    prefetch_rows(T, order + start + B, next_b, K * sizeof(floating))
        else:
            Xk = X + start * n_in
            Tk = T + start * K if T != NULL else NULL
            Lk = labels + start if labels != NULL else NULL
        if opt.n_seg > 0:
            opt.seg_s = scalars + N_SCALARS * opt.n_seg * k     # one row per segment
        else:
            memcpy(opt.s, scalars + N_SCALARS * k, N_SCALARS * sizeof(double))
        value = net_step(net, Xk, Tk, Lk, B, True, opt, reg, seeds[k], nt, status)
        if status[0] != STATUS_OK:
            return NAN
        total += value * B
        start += B
        k += 1
    return total


def batch_is_finite(const floating[:, ::1] X):
    """The finiteness check a training step runs on its batch (exposed for tests and
    the benchmark of its cost)."""
    cdef bint ok
    with nogil:
        ok = all_finite(&X[0, 0] if X.shape[0] > 0 and X.shape[1] > 0 else NULL,
                        X.shape[0] * X.shape[1])
    return bool(ok)


def _describe_buffer(buf):
    try:
        return (f"{type(buf).__name__} of shape {buf.shape}, dtype {buf.dtype}, "
                f"C-contiguous={buf.flags.c_contiguous}, writable={buf.flags.writeable}")
    except AttributeError:
        return type(buf).__name__


cdef int _raise_pending() except -1:
    """Propagate the exception a signal handler left set."""
    return -1


cdef class NetworkWorkspace:
    """Buffers of one network for batches of up to ``capacity`` rows (see the Design
    note of _network.pxi).  Made and used by gdcore.network.MLP."""

    cdef Net net
    cdef list _arrays
    cdef list _outputs
    cdef readonly Py_ssize_t capacity
    cdef readonly object dtype
    cdef int typenum

    def __cinit__(self, cnp.ndarray params, cnp.ndarray grads, sizes, act_codes,
                  int loss_code, Py_ssize_t capacity, keep, bint noise, bint epochs,
                  int output_backward_code, act_params=None, double loss_param=0):
        import numpy as np
        cdef int l, L = len(act_codes)
        cdef Py_ssize_t offset = 0
        if not 1 <= L <= MAX_LAYERS:
            raise ValueError(f"networks of 1 to {MAX_LAYERS} layers are supported, got {L}")
        self.capacity = max(capacity, 1)
        self.dtype = params.dtype
        self.typenum = cnp.PyArray_TYPE(params)
        self._arrays = [params, grads]
        self.net.n_layers = L
        self.net.sw = NULL
        self.net.timed_batch = 0
        self.net.solo_ns = 0
        self.net.team_ns = 0
        self.net.team_run = 0
        self.net.solo_left = 0
        self.net.backoff = 0
        self.net.team_steps = 0
        self.net.solo_steps = 0
        self.net.grad_norm = NAN
        self.net.loss = loss_code
        self.net.loss_param = loss_param
        self.net.output_backward = output_backward_code
        self.net.capacity = self.capacity
        self.net.params = cnp.PyArray_DATA(params)
        self.net.grads = cnp.PyArray_DATA(grads)
        for l in range(L + 1):
            self.net.sizes[l] = sizes[l]
        for l in range(L):
            self.net.acts[l] = act_codes[l]
            self.net.keep[l] = keep[l]
            self.net.act_p0[l], self.net.act_p1[l] = (act_params[l] if act_params is not None
                                                      else (0.0, 0.0))
            self.net.w_off[l] = offset
            offset += sizes[l] * sizes[l + 1]
            self.net.b_off[l] = offset
            offset += sizes[l + 1]
        self.net.n_params = offset
        if offset != params.shape[0]:
            raise ValueError(f"params has {params.shape[0]} values, the layers need {offset}")

        self._outputs = []
        for l in range(L):
            self._outputs.append(np.zeros((self.capacity, sizes[l + 1]), dtype=self.dtype))
            self.net.A[l] = self._keep(self._outputs[l])
            self.net.Z[l] = (self._keep(np.zeros((self.capacity, sizes[l + 1]), dtype=self.dtype))
                             if act_codes[l] == ACT_GELU or act_codes[l] == ACT_SILU else NULL)
            self.net.G[l] = self._keep(np.zeros((self.capacity, sizes[l + 1]), dtype=self.dtype))
            self.net.Ad[l] = (self._keep(np.zeros((self.capacity, sizes[l + 1]), dtype=self.dtype))
                              if keep[l] < 1 else NULL)
        self.net.Xn = (self._keep(np.zeros((self.capacity, sizes[0]), dtype=self.dtype))
                       if noise else NULL)
        self.net.Xb = (self._keep(np.zeros((self.capacity, sizes[0]), dtype=self.dtype))
                       if epochs else NULL)
        self.net.Tb = (self._keep(np.zeros((self.capacity, sizes[L]), dtype=self.dtype))
                       if epochs else NULL)
        self.net.Lb = (<cnp.int64_t*>self._keep(np.zeros(self.capacity, dtype=np.int64))
                       if epochs else NULL)

    cdef void* _keep(self, cnp.ndarray a):
        """Keep ``a`` alive as long as the workspace and return its data pointer."""
        self._arrays.append(a)
        return cnp.PyArray_DATA(a)

    @property
    def has_noise_buffer(self):
        return self.net.Xn != NULL

    @property
    def has_epoch_buffers(self):
        return self.net.Xb != NULL

    @property
    def last_grad_norm(self):
        """The gradient norm of the last step that clipped by norm (NaN before one)."""
        return self.net.grad_norm

    def stall_guard(self):
        """The stall guard's state (see team_for_step): batch size timed, running
        means of solo steps and of the current run of threaded steps in ns, threaded
        steps in that run, solo steps left, current backoff; and, over the
        workspace's life, how many steps that could be threaded ran on the team and
        how many on the calling thread alone (``team_steps``, ``solo_steps``)."""
        return {"batch": self.net.timed_batch, "solo_ns": self.net.solo_ns,
                "team_ns": self.net.team_ns, "team_run": self.net.team_run,
                "solo_left": self.net.solo_left, "backoff": self.net.backoff,
                "team_steps": self.net.team_steps, "solo_steps": self.net.solo_steps}

    def hold_solo(self, int steps):
        """Run the next ``steps`` threaded steps on the calling thread alone (the
        same blocks, so the same bits; for tests of that)."""
        self.net.solo_left = max(steps, 0)

    def record_step(self, Py_ssize_t batch, int team, long long elapsed_ns):
        """Feed the stall guard a step of ``batch`` rows that ``team`` threads ran in
        ``elapsed_ns`` (for tests of the guard's rule)."""
        if batch != self.net.timed_batch:
            team_for_step(&self.net, batch, 2)
            self.net.solo_left = 0
        record_step(&self.net, team, elapsed_ns)

    def _raise_bad_label(self, labels):
        K = self.net.sizes[self.net.n_layers]
        bad = labels[(labels < 0) | (labels >= K)]
        raise ValueError(f"T contains label {bad[0] if len(bad) else '?'}; labels must be "
                         f"in [0, {K})")

    cdef int _optim(self, Optim* opt, int kind, int flags, scalars, state, clip=None,
                    segments=None) except -1:
        """Fill ``opt``, checking every state buffer the update will touch: each must be
        a writable, aligned, C-contiguous 1-D array of the workspace dtype and exactly
        n_params long, so no state handed in can make the update read or write out of
        bounds.  ``clip`` and ``segments``: see ``_options``."""
        cdef int i
        cdef object buf
        no_options(opt)
        cdef Py_ssize_t n_rows = self._options(opt, clip, segments, scalars)
        if (not 0 <= kind < N_OPTIMIZERS or len(scalars) != N_SCALARS * n_rows
                or len(state) > N_STATE):
            raise ValueError("not an optimizer plan of gdcore.optim")
        opt.kind = kind
        opt.flags = flags
        for i in range(N_SCALARS):
            opt.s[i] = scalars[i]
        for i in range(N_STATE):
            buf = state[i] if i < len(state) else None
            if buf is None:
                if state_required(opt, i):
                    raise ValueError(f"the optimizer's state buffer {i} is missing; "
                                     f"reset() the optimizer or load a full state_dict")
                opt.state[i] = NULL
            elif vector_ok(buf, self.typenum, self.net.n_params, True):
                opt.state[i] = cnp.PyArray_DATA(<cnp.ndarray>buf)
            else:
                raise ValueError(
                    f"the optimizer's state buffer {i} must be a writable C-contiguous "
                    f"1-D {self.dtype} array of the {self.net.n_params} parameters, got "
                    f"{_describe_buffer(buf)}")
        return 0

    cdef Py_ssize_t _options(self, Optim* opt, clip, segments, scalars) except -1:
        """Set the clipping and the parameter groups of ``opt``; returns the number of
        scalar rows the update needs.

        ``clip``: None, or (CLIP_NORM, max_norm, norm_type) or (CLIP_VALUE, clip_value,
        ignored).  ``segments``: None, or an (n, 3) C-contiguous int64 array of rows
        (start, stop, frozen), ordered and not overlapping within [0, n_params), with
        ``scalars`` a C-contiguous float64 array of n rows of N_SCALARS (kept alive by
        the caller during the call)."""
        cdef Py_ssize_t j, n_seg, prev = 0
        cdef cnp.ndarray seg
        if clip is not None:
            mode, value, norm_type = clip
            if mode == CLIP_NORM:
                opt.max_norm = checked_real(value, "clip_norm", 0, True, INFINITY, False)
                opt.norm_type = checked_norm_type(norm_type)
            elif mode == CLIP_VALUE:
                opt.clip_value = checked_real(value, "clip_value", 0, True, INFINITY, False)
            elif mode != CLIP_NONE:
                raise ValueError(f"unknown clipping mode {mode!r}")
            opt.clip = mode
        if segments is None:
            return 1
        if not (cnp.PyArray_Check(segments)
                and cnp.PyArray_TYPE(<cnp.ndarray>segments) == cnp.NPY_INT64
                and cnp.PyArray_NDIM(<cnp.ndarray>segments) == 2
                and cnp.PyArray_DIM(<cnp.ndarray>segments, 1) == 3
                and cnp.PyArray_DIM(<cnp.ndarray>segments, 0) >= 1
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>segments)):
            raise ValueError(f"segments must be an (n, 3) C-contiguous int64 array, got "
                             f"{_describe_buffer(segments)}")
        seg = <cnp.ndarray>segments
        n_seg = cnp.PyArray_DIM(seg, 0)
        for j in range(n_seg):
            if not prev <= segments[j, 0] <= segments[j, 1] <= self.net.n_params:
                raise ValueError(f"segment {j} {tuple(segments[j])} is out of order or "
                                 f"outside the {self.net.n_params} parameters")
            prev = segments[j, 1]
        if not (cnp.PyArray_Check(scalars)
                and cnp.PyArray_TYPE(<cnp.ndarray>scalars) == cnp.NPY_FLOAT64
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>scalars)
                and cnp.PyArray_SIZE(<cnp.ndarray>scalars) == n_seg * N_SCALARS):
            raise ValueError(f"with {n_seg} segments the scalars must be a C-contiguous "
                             f"float64 array of {n_seg} x {N_SCALARS} values")
        opt.n_seg = n_seg
        opt.seg = <cnp.int64_t*>cnp.PyArray_DATA(seg)
        opt.seg_s = <double*>cnp.PyArray_DATA(<cnp.ndarray>scalars)
        return n_seg

    cdef bint _batch_ok(self, object X, object T):
        """X (B, n_in) and T (int64 labels (B,) or (B, n_out) targets) are arrays this
        workspace takes as they are: its dtype, C-contiguous, aligned, 1 <= B <= capacity."""
        cdef cnp.ndarray x, t
        cdef Py_ssize_t B
        if not (cnp.PyArray_Check(X) and cnp.PyArray_Check(T)):
            return False
        x, t = <cnp.ndarray>X, <cnp.ndarray>T
        if not (cnp.PyArray_TYPE(x) == self.typenum and cnp.PyArray_NDIM(x) == 2
                and cnp.PyArray_DIM(x, 1) == self.net.sizes[0]
                and cnp.PyArray_IS_C_CONTIGUOUS(x) and cnp.PyArray_ISALIGNED(x)
                and cnp.PyArray_ISNOTSWAPPED(x)):
            return False
        B = cnp.PyArray_DIM(x, 0)
        if B < 1 or B > self.capacity:
            return False
        # the number of dimensions first: PyArray_DIM of a 0-d array reads past its shape
        if not (1 <= cnp.PyArray_NDIM(t) <= 2 and cnp.PyArray_IS_C_CONTIGUOUS(t)
                and cnp.PyArray_ISALIGNED(t) and cnp.PyArray_ISNOTSWAPPED(t)
                and cnp.PyArray_DIM(t, 0) == B):
            return False
        if cnp.PyArray_NDIM(t) == 1:
            return self.net.loss == LOSS_CROSS_ENTROPY and cnp.PyArray_TYPE(t) == cnp.NPY_INT64
        return (cnp.PyArray_NDIM(t) == 2 and cnp.PyArray_TYPE(t) == self.typenum
                and cnp.PyArray_DIM(t, 1) == self.net.sizes[self.net.n_layers])

    def try_step(self, X, T, bint training, bint update, int kind, int flags, scalars,
                 state, double l1, double l2, double noise_std, unsigned long long seed,
                 int n_threads, owner=None, clip=None, segments=None):
        """``step`` when X and T pass the fast checks (see _batch_ok), else None and
        nothing is done: the caller validates them in Python and calls ``step``."""
        if not self._batch_ok(X, T) or (noise_std > 0 and self.net.Xn == NULL):
            return None
        return self.step(X, T, training, update, kind, flags, scalars, state, l1, l2,
                         noise_std, seed, n_threads, owner=owner, clip=clip,
                         segments=segments)

    def step(self, X, T, bint training, bint update, int kind, int flags, scalars, state,
             double l1, double l2, double noise_std, unsigned long long seed, int n_threads,
             sample_weight=None, owner=None, clip=None, segments=None):
        """One step on validated arrays: X (B, n_in) of the workspace dtype, T either
        int64 labels (B,) or (B, n_out) targets; B <= capacity.  Returns the loss
        (data loss plus the l1/l2 penalties).  ``sample_weight``: validated (B,)
        C-contiguous weights of the workspace dtype with a positive sum, for the
        weighted loss sum_i w_i E_i / sum_i w_i.

        With an ``owner`` (the optimizer), an update also advances its step count here,
        in the same native call, so no Ctrl-C can fall between the two.  ``clip`` and
        ``segments`` (gradient clipping, parameter groups): see ``_options``; after the
        step ``grads`` holds the clipped gradient."""
        cdef Optim opt
        cdef Regularization reg
        cdef int status = STATUS_OK
        cdef double value
        cdef Py_ssize_t B = cnp.PyArray_DIM(<cnp.ndarray>X, 0)
        cdef void* x = cnp.PyArray_DATA(<cnp.ndarray>X)
        cdef void* t = cnp.PyArray_DATA(<cnp.ndarray>T)
        cdef bint is_labels = cnp.PyArray_NDIM(<cnp.ndarray>T) == 1
        if B > self.capacity:
            raise ValueError(f"batch of {B} rows exceeds the workspace's {self.capacity}")
        if update and B < 1:
            raise ValueError("X has no samples: a training step needs a non-empty batch")
        if update:
            self._optim(&opt, kind, flags, scalars, state, clip, segments)
        reg.l1, reg.l2, reg.noise_std = l1, l2, noise_std
        if sample_weight is not None:
            if not (cnp.PyArray_Check(sample_weight)
                    and cnp.PyArray_TYPE(<cnp.ndarray>sample_weight) == self.typenum
                    and cnp.PyArray_NDIM(<cnp.ndarray>sample_weight) == 1
                    and cnp.PyArray_DIM(<cnp.ndarray>sample_weight, 0) == B
                    and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>sample_weight)):
                raise ValueError(f"sample_weight must be a C-contiguous ({B},) array of "
                                 f"dtype {self.dtype}")
        with nogil:
            # a training step rejects non-finite inputs before touching any state
            if update and self.typenum == cnp.NPY_FLOAT32:
                if not all_finite(<float*>x, B * self.net.sizes[0]):
                    status = STATUS_NONFINITE_X
                elif not is_labels and not all_finite(<float*>t, B * self.net.sizes[self.net.n_layers]):
                    status = STATUS_NONFINITE_T
            elif update:
                if not all_finite(<double*>x, B * self.net.sizes[0]):
                    status = STATUS_NONFINITE_X
                elif not is_labels and not all_finite(<double*>t, B * self.net.sizes[self.net.n_layers]):
                    status = STATUS_NONFINITE_T
        if status == STATUS_NONFINITE_X:
            raise ValueError("X contains NaN or infinity")
        if status == STATUS_NONFINITE_T:
            raise ValueError("T contains NaN or infinity")
        if sample_weight is not None:   # set only for this call: reset below, no raise between
            self.net.sw = cnp.PyArray_DATA(<cnp.ndarray>sample_weight)
        with nogil:
            blas_threads_single()
            if self.typenum == cnp.NPY_FLOAT32:
                value = net_step(&self.net, <float*>x, NULL if is_labels else <float*>t,
                                 <cnp.int64_t*>t if is_labels else NULL, B, training,
                                 &opt if update else NULL, &reg, seed, n_threads, &status)
            else:
                value = net_step(&self.net, <double*>x, NULL if is_labels else <double*>t,
                                 <cnp.int64_t*>t if is_labels else NULL, B, training,
                                 &opt if update else NULL, &reg, seed, n_threads, &status)
            blas_threads_restore()
        self.net.sw = NULL
        if status == STATUS_BAD_LABEL:
            self._raise_bad_label(T)
        if update and owner is not None:
            counts = owner.__dict__
            counts["_step_count"] = counts["_step_count"] + 1
        return value

    def epoch(self, X, T, order, Py_ssize_t batch, int kind, int flags,
              cnp.ndarray scalars, cnp.ndarray seeds, state, double l1, double l2,
              double noise_std, int n_threads, Py_ssize_t n_rows=-1, clip=None,
              segments=None):
        """Mini-batch steps over all N rows of X/T (in ``order`` when not None), with
        per-step optimizer scalars (n_steps, N_SCALARS) and seeds (n_steps,).  Returns the sum
        over batches of (loss x batch size).  ``n_rows`` >= 0 takes only the first
        n_rows rows (of ``order`` when given, else of X/T).  With ``segments`` (n_seg
        rows) each step has n_seg rows of scalars: ``scalars`` is (n_steps,
        n_seg * N_SCALARS)."""
        cdef Optim opt
        cdef Regularization reg
        cdef int status = STATUS_OK
        cdef double total
        cdef Py_ssize_t N = cnp.PyArray_DIM(<cnp.ndarray>X, 0)
        cdef void* x = cnp.PyArray_DATA(<cnp.ndarray>X)
        cdef void* t = cnp.PyArray_DATA(<cnp.ndarray>T)
        cdef bint is_labels = cnp.PyArray_NDIM(<cnp.ndarray>T) == 1
        cdef const cnp.int64_t* order_ptr = NULL
        cdef const double* s = <double*>cnp.PyArray_DATA(scalars)
        cdef const unsigned long long* seed_ptr = <unsigned long long*>cnp.PyArray_DATA(seeds)
        cdef Py_ssize_t row = N_SCALARS * (len(segments) if segments is not None else 1)
        if batch < 1 or batch > self.capacity or (order is not None and self.net.Xb == NULL):
            raise ValueError("the workspace cannot hold these batches")
        if n_rows >= 0:
            if n_rows > N or (order is not None and n_rows > len(order)):
                raise ValueError(f"n_rows={n_rows} exceeds the rows given")
            N = n_rows
        if (cnp.PyArray_NDIM(scalars) != 2 or cnp.PyArray_TYPE(scalars) != cnp.NPY_FLOAT64
                or not cnp.PyArray_IS_C_CONTIGUOUS(scalars)
                or cnp.PyArray_DIM(scalars, 0) != (N + batch - 1) // batch
                or cnp.PyArray_DIM(scalars, 1) != row
                or cnp.PyArray_TYPE(seeds) != cnp.NPY_UINT64 or cnp.PyArray_NDIM(seeds) != 1
                or not cnp.PyArray_IS_C_CONTIGUOUS(seeds)
                or cnp.PyArray_DIM(seeds, 0) != cnp.PyArray_DIM(scalars, 0)):
            raise ValueError(f"epoch needs (n_steps, {row}) float64 scalars and (n_steps,) "
                             "uint64 seeds")
        if order is not None:
            order_ptr = <cnp.int64_t*>cnp.PyArray_DATA(<cnp.ndarray>order)
        import numpy
        self._optim(&opt, kind, flags,
                    scalars[0] if len(scalars) else numpy.zeros(row, dtype=numpy.float64),
                    state, clip, segments)
        reg.l1, reg.l2, reg.noise_std = l1, l2, noise_std
        with nogil:
            blas_threads_single()
            if self.typenum == cnp.NPY_FLOAT32:
                total = net_epoch(&self.net, <float*>x, NULL if is_labels else <float*>t,
                                  <cnp.int64_t*>t if is_labels else NULL, N, order_ptr,
                                  batch, &opt, s, seed_ptr, &reg, n_threads, &status)
            else:
                total = net_epoch(&self.net, <double*>x, NULL if is_labels else <double*>t,
                                  <cnp.int64_t*>t if is_labels else NULL, N, order_ptr,
                                  batch, &opt, s, seed_ptr, &reg, n_threads, &status)
            blas_threads_restore()
        if status == STATUS_INTERRUPTED:
            _raise_pending()
        if status == STATUS_BAD_LABEL:
            self._raise_bad_label(T)
        return total
