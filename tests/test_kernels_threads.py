"""Threads in the native kernels: determinism, the thread setting, fork, BLAS, the GIL.

The inputs here are large enough that the kernels really split the work over two
threads (checked with ``gdcore._openmp.threads_used`` and
``gdcore.kernels.THRESHOLDS``).  Elementwise kernels, optimizer updates, the bias
gradient and the loss value must then give the same bits for 1 and 2 threads.
"""
import multiprocessing
import threading
import time

import numpy as np
import pytest

import gdcore as gd
import gdcore.kernels as K
import gdcore.reference as R
from gdcore import _openmp
from conftest import assert_bitwise, dense_layer_inputs, gemm_tol

ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "softmax"]
OPENMP = _openmp.openmp_enabled()
ELEMENTWISE = K.THRESHOLDS["elementwise_min_per_thread"]
OPTIMIZER = K.THRESHOLDS["optimizer_min_per_thread"]
GEMM = K.THRESHOLDS["gemm_min_per_thread"]

# 257 x 301 = 77357 elements: two elementwise threads; 257 softmax rows
ACT_SHAPE = (257, 301)
# 600 x 129 x 131: forward GEMM 10.1e6 multiply-adds, backward 20.3e6 (two threads
# each); the delta / bias pass covers 78600 elements in three 64-column blocks
LAYER = (600, 129, 131)
# 700 x 97 = 67900 elements in 6 chunks of 128 rows
LOSS_SHAPE = (700, 97)
N_PARAMS = 200003


@pytest.fixture(autouse=True)
def _restore_thread_setting():
    yield
    gd.set_num_threads(None)


def require_two_threads(work, per_thread, extra_cap=None):
    """Assert that a kernel of this much work runs on two threads when given two."""
    if not OPENMP:
        pytest.skip("serial build: every kernel runs on one thread")
    used = _openmp.threads_used(2, work, per_thread)
    if extra_cap is not None:
        used = min(used, extra_cap)
    assert used == 2, f"the test input ({work} units) is too small to use 2 threads"


def _inputs(dtype, seed=0):
    rng = np.random.default_rng(seed)
    U = rng.normal(0, 3, ACT_SHAPE).astype(dtype)
    U.reshape(-1)[::97] = 0.0
    return rng, U


# --- bitwise identical for 1 and 2 threads -----------------------------------------------

@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_is_bitwise_identical_for_1_and_2_threads(name, dtype):
    require_two_threads(ACT_SHAPE[0] * ACT_SHAPE[1], ELEMENTWISE,
                        ACT_SHAPE[0] if name == "softmax" else None)
    rng, U = _inputs(dtype)
    Y1 = K.activation(name, U, n_threads=1)
    Y2 = K.activation(name, U, n_threads=2)
    assert_bitwise(Y1, Y2, f"{name} forward")
    np.testing.assert_allclose(Y1, R.activation(name, U),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)
    dY = rng.normal(size=ACT_SHAPE).astype(dtype)
    D1 = K.activation_backward(name, Y1, dY, n_threads=1)
    D2 = K.activation_backward(name, Y1, dY, n_threads=2)
    assert_bitwise(D1, D2, f"{name} backward")


LOSS_CASES = [("squared_error", "rows"), ("mse", "rows"), ("cross_entropy", "labels"),
              ("cross_entropy", "one-hot"), ("cross_entropy", "soft"),
              ("binary_cross_entropy", "rows")]


def _loss_inputs(name, targets, shape, dtype, seed=1):
    rng = np.random.default_rng(seed)
    output = {"squared_error": "identity", "mse": "identity", "cross_entropy": "softmax",
              "binary_cross_entropy": "sigmoid"}[name]
    Y = R.activation(output, rng.normal(0, 2, shape).astype(dtype))
    if targets == "labels":
        T = rng.integers(0, shape[1], shape[0])
    elif targets == "one-hot":
        T = np.eye(shape[1], dtype=dtype)[rng.integers(0, shape[1], shape[0])]
    elif targets == "soft":
        T = rng.dirichlet(np.ones(shape[1]), shape[0]).astype(dtype)
    elif name == "binary_cross_entropy":
        T = rng.uniform(0, 1, shape).astype(dtype)
    else:
        T = rng.normal(size=shape).astype(dtype)
    return Y, T


