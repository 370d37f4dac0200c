"""Gradient clipping and parameter groups: the kernels against their twins and hand
computations, the fused network step against the NumPy step and against separate
optimizers on separate buffers, with schedules, checkpoints and bad input."""
import math

import numpy as np
import pytest

import gdcore as gd
import gdcore.kernels as K
import gdcore.reference as R
from gdcore import _constants

INF = math.inf
# 1 element, odd, one block, several blocks; 300001 splits over 2 threads
SIZES = [0, 1, 7, 4097, 300001]
NORMS = [2.0, 1.0, INF, 3.0]


def _grads(n, dtype, rng, scale=3.0):
    return (scale * rng.standard_normal(n)).astype(dtype)


# ---- kernels ------------------------------------------------------------------------

@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("norm_type", NORMS)
def test_clip_grad_norm_native_equals_twin_bitwise(n, norm_type, dtype, rng):
    g = _grads(n, dtype, rng)
    threads = (1, 2) if n > 2 * _constants.OPTIMIZER_MIN_PER_THREAD else (1,)
    expected = g.copy()
    total = R.clip_grad_norm(expected, 1.0, norm_type=norm_type)
    for nt in threads:
        got = g.copy()
        assert K.clip_grad_norm(got, 1.0, norm_type=norm_type, n_threads=nt) == total
        np.testing.assert_array_equal(got, expected)
    if n:
        ref = np.linalg.norm(g.astype(np.float64), norm_type)
        assert total == pytest.approx(ref, rel=1e-12)
        assert np.linalg.norm(expected.astype(np.float64), norm_type) <= 1.0 + 1e-5
    else:
        assert total == 0.0


def test_clip_grad_norm_by_hand(dtype):
    g = np.array([3.0, -4.0], dtype=dtype)
    assert K.clip_grad_norm(g, 1.0) == 5.0
    coef = (dtype.type(1) / (dtype.type(5) + dtype.type(1e-6))) * dtype.type(1)
    np.testing.assert_array_equal(g, np.array([3.0, -4.0], dtype=dtype) * coef)
    # below the bound: untouched (the factor clamps at 1)
    g = np.array([0.3, -0.4], dtype=dtype)
    assert K.clip_grad_norm(g, 1.0, norm_type=INF) == pytest.approx(0.4)
    np.testing.assert_array_equal(g, np.array([0.3, -0.4], dtype=dtype))


@pytest.mark.parametrize("kernels", [K, R], ids=["native", "reference"])
def test_clip_grad_norm_nonfinite_as_torch(kernels, dtype):
    g = np.array([1.0, np.nan, 2.0], dtype=dtype)
    assert math.isnan(kernels.clip_grad_norm(g, 1.0))
    assert np.isnan(g).all()
    g = np.array([1.0, np.inf, -2.0], dtype=dtype)
    assert kernels.clip_grad_norm(g, 1.0) == INF
    np.testing.assert_array_equal(g, np.array([0.0, np.nan, -0.0], dtype=dtype))


@pytest.mark.parametrize("kernels", [K, R], ids=["native", "reference"])
def test_clip_grad_value_by_hand(kernels, dtype):
    g = np.array([-2.0, 0.5, 3.0, np.nan, -0.25], dtype=dtype)
    assert kernels.clip_grad_value(g, 1.0) is g
    np.testing.assert_array_equal(g, np.array([-1.0, 0.5, 1.0, np.nan, -0.25], dtype=dtype))


@pytest.mark.parametrize("n", SIZES)
def test_clip_grad_value_native_equals_twin(n, dtype, rng):
    g = _grads(n, dtype, rng)
    a, b = g.copy(), g.copy()
    K.clip_grad_value(a, 0.7)
    R.clip_grad_value(b, 0.7)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kernels", [K, R], ids=["native", "reference"])
def test_clip_kernels_reject_bad_input(kernels):
    g = np.ones(3)
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="max_norm"):
            kernels.clip_grad_norm(g, bad)
        with pytest.raises(ValueError, match="clip_value"):
            kernels.clip_grad_value(g, bad)
    with pytest.raises(ValueError, match="norm_type"):
        kernels.clip_grad_norm(g, 1.0, norm_type=0.0)
    with pytest.raises(TypeError, match="grads"):
        kernels.clip_grad_norm([1.0, 2.0], 1.0)
    frozen = np.ones(3)
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="grads"):
        kernels.clip_grad_value(frozen, 1.0)
    np.testing.assert_array_equal(g, 1.0)


