"""NaN and infinity propagate through every native kernel as through its reference.

Each input of each kernel gets NaN, +inf and -inf at a few positions; the native result
must have NaN exactly where the reference has NaN, the same infinities, and the same
finite values to the usual tolerance (float32 and float64, 1 and 2 threads).
"""
import numpy as np
import pytest

import gdcore as gd
from gdcore import kernels as K
from gdcore import reference as R

DTYPES = (np.float32, np.float64)
THREADS = (1, 2)
# small, odd, and above the elementwise/loss chunk sizes (threads really split it)
SHAPES = ((1, 1), (7, 5), (260, 129))
POISONS = (np.nan, np.inf, -np.inf)


def _rtol(dtype, gemm=False):
    if dtype == np.float64:
        return 1e-10 if gemm else 1e-12
    return 1e-4 if gemm else 1e-5


def assert_same_values(native, ref, dtype, what, gemm=False):
    native, ref = np.asarray(native, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert native.shape == ref.shape, what
    assert np.array_equal(np.isnan(native), np.isnan(ref)), f"{what}: NaN positions differ"
    assert np.array_equal(np.isposinf(native), np.isposinf(ref)), f"{what}: +inf differs"
    assert np.array_equal(np.isneginf(native), np.isneginf(ref)), f"{what}: -inf differs"
    finite = np.isfinite(ref)
    scale = max(1.0, float(np.max(np.abs(ref[finite]), initial=0.0)))
    np.testing.assert_allclose(native[finite], ref[finite], rtol=_rtol(dtype, gemm),
                               atol=_rtol(dtype, gemm) * scale, err_msg=what)


def poisoned(rng, a, value, count=3):
    """A copy of ``a`` with ``value`` at ``count`` random positions (and always at the
    first one, so that small arrays are poisoned too)."""
    a = a.copy()
    flat = a.reshape(-1)
    if flat.size:
        idx = np.concatenate([[0], rng.integers(0, flat.size, count)])
        flat[idx] = value
    return a


def _cases():
    for dtype in DTYPES:
        for shape in SHAPES:
            for value in POISONS:
                yield dtype, shape, value


CASES = list(_cases())
IDS = [f"{np.dtype(d).name}-{s[0]}x{s[1]}-{v}" for d, s, v in CASES]


@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("dtype, shape, value", CASES, ids=IDS)
def test_activations(dtype, shape, value, n_threads):
    rng = np.random.default_rng(0)
    U = rng.standard_normal(shape).astype(dtype)
    Y = rng.uniform(0.05, 0.95, shape).astype(dtype)
    dY = rng.standard_normal(shape).astype(dtype)
    with np.errstate(all="ignore"):
        for name in gd._validation.ACTIVATIONS:
            Up = poisoned(rng, U, value)
            assert_same_values(K.activation(name, Up, n_threads=n_threads),
                               R.activation(name, Up), dtype, f"activation {name}")
            for which in ("Y", "dY"):
                Yp = poisoned(rng, Y, value) if which == "Y" else Y
                dYp = poisoned(rng, dY, value) if which == "dY" else dY
                assert_same_values(
                    K.activation_backward(name, Yp, dYp, n_threads=n_threads),
                    R.activation_backward(name, Yp, dYp), dtype,
                    f"activation_backward {name}, poisoned {which}")


@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("dtype, shape, value", CASES, ids=IDS)
def test_dense_layers(dtype, shape, value, n_threads):
    rng = np.random.default_rng(1)
    n, n_in = shape
    n_out = 6
    X = rng.standard_normal((n, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    Y = rng.uniform(0.05, 0.95, (n, n_out)).astype(dtype)
    dY = rng.standard_normal((n, n_out)).astype(dtype)
    with np.errstate(all="ignore"):
        for act in ("identity", "sigmoid", "tanh", "relu", "softmax"):
            for which in ("X", "W", "b"):
                args = {"X": X, "W": W, "b": b}
                args[which] = poisoned(rng, args[which], value)
                assert_same_values(
                    K.dense_forward(args["X"], args["W"], args["b"], act, n_threads=n_threads),
                    R.dense_forward(args["X"], args["W"], args["b"], act), dtype,
                    f"dense_forward {act}, poisoned {which}", gemm=True)
            for which in ("X", "W", "Y", "dY"):
                args = {"X": X, "W": W, "Y": Y, "dY": dY}
                args[which] = poisoned(rng, args[which], value)
                native = K.dense_backward(args["X"], args["W"], args["Y"], args["dY"], act,
                                          n_threads=n_threads)
                ref = R.dense_backward(args["X"], args["W"], args["Y"], args["dY"], act)
                for out_name, a, r in zip(("dX", "dW", "db"), native, ref):
                    assert_same_values(a, r, dtype, f"dense_backward {act}, poisoned "
                                       f"{which}: {out_name}", gemm=True)


LOSS_OUTPUTS = {"squared_error": None, "mse": None, "cross_entropy": "softmax",
                "binary_cross_entropy": "sigmoid"}


@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("dtype, shape, value", CASES, ids=IDS)
def test_losses(dtype, shape, value, n_threads):
    rng = np.random.default_rng(2)
    n, k = shape
    k = max(k, 2)
    with np.errstate(all="ignore"):
        for name, output in LOSS_OUTPUTS.items():
            U = rng.standard_normal((n, k)).astype(dtype)
            Y = R.activation(output, U) if output else U
            T = (np.eye(k, dtype=dtype)[rng.integers(0, k, n)] if output
                 else rng.standard_normal((n, k)).astype(dtype))
            targets = [("T", T)]
            if name == "cross_entropy":
                targets.append(("labels", rng.integers(0, k, n)))
            for t_name, Tt in targets:
                for which in ("Y", "T") if t_name == "T" else ("Y",):
                    Yp = poisoned(rng, Y, value) if which == "Y" else Y
                    Tp = poisoned(rng, Tt, value) if which == "T" else Tt
                    what = f"{name}, {t_name} targets, poisoned {which}"
                    assert_same_values(K.loss(name, Yp, Tp, n_threads=n_threads),
                                       R.loss(name, Yp, Tp), dtype, what + ": loss")
                    lk, Dk = K.loss_delta(name, Yp, Tp, n_threads=n_threads)
                    lr_, Dr = R.loss_delta(name, Yp, Tp)
                    assert_same_values(lk, lr_, dtype, what + ": loss_delta loss")
                    assert_same_values(Dk, Dr, dtype, what + ": delta")


def test_nan_output_gives_nan_cross_entropy():
    # the defect: the clipped logarithm read NaN as a tiny probability (loss 87.34)
    Y = np.full((2, 3), np.nan, np.float32)
    assert np.isnan(K.loss("cross_entropy", Y, np.array([0, 1])))
    assert np.isnan(K.loss("binary_cross_entropy", Y, np.zeros((2, 3), np.float32)))
    assert np.isnan(K.loss("cross_entropy", Y, np.eye(3, dtype=np.float32)[:2]))


OPTIMIZERS = [
    (gd.optim.SGD, {"lr": 0.1}), (gd.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (gd.optim.SGD, {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1, "dampening": 0.2}),
    (gd.optim.Adagrad, {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1}),
    (gd.optim.Adadelta, {"weight_decay": 0.1}),
    (gd.optim.RMSprop, {"momentum": 0.9, "centered": True, "weight_decay": 0.1}),
    (gd.optim.RMSprop, {}),
    (gd.optim.Adam, {"weight_decay": 0.1}), (gd.optim.Adam, {"amsgrad": True}),
    (gd.optim.AdamW, {"amsgrad": True}),
    (gd.optim.NAdam, {"weight_decay": 0.1}),
    (gd.optim.NAdam, {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    (gd.optim.Adamax, {"weight_decay": 0.1}), (gd.optim.RAdam, {"weight_decay": 0.1}),
    (gd.optim.Rprop, {}),
]


@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("value", POISONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, hyper", OPTIMIZERS,
                         ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(OPTIMIZERS)])
@pytest.mark.parametrize("n", [1, 33, 131_101])
def test_optimizer_updates(cls, hyper, dtype, value, n_threads, n):
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    with np.errstate(all="ignore"):
        for which in ("params", "grads", "state"):
            opts = [cls(**hyper, backend="native"), cls(**hyper, backend="reference")]
            ps = [p0.copy(), p0.copy()]
            for opt, p in zip(opts, ps):
                opt.step(p, g, n_threads=n_threads) if opt.backend == "native" else opt.step(p, g)
            idx = np.concatenate([[0], rng.integers(0, n, 3)])
            gp = g.copy()
            if which == "grads":
                gp[idx] = value
            for opt, p in zip(opts, ps):
                if which == "params":
                    p[idx] = value
                elif which == "state":
                    for buf in opt.state.values():
                        buf[idx] = value
                for _ in range(2):
                    if opt.backend == "native":
                        opt.step(p, gp, n_threads=n_threads)
                    else:
                        opt.step(p, gp)
            what = f"{cls.__name__}{hyper}, poisoned {which}"
            assert_same_values(ps[0], ps[1], dtype, what + ": params")
            for key in opts[1].state:
                assert_same_values(opts[0].state[key], opts[1].state[key], dtype,
                                   f"{what}: state {key}")