@pytest.mark.parametrize("shape", [LOSS_SHAPE, (40000, 2)], ids=str)
@pytest.mark.parametrize("name, targets", LOSS_CASES)
def test_loss_and_delta_are_bitwise_identical_for_1_and_2_threads(name, targets, shape, dtype):
    n_chunks = -(-shape[0] // max(128, -(-shape[0] // 256)))
    require_two_threads(shape[0] * shape[1], ELEMENTWISE, n_chunks)
    Y, T = _loss_inputs(name, targets, shape, dtype)
    v1, D1 = K.loss_delta(name, Y, T, n_threads=1)
    v2, D2 = K.loss_delta(name, Y, T, n_threads=2)
    assert_bitwise(D1, D2, "delta")
    # fixed chunks summed in a fixed order: the same float for any thread count
    assert v1 == v2 and np.float64(v1).tobytes() == np.float64(v2).tobytes()
    assert K.loss(name, Y, T, n_threads=2) == v1
    assert v1 == pytest.approx(R.loss(name, Y, T), rel=1e-12)


OPT_CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)),
    ("adadelta", dict(weight_decay=0.01)),
    ("rmsprop", dict()),
    ("rmsprop", dict(momentum=0.9, centered=True, weight_decay=0.01)),
    ("adam", dict(weight_decay=0.1)),
    ("adam", dict(amsgrad=True)),
    ("adamw", dict(amsgrad=True, weight_decay=0.1)),
]
STATE_OPTIONS = ("momentum", "centered", "amsgrad", "initial_accumulator_value")


def _run_optimizer(name, options, dtype, n_threads, n=N_PARAMS, n_steps=5, seed=2):
    rng = np.random.default_rng(seed)
    state_kw = {k: v for k, v in options.items() if k in STATE_OPTIONS}
    update_kw = {k: v for k, v in options.items() if k != "initial_accumulator_value"}
    params = rng.normal(size=n).astype(dtype)
    state = K.optimizer_state(name, params, **state_kw)
    update = getattr(K, f"{name}_update")
    for step in range(1, n_steps + 1):
        g = (rng.normal(size=n) * (0.1 if step % 2 else 2.0)).astype(dtype)
        kw = dict(update_kw, step=step) if name in ("sgd", "adagrad", "adam", "adamw") \
            else dict(update_kw)
        update(params, g, **state, **kw, n_threads=n_threads)
    return params, state


@pytest.mark.parametrize("name, options", OPT_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPT_CASES)])
def test_optimizer_is_bitwise_identical_for_1_and_2_threads(name, options, dtype):
    require_two_threads(N_PARAMS, OPTIMIZER)
    p1, s1 = _run_optimizer(name, options, dtype, 1)
    p2, s2 = _run_optimizer(name, options, dtype, 2)
    assert_bitwise(p1, p2, "params")
    for key in s1:
        assert_bitwise(s1[key], s2[key], key)