# ---- the optimizers' settings ---------------------------------------------------------

def test_optimizer_step_clips_then_updates(dtype, rng):
    p0 = _grads(50, dtype, rng)
    g0 = _grads(50, dtype, rng)
    opt = gd.optim.SGD(lr=0.1)
    opt.set_clipping(clip_norm=0.5)
    p, g = p0.copy(), g0.copy()
    opt.step(p, g)
    clipped = g0.copy()
    R.clip_grad_norm(clipped, 0.5)
    np.testing.assert_array_equal(g, clipped)
    np.testing.assert_array_equal(p, p0 + dtype.type(-0.1) * clipped)
    assert opt.clipping == {"clip_norm": 0.5, "clip_value": None, "norm_type": 2.0}
    opt.set_clipping()
    assert opt.clipping["clip_norm"] is None


def test_bad_clipping_and_groups_are_rejected():
    opt = gd.optim.Adam()
    with pytest.raises(ValueError, match="clip_norm and clip_value"):
        opt.set_clipping(clip_norm=1.0, clip_value=1.0)
    with pytest.raises(ValueError, match="clip_norm"):
        opt.set_clipping(clip_norm=-1.0)
    with pytest.raises(ValueError, match="norm_type"):
        opt.set_clipping(clip_norm=1.0, norm_type=-2)
    with pytest.raises(TypeError, match="clip_value"):
        opt.set_clipping(clip_value="big")
    with pytest.raises(ValueError, match="unknown keys"):
        opt.set_param_groups([{"layer": 0, "lr_factor": 0.1}])
    with pytest.raises(ValueError, match="sets none"):
        opt.set_param_groups([{"layers": [0]}])
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]"):
        opt.set_param_groups([{"params": "bias", "lr_factor": 0.1}])
    with pytest.raises(ValueError, match=r"lr_factor"):
        opt.set_param_groups([{"lr_factor": -0.1}])
    with pytest.raises(TypeError, match="frozen"):
        opt.set_param_groups([{"frozen": 1}])
    with pytest.raises(TypeError, match="list of dicts"):
        opt.set_param_groups({"frozen": True})
    assert opt.clipping["clip_norm"] is None and opt.param_groups == []
    net = gd.MLP([3, 4, 2], seed=0, dtype="float64")
    X, T = np.ones((4, 3)), np.zeros((4, 2))
    with pytest.raises(ValueError, match="names layer 2"):
        net.fit(X, T, epochs=1, optimizer=opt, param_groups=[{"layers": [2], "frozen": True}])
    with pytest.raises(ValueError, match="clip_norm and clip_value"):
        net.fit(X, T, epochs=1, optimizer=opt, clip_norm=1.0, clip_value=1.0)
    with pytest.raises(ValueError, match="norm_type"):
        net.fit(X, T, epochs=1, optimizer=opt, norm_type=INF)
    assert opt.step_count == 0 and opt.param_groups == []
    opt.set_param_groups([{"layers": 0, "frozen": True}])
    with pytest.raises(ValueError, match="param_groups"):
        opt.step(np.zeros(3), np.zeros(3))


# ---- the network step -----------------------------------------------------------------

GROUPS = [{"layers": [0], "lr_factor": 0.1}, {"params": "biases", "weight_decay": 0.0},
          {"layers": 2, "frozen": True}]
CLIPS = [None, {"clip_norm": 0.05}, {"clip_norm": 0.02, "norm_type": INF},
         {"clip_value": 0.003}]


def _setup(sizes, dtype, backend, clip, groups, opt_cls=gd.optim.Adam, **opt_kw):
    net = gd.MLP(sizes, activation="tanh", loss="cross_entropy", seed=1, dtype=dtype,
                 backend=backend)
    opt = opt_cls(**(opt_kw or {"lr": 1e-2, "weight_decay": 0.01}))
    if clip:
        opt.set_clipping(**clip)
    opt.set_param_groups(groups)
    return net, opt


