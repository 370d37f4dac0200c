"""Regression tests of the reliability review: memory safety of exposed buffers, thread
counts and C-overflowable arguments, all-or-nothing training state, divergence,
threads sharing a network."""
import threading
import warnings

import numpy as np
import pytest

import gdcore as gd
from gdcore import _config, _openmp
from gdcore import kernels as K


def _net_and_data(n=64, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6)).astype(np.float32)
    y = rng.integers(0, 3, n)
    return gd.MLP([6, 8, 3], seed=seed, **kwargs), X, y


def _training_state(net, opt):
    return (net.params.copy(), {k: b.copy() for k, b in opt.state.items()}, opt.step_count,
            net.epochs_trained, len(net.history), net._rng.bit_generator.state)


def _assert_state_equal(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1].keys() == b[1].keys()
    for key in a[1]:
        np.testing.assert_array_equal(a[1][key], b[1][key])
    assert a[2:] == b[2:]


# ---- 1. memory safety --------------------------------------------------------------

def test_optimizer_state_cannot_be_replaced():
    net, X, y = _net_and_data()
    opt = gd.optim.Adam()
    net.train_step(X, y, opt)
    with pytest.raises(TypeError):
        opt.state["exp_avg"] = np.zeros(3, np.float32)     # the review's segfault
    with pytest.raises(TypeError):
        del opt.state["exp_avg"]
    with pytest.raises(AttributeError):
        opt.state = {}
    assert opt.state["exp_avg"].shape == net.params.shape


@pytest.mark.parametrize("mutation", ["dtype", "shape", "readonly", "strided"])
def test_state_buffer_mutated_in_place_is_rejected_before_native_use(mutation):
    net, X, y = _net_and_data()
    opt = gd.optim.Adam()
    net.train_step(X, y, opt)
    buf = opt.state["exp_avg"]
    before = _training_state(net, opt)
    if mutation == "dtype":
        buf.dtype = np.int16                   # same bytes, twice the elements
    elif mutation == "shape":
        buf.shape = (1, buf.size)
    elif mutation == "readonly":
        buf.flags.writeable = False
    else:
        opt._state["exp_avg"] = np.zeros(2 * buf.size, np.float32)[::2]
        opt._plan = None
    with pytest.raises((ValueError, TypeError), match="state buffer|exp_avg"):
        net.train_step(X, y, opt)
    with pytest.raises((ValueError, TypeError)):
        opt.step(net.params, net.grads)
    if mutation == "dtype":
        buf.dtype = np.float32
    elif mutation == "shape":
        buf.shape = (buf.size,)
    if mutation != "strided":
        _assert_state_equal(before, _training_state(net, opt))


def test_params_and_grads_are_read_only_attributes():
    net, X, y = _net_and_data()
    buf = net.params
    for name in ("params", "grads"):
        with pytest.raises(AttributeError, match=r"\[\.\.\.\]"):
            setattr(net, name, np.zeros(net.n_params, np.float32))
    assert net.params is buf
    net.params[...] = 0.5                      # values may be written into the buffer
    assert np.all(net.layers[0].W == 0.5)
    opt = gd.optim.SGD(lr=0.1)
    net.train_step(X, y, opt)
    assert net.layers[0].W.base is not None and np.shares_memory(net.layers[0].W, net.params)
    assert not np.all(net.params == 0.5)


def test_float64_state_in_float32_optimizer_is_rejected():
    net, X, y = _net_and_data()
    opt = gd.optim.Adam()
    sd = {"optimizer": "Adam", "hyperparameters": {}, "step": 1,
          "state": {"exp_avg": np.zeros(net.n_params), "exp_avg_sq": np.zeros(net.n_params)}}
    opt.load_state_dict(sd)
    with pytest.raises(ValueError, match="dtype"):
        net.train_step(X, y, opt)
    assert opt.step_count == 1


# ---- 2. thread counts, overflow, complex -------------------------------------------

def test_thread_counts_are_clamped_to_usable_cpus():
    usable = _config.usable_cpus()
    assert _openmp.cpu_limit() == usable
    assert _openmp.resolve(2**16) == usable
    assert _openmp.resolve(usable + 1) == usable
    gd.set_num_threads(10_000)
    try:
        assert gd.get_num_threads() == usable
    finally:
        gd.set_num_threads(None)
    U = np.ones((20000, 50), np.float32)
    np.testing.assert_array_equal(K.activation("sigmoid", U, n_threads=2**16),
                                  K.activation("sigmoid", U, n_threads=1))