def _layer(dtype, shape=LAYER, seed=3):
    return dense_layer_inputs(shape, dtype, seed)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_bias_gradient_and_delta_are_bitwise_identical_for_1_and_2_threads(name, dtype):
    n_samples, n_in, n_out = LAYER
    require_two_threads(n_samples * n_out, ELEMENTWISE, -(-n_out // 64))
    X, W, b, dY = _layer(dtype)
    Y = K.dense_forward(X, W, b, name, n_threads=1)
    outs = []
    for n_threads in (1, 2):
        delta = np.full_like(dY, np.nan)
        dX, dW, db = K.dense_backward(X, W, Y, dY, name, delta_out=delta, n_threads=n_threads)
        outs.append((dX, dW, db, delta))
    assert_bitwise(outs[0][2], outs[1][2], "db")
    if name != "identity":
        assert_bitwise(outs[0][3], outs[1][3], "delta_out")


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_gemm_outputs_agree_for_1_and_2_threads(name, dtype):
    """GEMM outputs with 1 and 2 threads agree to rounding, not bitwise.

    Measured here (SciPy's OpenBLAS 0.3.30, AVX-512): with the row-split design,
    float64 forward outputs happened to be bitwise equal, float32 ones were not for
    some shapes (600x129x131 equal, 300x257x130 not), and dW, whose threads multiply
    column blocks of X^T, differed in both dtypes: OpenBLAS's rounding depends on the
    sizes of the blocks it is given.  So only closeness is asserted.
    """
    n_samples, n_in, n_out = LAYER
    require_two_threads(n_samples * n_in * n_out, GEMM)
    X, W, b, dY = _layer(dtype)
    Y1 = K.dense_forward(X, W, b, name, n_threads=1)
    Y2 = K.dense_forward(X, W, b, name, n_threads=2)
    np.testing.assert_allclose(Y2, Y1, **gemm_tol(dtype, n_in))
    g1 = K.dense_backward(X, W, Y1, dY, name, n_threads=1)
    g2 = K.dense_backward(X, W, Y1, dY, name, n_threads=2)
    np.testing.assert_allclose(g2[0], g1[0], **gemm_tol(dtype, n_out))     # dX
    np.testing.assert_allclose(g2[1], g1[1], **gemm_tol(dtype, n_samples))  # dW
    # and both agree with the reference
    np.testing.assert_allclose(Y2, R.dense_forward(X, W, b, name), **gemm_tol(dtype, n_in))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_wide_layer_splits_columns_and_agrees_with_one_thread(name, dtype):
    """A layer with more outputs than rows splits Y by columns on two threads (softmax,
    which needs whole rows, still by rows): every element, bias and activation
    included, agrees with one thread and with the reference; run after run the bits
    repeat; X and W are left untouched."""
    shape = (40, 300, 701)                     # 8.4M multiply-adds: two threads
    require_two_threads(shape[0] * shape[1] * shape[2], GEMM)
    X, W, b, _ = _layer(dtype, shape=shape, seed=11)
    X0, W0 = X.copy(), W.copy()
    Y1 = K.dense_forward(X, W, b, name, n_threads=1)
    Y2 = K.dense_forward(X, W, b, name, n_threads=2)
    np.testing.assert_allclose(Y2, Y1, **gemm_tol(dtype, shape[1]))
    np.testing.assert_allclose(Y2, R.dense_forward(X, W, b, name), **gemm_tol(dtype, shape[1]))
    assert_bitwise(K.dense_forward(X, W, b, name, n_threads=2), Y2, "repeat")
    assert_bitwise(X, X0, "X")
    assert_bitwise(W, W0, "W")


# --- the thread setting ------------------------------------------------------------------

def _thread_sensitive_layer():
    """A float32 layer whose forward output, through OpenBLAS, happens to depend on the
    row split: it tells which thread count a call used.  (Other BLAS builds may give
    equal bits; the tests below then still hold, with less power.)"""
    return _layer(np.float32, shape=(300, 257, 130), seed=5)


def test_n_threads_none_uses_the_library_setting():
    assert _openmp.resolve(None) == gd.get_num_threads()
    X, W, b, dY = _thread_sensitive_layer()
    work = X.shape[0] * X.shape[1] * W.shape[1]
    if OPENMP:
        assert _openmp.threads_used(2, work, GEMM) == 2
    by_count = {n: K.dense_forward(X, W, b, "identity", n_threads=n) for n in (1, 2)}
    for n in (1, 2):
        gd.set_num_threads(n)
        assert gd.get_num_threads() == n
        assert_bitwise(K.dense_forward(X, W, b, "identity"), by_count[n],
                       f"n_threads=None after set_num_threads({n})")
    gd.set_num_threads(None)
    default = gd.get_num_threads()
    assert default == max(1, _openmp.max_threads())
    expected = by_count[min(default, 2)] if default <= 2 else None
    if expected is not None:
        assert_bitwise(K.dense_forward(X, W, b, "identity"), expected, "default threads")


def test_set_num_threads_1_gives_the_results_of_n_threads_1(dtype):
    X, W, b, dY = _layer(dtype)
    rng, U = _inputs(dtype)
    Y_ref = K.dense_forward(X, W, b, "tanh", n_threads=1)
    g_ref = K.dense_backward(X, W, Y_ref, dY, "tanh", n_threads=1)
    act_ref = K.activation("sigmoid", U, n_threads=1)
    loss_ref = K.loss_delta("squared_error", Y_ref, dY, n_threads=1)
    p_ref, s_ref = _run_optimizer("adam", dict(amsgrad=True), dtype, 1, n_steps=2)
    gd.set_num_threads(1)
    Y = K.dense_forward(X, W, b, "tanh")
    assert_bitwise(Y, Y_ref, "dense_forward")
    for got, want in zip(K.dense_backward(X, W, Y, dY, "tanh"), g_ref):
        assert_bitwise(got, want, "dense_backward")
    assert_bitwise(K.activation("sigmoid", U), act_ref, "activation")
    value, D = K.loss_delta("squared_error", Y, dY)
    assert value == loss_ref[0]
    assert_bitwise(D, loss_ref[1], "loss_delta")
    p, s = _run_optimizer("adam", dict(amsgrad=True), dtype, None, n_steps=2)
    assert_bitwise(p, p_ref, "adam params")
    for key in s:
        assert_bitwise(s[key], s_ref[key], key)


def _kernel_calls():
    X = np.ones((4, 3))
    W = np.ones((3, 2))
    Y = np.full((4, 2), 0.5)
    p = np.ones(5)
    g = np.ones(5)
    z = lambda: np.zeros(5)  # noqa: E731
    return {
        "activation": lambda nt: K.activation("tanh", X, n_threads=nt),
        "activation_backward": lambda nt: K.activation_backward("tanh", Y, Y, n_threads=nt),
        "dense_forward": lambda nt: K.dense_forward(X, W, None, "relu", n_threads=nt),
        "dense_backward": lambda nt: K.dense_backward(X, W, Y, Y, "relu", n_threads=nt),
        "loss": lambda nt: K.loss("mse", Y, Y, n_threads=nt),
        "loss_delta": lambda nt: K.loss_delta("cross_entropy", Y, np.array([0, 1, 1, 0]),
                                              n_threads=nt),
        "sgd_update": lambda nt: K.sgd_update(p, g, step=1, n_threads=nt),
        "adagrad_update": lambda nt: K.adagrad_update(p, g, z(), step=1, n_threads=nt),
        "adadelta_update": lambda nt: K.adadelta_update(p, g, z(), z(), n_threads=nt),
        "rmsprop_update": lambda nt: K.rmsprop_update(p, g, z(), n_threads=nt),
        "adam_update": lambda nt: K.adam_update(p, g, z(), z(), step=1, n_threads=nt),
        "adamw_update": lambda nt: K.adamw_update(p, g, z(), z(), step=1, n_threads=nt),
    }


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                      ("2", TypeError), (2.0, TypeError)])
@pytest.mark.parametrize("kernel", sorted(_kernel_calls()))
def test_bad_n_threads_raises_naming_it(kernel, bad, exc):
    call = _kernel_calls()[kernel]
    call(1)                                   # the call itself is valid
    with pytest.raises(exc, match=r"\bn_threads\b"):
        call(bad)