@pytest.mark.parametrize("clip", CLIPS, ids=["none", "norm", "inf", "value"])
@pytest.mark.parametrize("groups", [None, GROUPS], ids=["nogroups", "groups"])
def test_native_step_matches_reference_step(clip, groups, dtype, rng):
    X = rng.standard_normal((16, 9)).astype(dtype)
    T = rng.integers(0, 3, 16)
    nets = {}
    for backend in ("native", "reference"):
        net, opt = _setup([9, 12, 8, 3], dtype, backend, clip, groups)
        for _ in range(3):
            net.train_step(X, T, opt)
        nets[backend] = net
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(nets["native"].params, nets["reference"].params,
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(nets["native"].grads, nets["reference"].grads,
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("clip", CLIPS[1:], ids=["norm", "inf", "value"])
def test_threaded_step_is_bitwise_the_single_thread_step(clip, dtype, rng):
    # 300-512-10: 159242 parameters, so the update and the norm split over 2 threads
    X = rng.standard_normal((8, 300)).astype(dtype)
    T = rng.integers(0, 10, 8)
    out = []
    for nt in (1, 2):
        net, opt = _setup([300, 512, 10], dtype, "native", clip,
                          [{"layers": 1, "lr_factor": 0.5}, {"params": "biases",
                                                             "frozen": True}])
        for _ in range(2):
            net.train_step(X, T, opt, n_threads=nt)
        out.append((net.params.copy(), net.grads.copy(), net._workspace.last_grad_norm))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])
    assert out[0][2] == out[1][2] or (math.isnan(out[0][2]) and math.isnan(out[1][2]))


def test_first_step_by_hand_grads_hold_the_clipped_gradient(dtype, rng):
    X = rng.standard_normal((10, 4)).astype(dtype)
    T = rng.integers(0, 2, 10)
    net = gd.MLP([4, 5, 2], activation="tanh", loss="cross_entropy", seed=2, dtype=dtype)
    opt = gd.optim.SGD(lr=0.5)
    opt.set_clipping(clip_norm=0.01)
    _, g = net.gradient(X, T)
    p0 = net.params.copy()
    net.train_step(X, T, opt)
    total = math.sqrt(float(np.sum(g.astype(np.float64) ** 2)))
    t = dtype.type
    coef = (t(1) / (t(total) + t(1e-6))) * t(0.01)
    assert coef < 1
    np.testing.assert_allclose(net.grads, g * coef, rtol=1e-6)
    np.testing.assert_allclose(net.params, p0 - t(0.5) * g * coef, rtol=1e-5, atol=1e-7)
    assert net._workspace.last_grad_norm == pytest.approx(total, rel=1e-6)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_groups_equal_separate_optimizers_on_separate_buffers(backend, dtype, rng):
    X = rng.standard_normal((12, 5)).astype(dtype)
    T = rng.integers(0, 3, 12)
    net, opt = _setup([5, 6, 4, 3], dtype, backend, None, GROUPS, lr=0.02,
                      weight_decay=0.05)
    layout = net.param_layout
    # one optimizer and one buffer per piece: (slice, lr, weight_decay) or frozen
    pieces = []
    for l, (w0, w1, b0, b1) in enumerate(layout):
        if l == 2:
            pieces.append((slice(w0, b1), None, None))
        else:
            pieces.append((slice(w0, w1), 0.02 * (0.1 if l == 0 else 1.0), 0.05))
            pieces.append((slice(b0, b1), 0.02 * (0.1 if l == 0 else 1.0), 0.0))
    buffers = [net.params[s].copy() for s, _, _ in pieces]
    separate = [gd.optim.Adam(lr=lr, weight_decay=wd, backend=backend) if lr else None
                for _, lr, wd in pieces]
    for _ in range(4):
        _, g = net.gradient(X, T)
        net.train_step(X, T, opt)
        for (s, _, _), buf, sep in zip(pieces, buffers, separate):
            if sep is not None:
                sep.step(buf, g[s].copy())
            np.testing.assert_array_equal(net.params[s], buf)
    # the frozen layer's state is untouched too
    frozen = pieces[-1][0]
    for buf in opt.state.values():
        np.testing.assert_array_equal(buf[frozen], 0)