@pytest.mark.parametrize("bad", [0, -1, True, False, 2**16 + 1, 2**31, 2**63, 10**40,
                                 np.int64(-3), np.bool_(True)])
def test_bad_thread_counts_raise_value_error_naming_the_argument(bad):
    U = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="n_threads"):
        K.activation("sigmoid", U, n_threads=bad)
    with pytest.raises(ValueError, match="n_threads"):
        gd.optim.SGD().step(np.zeros(3), np.zeros(3), n_threads=bad)
    with pytest.raises(ValueError, match="n"):
        gd.set_num_threads(bad)


@pytest.mark.parametrize("name, make", [
    ("lr", lambda x: gd.optim.Adam(lr=x)),
    ("momentum", lambda x: gd.optim.SGD(momentum=x)),
    ("eps", lambda x: gd.optim.RMSprop(eps=x)),
    ("weight_decay", lambda x: gd.optim.Adagrad(weight_decay=x)),
    ("lr", lambda x: K.adam_update(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2),
                                   step=1, lr=x)),
    ("l2", lambda x: gd.MLP([2, 2]).train_step(np.zeros((1, 2), np.float32), [0],
                                               gd.optim.SGD(), l2=x)),
    ("tol", lambda x: gd.minimize(lambda v: v * v, 1.0, tol=x)),
])
def test_huge_hyperparameters_raise_value_error(name, make):
    for value in (10**400, -10**400):
        with pytest.raises(ValueError, match=name):
            make(value)


@pytest.mark.parametrize("step", [2**53 + 1, 2**63, 2**64, 10**30])
def test_huge_step_raises_value_error(step):
    with pytest.raises(ValueError, match="step"):
        K.adam_update(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), step=step)
    opt = gd.optim.Adam()
    with pytest.raises(ValueError, match="step"):
        opt.load_state_dict({"optimizer": "Adam", "hyperparameters": {}, "step": step,
                             "state": {"exp_avg": np.zeros(2), "exp_avg_sq": np.zeros(2)}})
    with pytest.raises(ValueError, match="step_count"):
        opt.step_count = step


def test_huge_seeds_raise_value_error():
    net, X, y = _net_and_data()
    with pytest.raises(ValueError, match="seed"):
        net.fit(X, y, epochs=1, seed=2**64, progress=False)
    assert net.epochs_trained == 0


@pytest.mark.parametrize("call", [
    lambda c: K.activation("relu", c),
    lambda c: K.loss("mse", c, c),
    lambda c: K.dense_forward(c, c, None, "identity"),
    lambda c: gd.optim.SGD().step(c[0], c[0].real),
    lambda c: gd.MLP([2, 2]).forward(c),
    lambda c: gd.minimize(lambda v: float(np.sum(v * v)), c[0]),
    lambda c: gd.numerical_gradient(lambda v: 0.0, c[0]),
    lambda c: gd.linear_regression(c, c[:, 0]),
    lambda c: gd.MLP([2, 2], loss="mse", output="identity").fit(c.real.astype(np.float32),
                                                                 c, progress=False),
])
def test_complex_inputs_raise_type_error(call):
    c = np.ones((3, 2), np.complex128) * (1 + 1j)
    with pytest.raises(TypeError):
        call(c)


def test_complex_hyperparameter_raises_type_error():
    with pytest.raises(TypeError, match="lr"):
        gd.optim.SGD(lr=1 + 0j)


# ---- 4. all-or-nothing -------------------------------------------------------------

@pytest.mark.parametrize("label_dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8,
                                         np.uint16, np.uint32, np.uint64])