# --- fork -------------------------------------------------------------------------------

def _fork_workload(dtype):
    rng = np.random.default_rng(11)
    X, W, b, dY = _layer(dtype)
    U = rng.normal(0, 3, ACT_SHAPE).astype(dtype)
    grads = [rng.normal(size=N_PARAMS).astype(dtype) for _ in range(3)]
    return X, W, b, dY, U, grads


def _run_fork_workload(dtype, n_threads):
    X, W, b, dY, U, grads = _fork_workload(dtype)
    Y = K.dense_forward(X, W, b, "tanh", n_threads=n_threads)
    dX, dW, db = K.dense_backward(X, W, Y, dY, "tanh", n_threads=n_threads)
    S = K.activation("sigmoid", U, n_threads=n_threads)
    value, D = K.loss_delta("squared_error", Y, dY, n_threads=n_threads)
    params = np.linspace(-1, 1, N_PARAMS).astype(dtype)
    state = K.optimizer_state("adam", params, amsgrad=True)
    for step, g in enumerate(grads, start=1):
        K.adam_update(params, g, **state, step=step, amsgrad=True, n_threads=n_threads)
    return dict(Y=Y, dX=dX, dW=dW, db=db, S=S, value=np.float64(value), D=D, params=params,
                **state)


def _fork_child(queue, dtype):
    try:
        results = _run_fork_workload(dtype, n_threads=2)
        queue.put(("ok", gd.get_num_threads(), _openmp.in_forked_child(), results))
    except BaseException as exc:     # report instead of dying silently
        queue.put(("error", repr(exc), None, None))