def test_frozen_parameters_are_left_out_of_the_norm(dtype, rng):
    X = rng.standard_normal((6, 3)).astype(dtype)
    T = rng.integers(0, 2, 6)
    net, opt = _setup([3, 4, 2], dtype, "native", {"clip_norm": 1e-3},
                      [{"layers": 0, "frozen": True}], gd.optim.SGD, lr=1.0)
    _, g = net.gradient(X, T)
    net.train_step(X, T, opt)
    w0, _, _, b1 = net.param_layout[1]
    active = np.zeros(g.size, dtype=bool)
    active[w0:b1] = True
    expected = np.linalg.norm(g[active].astype(np.float64))
    assert net._workspace.last_grad_norm == pytest.approx(expected, rel=1e-6)
    np.testing.assert_array_equal(net.grads[~active], g[~active])   # not clipped


def test_groups_with_a_per_step_schedule_in_the_native_epoch_loop(dtype, rng):
    X = rng.standard_normal((40, 5)).astype(dtype)
    T = rng.integers(0, 3, 40)
    groups = [{"layers": 0, "lr_factor": 0.0}, {"layers": 1, "lr_factor": 0.5}]
    results = []
    for step_callback in (None, lambda step, loss: None):   # native loop, Python loop
        net = gd.MLP([5, 6, 3], activation="tanh", loss="cross_entropy", seed=4,
                     dtype=dtype)
        p0 = net.params.copy()
        opt = gd.optim.SGD(lr=0.1)
        net.fit(X, T, epochs=2, batch_size=8, optimizer=opt, seed=0,
                lr_schedule=gd.schedules.StepDecay(3, 0.5, unit="step"),
                param_groups=groups, clip_norm=0.5, step_callback=step_callback)
        w0, _, _, b1 = net.param_layout[0]
        np.testing.assert_array_equal(net.params[w0:b1], p0[w0:b1])
        assert not np.array_equal(net.params, p0)
        results.append(net.params.copy())
        assert opt.lr == pytest.approx(0.1 * 0.5 ** (9 // 3))
    np.testing.assert_array_equal(results[0], results[1])


def test_one_group_lr_factor_scales_sgd_steps_exactly(dtype, rng):
    X = rng.standard_normal((8, 3)).astype(dtype)
    T = rng.integers(0, 2, 8)
    net, opt = _setup([3, 2], dtype, "native", None, [{"lr_factor": 0.25}],
                      gd.optim.SGD, lr=0.4)
    _, g = net.gradient(X, T)
    p0 = net.params.copy()
    net.train_step(X, T, opt)
    np.testing.assert_array_equal(net.params, p0 + dtype.type(-(0.4 * 0.25)) * g)


def test_save_load_resumes_bitwise(tmp_path, dtype, rng):
    X = rng.standard_normal((30, 4)).astype(dtype)
    T = rng.integers(0, 3, 30)
    groups = [{"layers": 0, "lr_factor": 0.3}, {"params": "biases", "weight_decay": 0.0}]

    def fresh():
        net = gd.MLP([4, 6, 3], activation="relu", loss="cross_entropy", seed=5,
                     dtype=dtype)
        return net, gd.optim.AdamW(lr=0.01)

    whole, opt = fresh()
    whole.fit(X, T, epochs=4, batch_size=7, optimizer=opt, seed=1, clip_norm=0.3,
              norm_type=INF, param_groups=groups)
    half, opt = fresh()
    half.fit(X, T, epochs=2, batch_size=7, optimizer=opt, seed=1, clip_norm=0.3,
             norm_type=INF, param_groups=groups)
    path = tmp_path / "net.npz"
    half.save(path)
    loaded = gd.load(path)
    assert loaded.optimizer.clipping == {"clip_norm": 0.3, "clip_value": None,
                                         "norm_type": INF}
    assert loaded.optimizer.param_groups == opt.param_groups
    loaded.fit(X, T, epochs=2, batch_size=7)
    np.testing.assert_array_equal(loaded.params, whole.params)
    state = opt.state_dict()
    again = gd.optim.AdamW()
    again.load_state_dict(state)
    assert again.param_groups == opt.param_groups and again.clipping == opt.clipping


def test_fit_is_one_definition_and_takes_the_new_options():
    import inspect
    assert gd.MLP.fit is gd.training.fit
    names = list(inspect.signature(gd.MLP([2, 3]).fit).parameters)
    assert names[:2] == ["X", "T"]
    assert names[-4:] == ["clip_norm", "clip_value", "norm_type", "param_groups"]
    assert "clip_norm" in gd.MLP.fit.__doc__


def test_fit_options_stay_with_the_optimizer_and_pickle(rng):
    import pickle
    X = rng.standard_normal((10, 3))
    T = rng.integers(0, 2, 10)
    net = gd.MLP([3, 4, 2], loss="cross_entropy", seed=0, dtype="float64")
    net.fit(X, T, epochs=1, clip_value=0.1, param_groups=[{"layers": 1, "lr_factor": 2.0}])
    opt = net.optimizer
    assert opt.clipping == {"clip_norm": None, "clip_value": 0.1, "norm_type": 2.0}
    net.fit(X, T, epochs=1)                     # None: the settings stay
    assert opt.clipping["clip_value"] == 0.1
    assert opt.param_groups == [{"layers": [1], "params": "all", "lr_factor": 2.0}]
    copy = pickle.loads(pickle.dumps(opt))
    assert copy.clipping == opt.clipping and copy.param_groups == opt.param_groups
    net.fit(X, T, epochs=1, param_groups=[])    # []: removed
    assert opt.param_groups == []


EVERY_OPTIMIZER = [(gd.optim.SGD, dict(lr=0.05, momentum=0.9)),
                   (gd.optim.Adagrad, dict(lr=0.05, lr_decay=0.01)),
                   (gd.optim.Adadelta, dict(lr=0.5)),
                   (gd.optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
                   (gd.optim.Adam, dict(lr=0.01, amsgrad=True)),
                   (gd.optim.AdamW, dict(lr=0.01)),
                   (gd.optim.NAdam, dict(lr=0.01)),
                   (gd.optim.Adamax, dict(lr=0.01)),
                   (gd.optim.RAdam, dict(lr=0.01)),
                   (gd.optim.Rprop, dict(lr=0.01))]


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("opt_cls, options", EVERY_OPTIMIZER,
                         ids=[cls.__name__ for cls, _ in EVERY_OPTIMIZER])
def test_lr_factor_and_frozen_groups_of_every_optimizer_equal_separate_ones(
        opt_cls, options, backend, rng):
    """Every optimizer, its rate scaled per layer or frozen, steps each layer as a
    separate optimizer with that rate would (Rprop: the initial step size) — 8 steps,
    so RAdam's rectified steps are included."""
    dtype = np.dtype(np.float64)
    X = rng.standard_normal((12, 5))
    T = rng.integers(0, 3, 12)
    groups = [{"layers": [0], "lr_factor": 0.25}, {"layers": 2, "frozen": True}]
    net, opt = _setup([5, 6, 4, 3], dtype, backend, None, groups, opt_cls, **options)
    pieces = []
    for l, (w0, _, _, b1) in enumerate(net.param_layout):
        factor = {0: 0.25, 1: 1.0, 2: None}[l]
        sep = None if factor is None else opt_cls(**dict(options, lr=options["lr"] * factor),
                                                  backend=backend)
        pieces.append((slice(w0, b1), sep))
    buffers = [net.params[s].copy() for s, _ in pieces]
    for _ in range(8):
        _, g = net.gradient(X, T)
        net.train_step(X, T, opt)
        for (s, sep), buf in zip(pieces, buffers):
            if sep is not None:
                sep.step(buf, g[s].copy())
            np.testing.assert_allclose(net.params[s], buf, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("kwargs", [dict(clip_norm=True), dict(clip_value=np.bool_(True))])
def test_a_bool_is_not_a_clipping_threshold(kwargs):
    opt = gd.optim.SGD(lr=0.1)
    with pytest.raises(TypeError, match="must be a real number > 0 or None"):
        opt.set_clipping(**kwargs)
    assert opt.clipping["clip_norm"] is None and opt.clipping["clip_value"] is None