def test_bad_label_in_a_later_batch_changes_nothing(label_dtype):
    net, X, y = _net_and_data(n=200)
    y = y.astype(label_dtype)
    y[-1] = 3                                  # out of range, in the last batch
    opt = gd.optim.Adam()
    net.fit(X[:32], y[:32], epochs=1, batch_size=8, optimizer=opt, progress=False)
    before = _training_state(net, opt)
    with pytest.raises(ValueError, match="label 3"):
        net.fit(X, y, epochs=2, batch_size=8, optimizer=opt, progress=False)
    _assert_state_equal(before, _training_state(net, opt))
    with pytest.raises(ValueError, match="label"):
        net.partial_fit(X, y, optimizer=opt)
    with pytest.raises(ValueError, match="label"):
        net.train_step(X, y.astype(np.int64), opt)
    _assert_state_equal(before, _training_state(net, opt))


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("where", ["X", "T"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_train_step_rejects_non_finite_inputs(backend, where, value, dtype):
    rng = np.random.default_rng(0)
    net = gd.MLP([5, 7, 2], output="identity", loss="squared_error", dtype=dtype,
                 backend=backend, dropout=0.2, seed=0)
    X = rng.standard_normal((9, 5)).astype(dtype)
    T = rng.standard_normal((9, 2)).astype(dtype)
    opt = gd.optim.Adam()
    net.train_step(X, T, opt)
    before = _training_state(net, opt)
    Xp, Tp = X.copy(), T.copy()
    (Xp if where == "X" else Tp)[4, 1] = value
    for _ in range(2):                         # the second call takes the fast path
        with pytest.raises(ValueError, match=f"{where} contains NaN or infinity"):
            net.train_step(Xp, Tp, opt)
        with pytest.raises(ValueError, match="NaN or infinity"):
            net.partial_fit(Xp, Tp, optimizer=opt)
        _assert_state_equal(before, _training_state(net, opt))


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_train_step_rejects_an_empty_batch(backend):
    net, X, y = _net_and_data(backend=backend)
    opt = gd.optim.Adam()
    with pytest.raises(ValueError, match="no samples"):
        net.train_step(X[:0], y[:0], opt)
    assert opt.step_count == 0 and dict(opt.state) == {}
    net.train_step(X, y, opt)
    before = _training_state(net, opt)
    with pytest.raises(ValueError, match="no samples"):
        net.train_step(X[:0], y[:0], opt)
    _assert_state_equal(before, _training_state(net, opt))


def test_fit_divergence_restores_the_last_finite_epoch():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4)).astype(np.float32)
    T = (X @ rng.standard_normal((4, 1)) * 100).astype(np.float32)
    net = gd.MLP([4, 16, 1], output="identity", loss="squared_error", seed=0)
    opt = gd.optim.SGD(lr=0.02)
    twin = gd.MLP([4, 16, 1], output="identity", loss="squared_error", seed=0)
    twin_opt = gd.optim.SGD(lr=0.02)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = net.fit(X, T, epochs=40, batch_size=16, optimizer=opt, progress=False)
    assert history.stop_reason == "diverged" and history.stopped_early
    assert [str(w.message) for w in caught if "lr=0.02" in str(w.message)]
    good = len(history)
    assert net.epochs_trained == good and opt.step_count == 4 * good
    assert np.isfinite(net.params).all() and all(np.isfinite(history.loss))
    # exactly the state of an uninterrupted run of the finite epochs
    twin.fit(X, T, epochs=good, batch_size=16, optimizer=twin_opt, progress=False)
    np.testing.assert_array_equal(net.params, twin.params)
    assert net._rng.bit_generator.state == twin._rng.bit_generator.state


def test_softmax_divergence_is_detected():
    # the review: NaN parameters read as loss 87.34 forever
    net, X, y = _net_and_data()
    X = X * 1e3
    with pytest.warns(RuntimeWarning, match="lr="):
        h = net.fit(X, y, epochs=30, optimizer=gd.optim.SGD(lr=1e4), progress=False)
    assert h.stop_reason == "diverged" and np.isfinite(net.params).all()


def test_minimize_reports_divergence():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = gd.minimize(lambda x: x**2, 5.0, lr=1.5, tol=0.1)
        assert not r.converged and r.message.startswith("diverged")
        r = gd.minimize(lambda x: x**2, 5.0, grad=lambda x: 2 * x, lr=1.5, tol=0.1)
        assert not r.converged and r.message.startswith("diverged")
        r = gd.minimize(lambda x: np.sum(x**2), np.ones(3), lr=1.5, tol=0.1)
        assert not r.converged and r.message.startswith("diverged")
        X = np.random.default_rng(0).standard_normal((50, 3))
        res = gd.linear_regression(X, X @ [1.0, 2.0, 3.0] + 1, method="gd", lr=10)
        assert not res.converged and res.message.startswith("diverged")