def test_forked_child_runs_kernels_after_the_parent_used_threads():
    if not OPENMP:
        pytest.skip("serial build: no OpenMP thread pool to inherit")
    dtype = np.float32
    parent2 = _run_fork_workload(dtype, n_threads=2)   # the parent's OpenMP pool exists
    parent1 = _run_fork_workload(dtype, n_threads=1)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_fork_child, args=(queue, dtype))
    child.start()
    status, n, forked, results = None, "no result within 120 s", None, None
    try:
        status, n, forked, results = queue.get(timeout=120)
    except Exception:
        pass
    child.join(timeout=30)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("forked child hung running native kernels")
    assert status == "ok", f"child failed: {n}"
    assert child.exitcode == 0
    assert forked and n == 1
    # The child runs every kernel on one thread: its results are the parent's
    # single-thread results, bit for bit; the parent's 2-thread results bit for bit where
    # no GEMM is involved, and up to the GEMMs' rounding where one is (D and db are
    # computed from the layer's output Y).
    for key, want in parent1.items():
        assert_bitwise(np.asarray(results[key]), np.asarray(want), f"child {key}")
    for key in ("S", "params", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        assert_bitwise(np.asarray(results[key]), np.asarray(parent2[key]), f"child {key}")
    for key, k in (("Y", LAYER[1]), ("dX", LAYER[2]), ("dW", LAYER[0]), ("db", LAYER[0]),
                   ("D", 1), ("value", 1)):
        np.testing.assert_allclose(results[key], parent2[key], **gemm_tol(dtype, k))


# --- BLAS thread control -------------------------------------------------------------------

def _blas_threads():
    from threadpoolctl import threadpool_info
    return {p["filepath"]: p["num_threads"] for p in threadpool_info()
            if p["user_api"] == "blas"}


@pytest.mark.parametrize("limit", [None, 1, 2])
def test_blas_thread_count_is_restored_after_native_calls(limit):
    from threadpoolctl import threadpool_limits
    X, W, b, dY = _layer(np.float64)
    x1, dy1 = X[:1], dY[:1]            # one-row products go through gemv
    with threadpool_limits(limits=limit, user_api="blas"):
        before = _blas_threads()
        assert before, "threadpoolctl finds no BLAS library"
        for n_threads in (1, 2):
            Y = K.dense_forward(X, W, b, "relu", n_threads=n_threads)
            K.dense_backward(X, W, Y, dY, "relu", n_threads=n_threads)
            y1 = K.dense_forward(x1, W, None, "identity", n_threads=n_threads)
            K.dense_backward(x1, W, y1, dy1, "identity", n_threads=n_threads)
            assert _blas_threads() == before
        after = _blas_threads()
    assert after == before
    if limit is not None:
        assert all(n == limit for n in after.values())


def test_concurrent_calls_from_python_threads():
    """Kernels called from several Python threads at once (each with its own OpenMP
    team, all switching the same BLAS library to one thread and back) give the
    single-call results, and the BLAS setting is restored when the last one returns."""
    X, W, b, dY = _layer(np.float64)
    want_Y = K.dense_forward(X, W, b, "tanh", n_threads=1)
    want_g = K.dense_backward(X, W, want_Y, dY, "tanh", n_threads=1)
    rng, U = _inputs(np.float64)
    want_S = K.activation("sigmoid", U, n_threads=1)
    before = _blas_threads()
    errors = []

    def run(i):
        try:
            for _ in range(4):
                n_threads = 1 + i % 2
                Y = K.dense_forward(X, W, b, "tanh", n_threads=n_threads)
                np.testing.assert_allclose(Y, want_Y, **gemm_tol(np.float64, LAYER[1]))
                for got, want, k in zip(K.dense_backward(X, W, Y, dY, "tanh",
                                                         n_threads=n_threads),
                                        want_g, (LAYER[2], LAYER[0], LAYER[0])):
                    np.testing.assert_allclose(got, want, **gemm_tol(np.float64, k))
                assert_bitwise(K.activation("sigmoid", U, n_threads=n_threads), want_S,
                               "sigmoid")
        except BaseException as exc:   # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[0]
    assert _blas_threads() == before


# --- the GIL --------------------------------------------------------------------------------

def _ticks_during(call):
    """Run ``call`` in a worker thread while another Python thread ticks in a loop.

    Returns (duration of the call, its result, the ticks strictly inside the middle half
    of the call).  A call that holds the GIL leaves no tick there: the ticker can only
    run in the few milliseconds before the worker thread gets the GIL back and enters
    the call."""
    ticks, times = [], {}
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())

    def worker():
        times["start"] = time.perf_counter()
        times["result"] = call()
        times["end"] = time.perf_counter()

    tick_thread = threading.Thread(target=ticker, daemon=True)
    tick_thread.start()
    time.sleep(0.01)
    work = threading.Thread(target=worker)
    work.start()
    work.join(timeout=120)
    stop.set()
    tick_thread.join(timeout=10)
    assert not work.is_alive(), "the call did not finish"
    duration = times["end"] - times["start"]
    lo, hi = times["start"] + 0.25 * duration, times["end"] - 0.25 * duration
    return duration, times["result"], [t for t in ticks if lo < t < hi]


