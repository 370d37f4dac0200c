"""The native training step on two threads, at sizes where it really splits its work.

The step runs on one thread unless its largest layer GEMM (batch x n_in x n_out
multiply-adds) gives every thread at least ``step_gemm_min_per_thread`` of work (see
net_step); each layer then splits again by its own size, from
``step_layer_min_per_thread`` per thread.  Every case here is checked
to be above that rule first, so a change of the thresholds cannot quietly turn these
into 1-thread tests.  Results are compared with the NumPy reference backend, and the
2-thread step is checked to be bitwise reproducible run after run.
"""
import numpy as np
import pytest

import gdcore as gd
from gdcore import _openmp, optim
from gdcore.kernels import THRESHOLDS

pytestmark = pytest.mark.skipif(not _openmp.openmp_enabled(),
                                reason="built without OpenMP: every step is serial")

GEMM_MIN = THRESHOLDS["step_gemm_min_per_thread"]
LAYER_MIN = THRESHOLDS["step_layer_min_per_thread"]


def layer_threads(batch, n_in, n_out, n_threads, with_dx=True):
    """Threads of a layer's forward GEMM and of its backward GEMMs, by the rule of
    dense_forward_core / dense_backward_core (capped by the rows they can split)."""
    forward = min(_openmp.threads_used(n_threads, batch * n_in * n_out, LAYER_MIN), batch)
    work = batch * n_in * n_out * (2 if with_dx else 1)
    backward = min(_openmp.threads_used(n_threads, work, LAYER_MIN), max(n_in, batch))
    return forward, backward