def test_numerical_gradient_step_scales_with_x():
    for x in (1e11, -2.4e11, 1e200):
        g = gd.numerical_gradient(lambda v: v * v if abs(v) < 1e150 else v, x)
        expected = 2 * x if abs(x) < 1e150 else 1.0
        assert g == pytest.approx(expected, rel=1e-6)


# ---- 6. threads ------------------------------------------------------------------------

def test_one_net_from_two_threads_raises_runtime_error():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4096, 256)).astype(np.float32)
    y = rng.integers(0, 10, 4096)
    net = gd.MLP([256, 256, 10], seed=0)
    opt = gd.optim.Adam()
    errors, started = [], threading.Event()

    def long_fit():
        started.set()
        net.fit(X, y, epochs=3, batch_size=64, optimizer=opt, progress=False)

    worker = threading.Thread(target=long_fit)
    worker.start()
    started.wait()
    deadline = 200
    while deadline and "busy" not in net.__dict__.get("_marks", {}):
        deadline -= 1
        threading.Event().wait(0.005)
    for call in (lambda: net.train_step(X[:8], y[:8], opt),
                 lambda: net.fit(X, y, epochs=1, progress=False),
                 lambda: net.train_step(X[:8], y[:8], gd.optim.Adam()),
                 lambda: opt.step(np.zeros(3, np.float32), np.zeros(3, np.float32)),
                 lambda: opt.set_clipping(clip_norm=1.0),
                 lambda: opt.set_param_groups([{"layers": [0], "frozen": True}])):
        try:
            call()
        except RuntimeError as err:
            errors.append(str(err))
    worker.join()
    assert len(errors) == 6 and all("another thread" in e for e in errors)
    assert net.epochs_trained == 3 and opt.step_count == 3 * 64
    assert opt.clipping["clip_norm"] is None and opt.param_groups == []


def test_a_copy_made_while_busy_is_free_and_trains_like_the_original():
    """The busy marks are not state: a network or optimizer copied or pickled while a
    call holds it (another thread's fit) comes out idle, and continues bitwise."""
    import copy
    import pickle
    rng = np.random.default_rng(2)
    X = rng.standard_normal((64, 8)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    net, opt = gd.MLP([8, 16, 3], seed=0), gd.optim.Adam()
    net.train_step(X, y, opt)
    with gd.optim.exclusive(net, "this network"), gd.optim.exclusive(opt, "this optimizer"):
        with pytest.raises(RuntimeError, match="another thread"):
            net.train_step(X, y, opt)
        copies = [copy.deepcopy((net, opt)), pickle.loads(pickle.dumps((net, opt)))]
    runs = []
    for net_c, opt_c in [(net, opt)] + copies:
        loss = net_c.train_step(X, y, opt_c)
        net_c.fit(X, y, epochs=1, optimizer=opt_c, progress=False)   # fit takes it too
        runs.append((loss, net_c.params.copy(), opt_c.step_count))
    for loss, params, steps in runs[1:]:
        assert loss == runs[0][0] and steps == runs[0][2]
        np.testing.assert_array_equal(params, runs[0][1])


def test_different_nets_in_threads_equal_serial_runs():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((512, 32)).astype(np.float32)
    y = rng.integers(0, 4, 512)

    def train(seed):
        net = gd.MLP([32, 64, 4], seed=seed)
        net.fit(X, y, epochs=3, batch_size=32, optimizer=gd.optim.Adam(), progress=False,
                n_threads=1)
        return net.params

    serial = [train(s) for s in range(4)]
    results = [None] * 4
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, train(s)))
               for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(serial, results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("T", [np.float32(1.0), np.array(1.0, np.float32), np.array(2),
                               np.zeros((4, 3, 1), np.float32)])
def test_train_step_fast_path_rejects_odd_dimensional_targets(T):
    # found by the fuzzer: a 0-d T reached PyArray_DIM(T, 0) in the fast path (segfault)
    net, X, y = _net_and_data(n=4)
    opt = gd.optim.Adam()
    net.train_step(X, y, opt)                  # the workspace exists: the fast path runs
    before = _training_state(net, opt)
    with pytest.raises((ValueError, TypeError)):
        net.train_step(X, np.asarray(T), opt)
    _assert_state_equal(before, _training_state(net, opt))