def test_gil_detector_sees_a_call_that_holds_the_gil():
    """Control for the test below: a 0.2 s C call made with the GIL held (ctypes.PyDLL
    does not release it) leaves no tick in the middle of the call."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    usleep = getattr(ctypes.PyDLL(name), "usleep", None) if name else None
    if usleep is None:
        pytest.skip("no C library with usleep to call")
    duration, _, inside = _ticks_during(lambda: usleep(200000))
    assert duration >= 0.15
    assert inside == []


def test_kernels_release_the_gil():
    """While one Python thread is inside a long dense_forward, another keeps running.

    The kernel runs on one OpenMP thread so that the ticking thread has a core; the size
    grows until the call lasts at least 0.1 s, so a fast machine does not make the test
    vacuous.  (The BLAS thread count during a call is checked in tests/test_blas.py; a
    thread polling OpenBLAS through threadpoolctl during the call made this test flaky.)"""
    rng = np.random.default_rng(0)
    n = 512
    for attempt in range(6):
        X = rng.uniform(-1, 1, (n, n))
        W = rng.uniform(-1, 1, (n, n))
        duration, Y, inside = _ticks_during(
            lambda: K.dense_forward(X, W, None, "tanh", n_threads=1))
        if duration < 0.1 and attempt < 5:
            n = int(n * 1.5)
            continue
        assert len(inside) > 0, (
            f"no Python thread ran during the middle of a {duration:.3f} s dense_forward "
            f"of {n} x {n} matrices: the kernel holds the GIL")
        np.testing.assert_allclose(Y, np.tanh(X @ W), rtol=1e-10, atol=1e-12)
        return


def test_threaded_optimizer_ranges_never_collide_under_load():
    """Regression: each thread must update exactly its own range.  The thread ranges
    were once computed into shared variables, so under scheduling pressure a thread
    could take the other's range (half the buffer updated twice, half not at all).
    Repeat the 2-thread steps many times while a busy thread competes for the cores."""
    import threading

    if not gd._openmp.openmp_enabled():
        pytest.skip("serial build")
    stop = threading.Event()
    A = np.random.default_rng(1).standard_normal((512, 512)).astype(np.float32)
    B = np.empty_like(A)

    def burn():            # native work without the GIL: a core kept busy
        while not stop.is_set():
            K.activation("tanh", A, out=B, n_threads=1)

    burner = threading.Thread(target=burn, daemon=True)
    burner.start()
    try:
        rng = np.random.default_rng(0)
        n = 200_003
        p = rng.standard_normal(n).astype(np.float32)
        g = rng.standard_normal(n).astype(np.float32)
        for name, state_kw, kw in [("adam", {"amsgrad": True}, {"amsgrad": True, "step": 1}),
                                   ("sgd", {"momentum": 0.9}, {"momentum": 0.9, "step": 2}),
                                   ("rmsprop", {"centered": True}, {"centered": True})]:
            update = getattr(K, f"{name}_update")
            for _ in range(50):
                results = []
                for nt in (1, 2):
                    q = p.copy()
                    state = K.optimizer_state(name, q, **state_kw)
                    update(q, g, **state, **kw, n_threads=nt)
                    results.append((q, state))
                np.testing.assert_array_equal(results[1][0], results[0][0], err_msg=name)
                for key in results[0][1]:
                    np.testing.assert_array_equal(results[1][1][key], results[0][1][key])
    finally:
        stop.set()
        burner.join()