def step_runs_threaded(sizes, batch, n_threads):
    largest = max(batch * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return _openmp.threads_used(n_threads, largest, GEMM_MIN) == n_threads


def _pair(sizes, activation, dtype, seed=3):
    kw = dict(activation=activation, output="softmax", loss="cross_entropy",
              dtype=dtype, seed=seed)
    return gd.MLP(sizes, backend="native", **kw), gd.MLP(sizes, backend="reference", **kw)


# (sizes, batch): every layer of the first splits its forward rows and its backward
# GEMMs; odd sizes make the blocks uneven; batch 1 splits only dW's rows (forward has
# one row to split)
CASES = [
    ([301, 300, 290, 7], 97),
    ([784, 256, 128, 10], 64),
    ([2900, 1501, 3], 2),
]


@pytest.mark.parametrize("sizes, batch", CASES, ids=lambda c: str(c))
def test_cases_really_split_on_two_threads(sizes, batch):
    assert step_runs_threaded(sizes, batch, 2)
    forward, backward = layer_threads(batch, sizes[0], sizes[1], 2, with_dx=False)
    assert backward == 2
    assert forward == (2 if batch > 1 else forward)


def test_first_case_splits_every_hidden_layer():
    sizes, batch = CASES[0]
    for l in range(len(sizes) - 2):
        assert layer_threads(batch, sizes[l], sizes[l + 1], 2, with_dx=l > 0) == (2, 2)


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
@pytest.mark.parametrize("sizes, batch", CASES[:2], ids=lambda c: str(c))
def test_two_thread_step_matches_reference(sizes, batch, opt_name, dtype):
    native, ref = _pair(sizes, "tanh", dtype)
    kwargs = {"lr": 0.01, "momentum": 0.9} if opt_name == "SGD" else {"lr": 1e-3}
    opt_n, opt_r = getattr(optim, opt_name)(**kwargs), getattr(optim, opt_name)(**kwargs)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    T = rng.integers(0, sizes[-1], batch)
    for _ in range(3):
        loss_n = native.train_step(X, T, opt_n, l2=1e-3, n_threads=2)
        loss_r = ref.train_step(X, T, opt_r, l2=1e-3)
        rtol = 1e-4 if dtype == np.float32 else 1e-10
        assert loss_n == pytest.approx(loss_r, rel=rtol)
    np.testing.assert_allclose(native.params, ref.params, rtol=rtol, atol=rtol)
    for key in opt_n.state:
        np.testing.assert_allclose(opt_n.state[key], opt_r.state[key], rtol=rtol,
                                   atol=rtol * 1e-2)


def test_two_thread_gradient_at_batch_1_wide_layer_matches_reference():
    sizes, batch = CASES[2]
    native, ref = _pair(sizes, "relu", "float64")
    X = np.random.default_rng(1).standard_normal((batch, sizes[0]))
    T = np.array([2, 0])
    loss_n, g_n = native.gradient(X, T, n_threads=2)
    loss_r, g_r = ref.gradient(X, T)
    assert loss_n == pytest.approx(loss_r, rel=1e-12)
    np.testing.assert_allclose(g_n, g_r, rtol=1e-10, atol=1e-13)
    # one sample: dW of the first layer is the outer product, split by its rows
    _, g_1 = native.gradient(X[:1], T[:1], n_threads=2)
    _, g_1r = ref.gradient(X[:1], T[:1])
    np.testing.assert_allclose(g_1, g_1r, rtol=1e-10, atol=1e-13)


def _run(sizes, batch, dtype, n_threads, steps=3, fit=False):
    net = gd.MLP(sizes, activation="relu", output="softmax", loss="cross_entropy",
                 dtype=dtype, seed=5, dropout=0.1)
    opt = optim.Adam(lr=1e-3)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((batch * 2, sizes[0])).astype(dtype)
    T = rng.integers(0, sizes[-1], batch * 2)
    losses = []
    if fit:
        gd.set_num_threads(n_threads)
        try:
            history = net.fit(X, T, epochs=2, batch_size=batch, optimizer=opt, seed=0)
        finally:
            gd.set_num_threads(None)
        losses = list(history.loss)
    else:
        for i in range(steps):
            rows = slice((i % 2) * batch, (i % 2 + 1) * batch)
            losses.append(net.train_step(X[rows], T[rows], opt, n_threads=n_threads))
    return net.params.copy(), losses, {k: v.copy() for k, v in opt.state.items()}


@pytest.mark.parametrize("fit", [False, True], ids=["train_step", "fit"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_step_is_bitwise_reproducible_for_a_fixed_thread_count(n_threads, fit, dtype):
    sizes, batch = CASES[0]
    first = _run(sizes, batch, dtype, n_threads, fit=fit)
    for _ in range(2):
        again = _run(sizes, batch, dtype, n_threads, fit=fit)
        assert again[1] == first[1]
        assert np.array_equal(again[0], first[0])
        for key in first[2]:
            assert np.array_equal(again[2][key], first[2][key])


def test_elementwise_parts_of_the_step_do_not_depend_on_the_thread_count(dtype):
    """With the GEMM outputs fixed, the delta, the bias gradient (a reduction over the
    batch) and the loss are the same bits on 1 and 2 threads."""
    from gdcore import kernels
    batch, n_in, n_out = 513, 97, 301        # above the elementwise split size
    rng = np.random.default_rng(2)
    X = rng.standard_normal((batch, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    Y = kernels.activation("sigmoid", rng.standard_normal((batch, n_out)).astype(dtype))
    dY = rng.standard_normal((batch, n_out)).astype(dtype)
    assert _openmp.threads_used(2, batch * n_out, THRESHOLDS["elementwise_min_per_thread"]) == 2
    one = kernels.dense_backward(X, W, Y, dY, "sigmoid", n_threads=1)
    two = kernels.dense_backward(X, W, Y, dY, "sigmoid", n_threads=2)
    assert np.array_equal(one[2], two[2])                       # db
    P = kernels.activation("softmax", dY)
    labels = rng.integers(0, n_out, batch)
    l1, d1 = kernels.loss_delta("cross_entropy", P, labels, n_threads=1)
    l2, d2 = kernels.loss_delta("cross_entropy", P, labels, n_threads=2)
    assert l1 == l2 and np.array_equal(d1, d2)


# ---- the stall guard: threaded steps that do not pay run solo, with the same bits ----

def _workspace(net, X, T, opt):
    net.train_step(X, T, opt, n_threads=2)
    return net._workspace


def test_solo_and_team_runs_of_the_same_blocks_give_the_same_bits(dtype):
    sizes, batch = CASES[0]
    rng = np.random.default_rng(7)
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    T = rng.integers(0, sizes[-1], batch)
    results = []
    for solo in (True, False):
        net = gd.MLP(sizes, activation="relu", dtype=dtype, seed=2)
        opt = optim.Adam(lr=1e-3)
        ws = _workspace(net, X, T, opt)
        losses = []
        for _ in range(4):
            ws.hold_solo(1000 if solo else 0)
            losses.append(net.train_step(X, T, opt, n_threads=2))
        if solo:     # (a team step may have been judged slow: hold_solo(0) resets it)
            assert ws.stall_guard()["solo_left"] == 999
        results.append((losses, net.params.copy(), opt.state["exp_avg"].copy()))
    assert results[0][0] == results[1][0]
    assert np.array_equal(results[0][1], results[1][1])
    assert np.array_equal(results[0][2], results[1][2])


def test_stall_guard_calibrates_then_backs_off_and_recovers():
    sizes, batch = CASES[0]
    net = gd.MLP(sizes, activation="relu", dtype="float32", seed=2)
    opt = optim.SGD(lr=0.01)
    X = np.random.default_rng(0).standard_normal((batch, sizes[0])).astype("float32")
    T = np.zeros(batch, dtype=np.int64)
    ws = _workspace(net, X, T, opt)
    state = ws.stall_guard()
    # the first steps of a batch size run solo to time it
    assert state["batch"] == batch and state["solo_ns"] > 0
    assert state["solo_left"] == 1
    net.train_step(X, T, opt, n_threads=2)
    assert ws.stall_guard()["solo_left"] == 0
    assert (ws.stall_guard()["solo_steps"], ws.stall_guard()["team_steps"]) == (2, 0)
    net.train_step(X, T, opt, n_threads=2)
    net.train_step(X, T, opt, n_threads=1)       # cannot be threaded: not counted
    counts = ws.stall_guard()
    assert counts["solo_steps"] + counts["team_steps"] == 3
    # the rule, on recorded timings (a fresh size, so the means are exactly these)
    batch += 1
    ws.record_step(batch, 1, 1_000_000)                     # solo: 1 ms
    assert ws.stall_guard()["solo_ns"] == 1_000_000
    ws.record_step(batch, 2, 600_000)                       # the team pays
    ws.record_step(batch, 2, 1_400_000)                     # one slow step: kept, the
    assert ws.stall_guard()["solo_left"] == 0               # mean is 0.8 ms
    assert ws.stall_guard()["team_ns"] == 800_000
    ws.record_step(batch, 2, 2_000_000)                     # a third: mean 1.1 ms, under
    #                                                         1.1 x solo + 50 us
    assert ws.stall_guard()["team_ns"] == 1_100_000 and ws.stall_guard()["solo_left"] == 0
    ws.record_step(batch, 2, 2_000_000)                     # mean 1.325 ms: solo
    assert ws.stall_guard()["solo_left"] == ws.stall_guard()["backoff"] == 8
    assert ws.stall_guard()["team_run"] == 0
    ws.hold_solo(0)
    ws.record_step(batch, 2, 3_500_000)                     # a stall (> 2 x solo + 1 ms)
    assert ws.stall_guard()["solo_left"] == ws.stall_guard()["backoff"] == 16
    batch -= 1                                              # the real size again
    net.train_step(X, T, opt, n_threads=2)                  # (new size: calibrates)
    for _ in range(2):
        net.train_step(X, T, opt, n_threads=2)
    ws.record_step(batch, 2, 10**10)                        # a stall
    assert ws.stall_guard()["solo_left"] == ws.stall_guard()["backoff"] == 8
    before = ws.stall_guard()
    for left in range(8, 0, -1):                            # the held steps run solo
        assert ws.stall_guard()["solo_left"] == left
        net.train_step(X, T, opt, n_threads=2)
    assert ws.stall_guard()["solo_left"] == 0
    assert ws.stall_guard()["solo_steps"] == before["solo_steps"] + 8
    assert ws.stall_guard()["team_steps"] == before["team_steps"]
    solo = ws.stall_guard()["solo_ns"]
    for _ in range(3):                                      # threaded steps that pay
        ws.record_step(batch, 2, int(solo // 2))
    assert ws.stall_guard()["backoff"] == 4 and ws.stall_guard()["solo_left"] == 0
    ws.record_step(batch + 1, 1, 5)                         # a new size starts afresh
    assert ws.stall_guard()["batch"] == batch + 1 and ws.stall_guard()["backoff"] == 0
    assert ws.stall_guard()["solo_ns"] == 5
    # a 1-thread step is never held or timed
    before = ws.stall_guard()
    net.train_step(X, T, opt, n_threads=1)
    assert ws.stall_guard() == before
