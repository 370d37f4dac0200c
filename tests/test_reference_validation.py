"""The kernel contract at the public boundary, for every kernel set.

Bad input raises a ``TypeError``/``ValueError`` naming the argument; inputs are never
modified; ``out=`` buffers are used; read-only and non-contiguous inputs are accepted.
Every test runs on ``gdcore.reference`` and, once it exists, on ``gdcore.kernels``
(same names and signatures).
"""
import importlib
import re

import numpy as np
import pytest

import gdcore.reference

F64, F32 = np.float64, np.float32
ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "softmax"]
OPTIMIZERS = ["sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamw"]
STEPPED = ("sgd", "adagrad", "adam", "adamw")
N, N_IN, N_OUT = 5, 3, 2


def _backends():
    backends = [pytest.param(gdcore.reference, id="reference")]
    try:
        kernels = importlib.import_module("gdcore.kernels")
    except ModuleNotFoundError as exc:
        # Not written yet.  A kernels module that exists but fails to import is an error.
        if exc.name != "gdcore.kernels":
            raise
    else:
        backends.append(pytest.param(kernels, id="kernels"))
    return backends


@pytest.fixture(params=_backends())
def backend(request):
    yield request.param


def names(arg):
    """A pattern matching the argument's name as a whole word."""
    return rf"\b{re.escape(arg)}\b"


# --- array builders (fresh arrays on every call) --------------------------------------

def A(*shape, dtype=F64, seed=0):
    rng = np.random.default_rng(seed + 31 * len(shape) + sum(shape))
    return rng.uniform(-1, 1, size=shape).astype(dtype)


def P(*shape, dtype=F64, seed=0):
    """Probabilities in (0, 1): valid sigmoid outputs."""
    return (0.1 + 0.8 * (A(*shape, dtype=F64, seed=seed) + 1) / 2).astype(dtype)


def strided(a):
    """A non-contiguous view holding a's values."""
    if a.ndim == 1:
        wide = np.zeros(2 * a.shape[0], dtype=a.dtype)
        wide[::2] = a
        return wide[::2]
    wide = np.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
    wide[:, ::2] = a
    return wide[:, ::2]


def frozen(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


def overlapping(shape, dtype=F64, shift=1):
    """Two C-contiguous arrays of ``shape`` that partly share memory."""
    size = int(np.prod(shape))
    buf = np.zeros(size + shift, dtype=dtype)
    return buf[:size].reshape(shape), buf[shift:shift + size].reshape(shape)


def labels(n, k, dtype=np.int64):
    return (np.arange(n) % k).astype(dtype)


# --- bad inputs ---------------------------------------------------------------------

def _activation_cases():
    act = lambda k, name="sigmoid", U=None, **kw: k.activation(  # noqa: E731
        name, A(4, 3) if U is None else U, **kw)
    over = overlapping((4, 3))
    return [
        ("unknown-name", lambda k: act(k, "swish"), ValueError, "activation"),
        ("name-wrong-case", lambda k: act(k, "Sigmoid"), ValueError, "activation"),
        ("name-not-a-string", lambda k: act(k, None), (TypeError, ValueError), "activation"),
        ("U-int", lambda k: act(k, U=np.ones((4, 3), dtype=np.int64)), TypeError, "U"),
        ("U-bool", lambda k: act(k, U=np.ones((4, 3), dtype=bool)), TypeError, "U"),
        ("U-float16", lambda k: act(k, U=np.ones((4, 3), dtype=np.float16)), TypeError, "U"),
        ("U-complex", lambda k: act(k, U=np.ones((4, 3), dtype=complex)), TypeError, "U"),
        ("U-None", lambda k: k.activation("sigmoid", None), TypeError, "U"),
        ("U-1d", lambda k: act(k, U=A(4)), ValueError, "U"),
        ("U-3d", lambda k: act(k, U=A(2, 2, 3)), ValueError, "U"),
        ("U-0d", lambda k: act(k, U=np.float64(1.0)), ValueError, "U"),
        ("out-shape", lambda k: act(k, out=np.empty((3, 4))), ValueError, "out"),
        ("out-dtype", lambda k: act(k, out=np.empty((4, 3), F32)), TypeError, "out"),
        ("out-int", lambda k: act(k, out=np.empty((4, 3), np.int64)), TypeError, "out"),
        ("out-strided", lambda k: act(k, out=strided(A(4, 3))), ValueError, "out"),
        ("out-fortran", lambda k: act(k, out=np.empty((4, 3), order="F")), ValueError, "out"),
        ("out-readonly", lambda k: act(k, out=frozen(A(4, 3))), ValueError, "out"),
        ("out-list", lambda k: act(k, out=[[0.0] * 3] * 4), TypeError, "out"),
        ("out-overlaps-U", lambda k: act(k, U=over[0], out=over[1]), ValueError, "out"),
    ]


def _activation_backward_cases():
    def bwd(k, name="tanh", Y=None, dY=None, **kw):
        return k.activation_backward(name, P(4, 3) if Y is None else Y,
                                     A(4, 3) if dY is None else dY, **kw)
    Y = P(4, 3)
    over = overlapping((4, 3))
    return [
        ("unknown-name", lambda k: bwd(k, "mish"), ValueError, "activation"),
        ("Y-int", lambda k: bwd(k, Y=np.ones((4, 3), np.int32)), TypeError, "Y"),
        ("dY-int", lambda k: bwd(k, dY=np.ones((4, 3), np.int32)), TypeError, "dY"),
        ("dY-float32", lambda k: bwd(k, dY=A(4, 3, dtype=F32)), TypeError, "dY"),
        ("Y-float32", lambda k: bwd(k, Y=P(4, 3, dtype=F32)), TypeError, "dY"),
        ("dY-shape", lambda k: bwd(k, dY=A(4, 2)), ValueError, "dY"),
        ("dY-transposed", lambda k: bwd(k, dY=A(3, 4)), ValueError, "dY"),
        ("Y-1d", lambda k: bwd(k, Y=P(12)), ValueError, "Y"),
        ("dY-3d", lambda k: bwd(k, dY=A(1, 4, 3)), ValueError, "dY"),
        ("dY-None", lambda k: k.activation_backward("tanh", P(4, 3), None), TypeError, "dY"),
        ("out-is-Y", lambda k: bwd(k, Y=Y, out=Y), ValueError, "out"),
        ("out-overlaps-dY", lambda k: bwd(k, dY=over[0], out=over[1]), ValueError, "out"),
        ("out-shape", lambda k: bwd(k, out=np.empty((4, 4))), ValueError, "out"),
        ("out-dtype", lambda k: bwd(k, out=np.empty((4, 3), F32)), TypeError, "out"),
        ("out-readonly", lambda k: bwd(k, out=frozen(A(4, 3))), ValueError, "out"),
        ("out-strided", lambda k: bwd(k, out=strided(A(4, 3))), ValueError, "out"),
    ]


def _dense_forward_cases():
    def fwd(k, X=None, W=None, b=None, act="sigmoid", **kw):
        return k.dense_forward(A(N, N_IN) if X is None else X, A(N_IN, N_OUT) if W is None else W,
                               A(N_OUT) if b is None else b, act, **kw)
    Xsq, Wsq = A(N, N_OUT), A(N_OUT, N_OUT)
    W = A(N_IN, N_OUT)
    over_b = np.zeros(N * N_OUT)
    return [
        ("unknown-activation", lambda k: fwd(k, act="prelu"), ValueError, "activation"),
        ("X-int", lambda k: fwd(k, X=np.ones((N, N_IN), np.int64)), TypeError, "X"),
        ("W-int", lambda k: fwd(k, W=np.ones((N_IN, N_OUT), np.int64)), TypeError, "W"),
        ("b-int", lambda k: fwd(k, b=np.ones(N_OUT, np.int64)), TypeError, "b"),
        ("W-float32", lambda k: fwd(k, W=A(N_IN, N_OUT, dtype=F32)), TypeError, "W"),
        ("X-float32", lambda k: fwd(k, X=A(N, N_IN, dtype=F32)), TypeError, "W"),
        ("b-float32", lambda k: fwd(k, b=A(N_OUT, dtype=F32)), TypeError, "b"),
        ("X-None", lambda k: k.dense_forward(None, A(N_IN, N_OUT), A(N_OUT), "tanh"),
         TypeError, "X"),
        ("W-None", lambda k: k.dense_forward(A(N, N_IN), None, A(N_OUT), "tanh"),
         TypeError, "W"),
        ("X-1d", lambda k: fwd(k, X=A(N_IN)), ValueError, "X"),
        ("X-3d", lambda k: fwd(k, X=A(1, N, N_IN)), ValueError, "X"),
        ("W-1d", lambda k: fwd(k, W=A(N_IN)), ValueError, "W"),
        ("b-2d", lambda k: fwd(k, b=A(1, N_OUT)), ValueError, "b"),
        ("b-0d", lambda k: fwd(k, b=np.float64(0.5)), ValueError, "b"),
        ("W-n_in", lambda k: fwd(k, W=A(N_IN + 1, N_OUT)), ValueError, "W"),
        ("W-transposed", lambda k: fwd(k, W=A(N_OUT, N_IN)), ValueError, "W"),
        ("b-length", lambda k: fwd(k, b=A(N_OUT + 1)), ValueError, "b"),
        ("out-shape", lambda k: fwd(k, out=np.empty((N, N_IN))), ValueError, "out"),
        ("out-dtype", lambda k: fwd(k, out=np.empty((N, N_OUT), F32)), TypeError, "out"),
        ("out-readonly", lambda k: fwd(k, out=frozen(A(N, N_OUT))), ValueError, "out"),
        ("out-strided", lambda k: fwd(k, out=strided(A(N, N_OUT))), ValueError, "out"),
        ("out-is-X", lambda k: fwd(k, X=Xsq, W=Wsq, out=Xsq), ValueError, "out"),
        ("out-overlaps-W", lambda k: fwd(k, W=W, out=np.lib.stride_tricks.as_strided(
            W, (N, N_OUT), (W.strides[1] * N_OUT, W.strides[1]), writeable=True)),
         ValueError, "out"),
        ("out-overlaps-b", lambda k: fwd(k, b=over_b[:N_OUT], out=over_b.reshape(N, N_OUT)),
         ValueError, "out"),
    ]


def _dense_backward_cases():
    def bwd(k, X=None, W=None, Y=None, dY=None, act="sigmoid", **kw):
        return k.dense_backward(
            A(N, N_IN) if X is None else X, A(N_IN, N_OUT) if W is None else W,
            P(N, N_OUT) if Y is None else Y, A(N, N_OUT, seed=1) if dY is None else dY,
            act, **kw)
    X, W, Y, dY = A(N, N_IN), A(N_IN, N_OUT), P(N, N_OUT), A(N, N_OUT, seed=1)
    Wrow = A(N_OUT, N_OUT)  # a row of it fits db_out
    over = overlapping((N, N_OUT))
    shared = np.zeros(N * N_OUT + N_IN * N_OUT)
    big = np.zeros(N * N_IN + N * N_OUT)
    return [
        ("unknown-activation", lambda k: bwd(k, act="selu"), ValueError, "activation"),
        ("X-int", lambda k: bwd(k, X=np.ones((N, N_IN), np.int64)), TypeError, "X"),
        ("W-int", lambda k: bwd(k, W=np.ones((N_IN, N_OUT), np.int64)), TypeError, "W"),
        ("Y-int", lambda k: bwd(k, Y=np.ones((N, N_OUT), np.int64)), TypeError, "Y"),
        ("dY-int", lambda k: bwd(k, dY=np.ones((N, N_OUT), np.int64)), TypeError, "dY"),
        ("W-float32", lambda k: bwd(k, W=A(N_IN, N_OUT, dtype=F32)), TypeError, "W"),
        ("Y-float32", lambda k: bwd(k, Y=P(N, N_OUT, dtype=F32)), TypeError, "Y"),
        ("dY-float32", lambda k: bwd(k, dY=A(N, N_OUT, dtype=F32)), TypeError, "dY"),
        ("X-1d", lambda k: bwd(k, X=A(N)), ValueError, "X"),
        ("Y-1d", lambda k: bwd(k, Y=P(N)), ValueError, "Y"),
        ("dY-3d", lambda k: bwd(k, dY=A(1, N, N_OUT)), ValueError, "dY"),
        ("W-n_in", lambda k: bwd(k, W=A(N_IN + 2, N_OUT)), ValueError, "W"),
        ("Y-rows", lambda k: bwd(k, Y=P(N + 1, N_OUT)), ValueError, "Y"),
        ("Y-cols", lambda k: bwd(k, Y=P(N, N_OUT + 1)), ValueError, "Y"),
        ("dY-shape", lambda k: bwd(k, dY=A(N, N_OUT + 1)), ValueError, "dY"),
        ("dW_out-shape", lambda k: bwd(k, dW_out=np.empty((N_OUT, N_IN))), ValueError, "dW_out"),
        ("dW_out-dtype", lambda k: bwd(k, dW_out=np.empty((N_IN, N_OUT), F32)), TypeError,
         "dW_out"),
        ("dW_out-readonly", lambda k: bwd(k, dW_out=frozen(A(N_IN, N_OUT))), ValueError,
         "dW_out"),
        ("dW_out-strided", lambda k: bwd(k, dW_out=strided(A(N_IN, N_OUT))), ValueError,
         "dW_out"),
        ("db_out-shape", lambda k: bwd(k, db_out=np.empty(N_OUT + 1)), ValueError, "db_out"),
        ("db_out-2d", lambda k: bwd(k, db_out=np.empty((1, N_OUT))), ValueError, "db_out"),
        ("db_out-dtype", lambda k: bwd(k, db_out=np.empty(N_OUT, F32)), TypeError, "db_out"),
        ("db_out-readonly", lambda k: bwd(k, db_out=frozen(A(N_OUT))), ValueError, "db_out"),
        ("dX_out-shape", lambda k: bwd(k, dX_out=np.empty((N, N_IN + 1))), ValueError, "dX_out"),
        ("dX_out-dtype", lambda k: bwd(k, dX_out=np.empty((N, N_IN), F32)), TypeError, "dX_out"),
        ("dX_out-readonly", lambda k: bwd(k, dX_out=frozen(A(N, N_IN))), ValueError, "dX_out"),
        ("delta_out-shape", lambda k: bwd(k, delta_out=np.empty((N, N_IN))), ValueError,
         "delta_out"),
        ("delta_out-dtype", lambda k: bwd(k, delta_out=np.empty((N, N_OUT), F32)), TypeError,
         "delta_out"),
        ("delta_out-readonly", lambda k: bwd(k, delta_out=frozen(A(N, N_OUT))), ValueError,
         "delta_out"),
        ("delta_out-strided", lambda k: bwd(k, delta_out=strided(A(N, N_OUT))), ValueError,
         "delta_out"),
        ("dW_out-is-W", lambda k: bwd(k, W=W, dW_out=W), ValueError, "dW_out"),
        ("dX_out-is-X", lambda k: bwd(k, X=X, dX_out=X), ValueError, "dX_out"),
        ("db_out-overlaps-W", lambda k: bwd(k, X=A(N, N_OUT), W=Wrow, db_out=Wrow[1]),
         ValueError, "db_out"),
        ("dX_out-overlaps-dY", lambda k: bwd(k, X=A(N, N_OUT), W=A(N_OUT, N_OUT),
                                             dY=over[0], dX_out=over[1]), ValueError, "dX_out"),
        ("delta_out-is-Y", lambda k: bwd(k, Y=Y, delta_out=Y), ValueError, "delta_out"),
        ("delta_out-is-dY", lambda k: bwd(k, dY=dY, delta_out=dY), ValueError, "delta_out"),
        ("delta_out-overlaps-X", lambda k: bwd(k, X=over[0], W=A(N_OUT, N_OUT),
                                               delta_out=over[1]), ValueError, "delta_out"),
        ("delta_out-overlaps-dY", lambda k: bwd(k, dY=over[0], delta_out=over[1]), ValueError,
         "delta_out"),
        # Outputs that share memory with each other would overwrite one another.
        ("dW_out-overlaps-delta_out", lambda k: bwd(
            k, dW_out=shared[:N_IN * N_OUT].reshape(N_IN, N_OUT),
            delta_out=shared[N_OUT:N_OUT + N * N_OUT].reshape(N, N_OUT)),
         ValueError, r"dW_out.*delta_out|delta_out.*dW_out"),
        ("dW_out-overlaps-db_out", lambda k: bwd(
            k, dW_out=shared[:N_IN * N_OUT].reshape(N_IN, N_OUT), db_out=shared[:N_OUT]),
         ValueError, r"dW_out.*db_out|db_out.*dW_out"),
        ("dX_out-overlaps-delta_out", lambda k: bwd(
            k, dX_out=big[:N * N_IN].reshape(N, N_IN),
            delta_out=big[N_IN:N_IN + N * N_OUT].reshape(N, N_OUT)),
         ValueError, r"dX_out.*delta_out|delta_out.*dX_out"),
        ("dX_out-overlaps-db_out", lambda k: bwd(
            k, dX_out=big[:N * N_IN].reshape(N, N_IN), db_out=big[N_IN:N_IN + N_OUT]),
         ValueError, r"dX_out.*db_out|db_out.*dX_out"),
    ]


def _loss_cases():
    def L(k, fn, name="squared_error", Y=None, T=None, **kw):
        return getattr(k, fn)(name, P(N, N_OUT) if Y is None else Y,
                              P(N, N_OUT, seed=2) if T is None else T, **kw)
    cases = []
    for fn in ("loss", "loss_delta"):
        def c(id_, call, exc, match, fn=fn):
            cases.append((f"{fn}-{id_}", lambda k: call(k, fn), exc, match))
        c("unknown", lambda k, fn: L(k, fn, "cross-entropy"), ValueError, "loss")
        c("unknown-nll", lambda k, fn: L(k, fn, "nll"), ValueError, "loss")
        c("Y-int", lambda k, fn: L(k, fn, Y=np.ones((N, N_OUT), np.int64)), TypeError, "Y")
        c("Y-1d", lambda k, fn: L(k, fn, Y=P(N)), ValueError, "Y")
        c("Y-3d", lambda k, fn: L(k, fn, Y=P(1, N, N_OUT)), ValueError, "Y")
        c("T-None", lambda k, fn: getattr(k, fn)("mse", P(N, N_OUT), None), TypeError, "T")
        c("T-shape", lambda k, fn: L(k, fn, T=P(N, N_OUT + 1)), ValueError, "T")
        c("T-rows", lambda k, fn: L(k, fn, T=P(N - 1, N_OUT)), ValueError, "T")
        c("T-float32", lambda k, fn: L(k, fn, T=P(N, N_OUT, dtype=F32)), TypeError, "T")
        c("Y-float32", lambda k, fn: L(k, fn, Y=P(N, N_OUT, dtype=F32)), TypeError, "T")
        c("T-int-rows", lambda k, fn: L(k, fn, T=np.ones((N, N_OUT), np.int64)), TypeError, "T")
        c("T-1d-for-K-outputs", lambda k, fn: L(k, fn, T=P(N)), ValueError, "T")
        c("T-1d-length", lambda k, fn: L(k, fn, "mse", Y=P(N, 1), T=P(N + 1)), ValueError, "T")
        c("T-3d", lambda k, fn: L(k, fn, T=P(1, N, N_OUT)), ValueError, "T")
        c("bce-T-shape", lambda k, fn: L(k, fn, "binary_cross_entropy", T=P(N, 1)),
          ValueError, "T")
        ce = lambda k, fn, T: L(k, fn, "cross_entropy", Y=P(N, 3), T=T)  # noqa: E731
        c("labels-count", lambda k, fn: ce(k, fn, labels(N + 1, 3)), ValueError, "T")
        c("labels-count-short", lambda k, fn: ce(k, fn, labels(N - 2, 3)), ValueError, "T")
        c("labels-negative", lambda k, fn: ce(k, fn, np.array([0, 1, -1, 2, 0])), ValueError,
          "T")
        c("labels-equal-K", lambda k, fn: ce(k, fn, np.array([0, 1, 3, 2, 0])), ValueError, "T")
        c("labels-huge", lambda k, fn: ce(k, fn, np.array([0, 1, 2**40, 2, 0])), ValueError,
          "T")
        c("labels-uint-too-big", lambda k, fn: ce(k, fn, np.array([0, 1, 2**64 - 1, 2, 0],
                                                                   dtype=np.uint64)),
          ValueError, "T")
        c("labels-float", lambda k, fn: ce(k, fn, np.array([0.0, 1.0, 2.0, 1.0, 0.0])),
          TypeError, "T")
        c("labels-bool", lambda k, fn: ce(k, fn, np.array([0, 1, 1, 0, 1], dtype=bool)),
          TypeError, "T")
        c("ce-rows-shape", lambda k, fn: ce(k, fn, P(N, 4)), ValueError, "T")
        c("ce-rows-float32", lambda k, fn: ce(k, fn, P(N, 3, dtype=F32)), TypeError, "T")
        c("ce-T-2d-labels-column", lambda k, fn: ce(k, fn, labels(N, 3).reshape(N, 1)),
          (TypeError, ValueError), "T")
    Y, T = P(N, N_OUT), P(N, N_OUT, seed=2)
    def ld(k, **kw):
        return k.loss_delta("squared_error", P(N, N_OUT), P(N, N_OUT, seed=2), **kw)
    cases += [
        ("loss_delta-out-shape", lambda k: ld(k, out=np.empty((N, N_OUT + 1))), ValueError, "out"),
        ("loss_delta-out-dtype", lambda k: ld(k, out=np.empty((N, N_OUT), F32)), TypeError,
         "out"),
        ("loss_delta-out-readonly", lambda k: ld(k, out=frozen(A(N, N_OUT))), ValueError, "out"),
        ("loss_delta-out-strided", lambda k: ld(k, out=strided(A(N, N_OUT))), ValueError, "out"),
        ("loss_delta-out-list", lambda k: ld(k, out=[[0.0] * N_OUT] * N), TypeError, "out"),
        ("loss_delta-out-is-Y", lambda k: k.loss_delta("mse", Y, T, out=Y), ValueError, "out"),
        ("loss_delta-out-is-T", lambda k: k.loss_delta("mse", Y, T, out=T), ValueError, "out"),
    ]
    return cases


# Hyperparameters under which every state buffer of the optimizer is required.
NEEDS_ALL = {
    "sgd": (dict(momentum=0.9), ["momentum_buffer"]),
    "adagrad": ({}, ["state_sum"]),
    "adadelta": ({}, ["square_avg", "acc_delta"]),
    "rmsprop": (dict(momentum=0.9, centered=True), ["square_avg", "momentum_buffer", "grad_avg"]),
    "adam": (dict(amsgrad=True), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    "adamw": (dict(amsgrad=True), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
}


def opt_step(k, name, params=None, grads=None, step=1, drop=(), replace=None, **hp):
    """One update with every state buffer present (fresh zeros) unless dropped or
    replaced; ``hp`` overrides the options that make them all required."""
    params = np.linspace(-1, 1, 6) if params is None else params
    grads = np.linspace(0.5, -0.5, 6) if grads is None else grads
    needs, keys = NEEDS_ALL[name]
    size = params.shape[0] if isinstance(params, np.ndarray) and params.ndim == 1 else 6
    dtype = params.dtype if isinstance(params, np.ndarray) and params.dtype.kind == "f" else F64
    state = {key: np.zeros(size, dtype) for key in keys if key not in drop}
    state.update(replace or {})
    kwargs = {"step": step} if name in STEPPED else {}
    return getattr(k, f"{name}_update")(params, grads, **state, **kwargs, **{**needs, **hp})


def raw_step(k, name, params, grads):
    """One update with exactly the given params and grads and six-element state."""
    needs, keys = NEEDS_ALL[name]
    kwargs = {"step": 1} if name in STEPPED else {}
    return getattr(k, f"{name}_update")(params, grads, **{key: np.zeros(6) for key in keys},
                                        **kwargs, **needs)


def _optimizer_cases():
    cases = []

    def c(id_, call, exc, match):
        cases.append((id_, call, exc, match))

    nan, inf = float("nan"), float("inf")
    for name in OPTIMIZERS:
        def o(k, name=name, **kw):
            return opt_step(k, name, **kw)
        for bad in (-1e-3, nan, inf, -inf):
            c(f"{name}-lr={bad}", lambda k, o=o, bad=bad: o(k, lr=bad), ValueError, "lr")
        c(f"{name}-lr-str", lambda k, o=o: o(k, lr="fast"), TypeError, "lr")
        c(f"{name}-lr-None", lambda k, o=o: o(k, lr=None), TypeError, "lr")
        for bad in (-0.1, nan, inf):
            c(f"{name}-weight_decay={bad}", lambda k, o=o, bad=bad: o(k, weight_decay=bad),
              ValueError, "weight_decay")
        if name != "sgd":
            for bad in (0.0, -1e-8, nan, inf):
                c(f"{name}-eps={bad}", lambda k, o=o, bad=bad: o(k, eps=bad), ValueError, "eps")
        if name in STEPPED:
            for bad in (0, -1):
                c(f"{name}-step={bad}", lambda k, o=o, bad=bad: o(k, step=bad), ValueError,
                  "step")
            for bad in (1.5, 1.0, "1", None, True):
                c(f"{name}-step={bad!r}", lambda k, o=o, bad=bad: o(k, step=bad), TypeError,
                  "step")
        # Buffers.
        c(f"{name}-params-strided", lambda k, o=o: o(k, params=strided(np.ones(6))),
          ValueError, "params")
        c(f"{name}-params-readonly", lambda k, o=o: o(k, params=frozen(np.ones(6))),
          ValueError, "params")
        c(f"{name}-params-2d", lambda k, o=o: o(k, params=np.ones((2, 3)), grads=np.ones((2, 3))),
          ValueError, "params")
        c(f"{name}-params-int", lambda k, o=o: o(k, params=np.ones(6, np.int64)), TypeError,
          "params")
        c(f"{name}-params-list", lambda k, o=o: o(k, params=[1.0] * 6), TypeError, "params")
        c(f"{name}-params-None", lambda k, name=name: raw_step(k, name, None, np.ones(6)),
          TypeError, "params")
        c(f"{name}-grads-shape", lambda k, o=o: o(k, grads=np.ones(5)), ValueError, "grads")
        c(f"{name}-grads-2d", lambda k, o=o: o(k, grads=np.ones((1, 6))), ValueError, "grads")
        c(f"{name}-grads-float32", lambda k, o=o: o(k, grads=np.ones(6, F32)), TypeError,
          "grads")
        c(f"{name}-params-float32", lambda k, o=o: o(k, params=np.ones(6, F32),
                                                     grads=np.ones(6, F64)), TypeError, "grads")
        c(f"{name}-grads-int", lambda k, o=o: o(k, grads=np.ones(6, np.int64)), TypeError,
          "grads")
        c(f"{name}-grads-None", lambda k, name=name: raw_step(k, name, np.ones(6), None),
          TypeError, "grads")

        def alias(k, o=o):
            p = np.ones(6)
            return o(k, params=p, grads=p)
        c(f"{name}-grads-is-params", alias, ValueError, "grads")

        def alias_part(k, o=o):
            buf = np.ones(7)
            return o(k, params=buf[:6], grads=buf[1:])
        c(f"{name}-grads-overlaps-params", alias_part, ValueError, "grads")
        keys = NEEDS_ALL[name][1]
        for key in keys:
            # A missing positional argument: Python's (or Cython's) own TypeError.
            c(f"{name}-{key}-missing", lambda k, o=o, key=key: o(k, drop=(key,)),
              (TypeError, ValueError), None)
            c(f"{name}-{key}-None", lambda k, o=o, key=key: o(k, replace={key: None}),
              ValueError, key)
            c(f"{name}-{key}-float32", lambda k, o=o, key=key: o(
                k, replace={key: np.zeros(6, F32)}), TypeError, key)
            c(f"{name}-{key}-int", lambda k, o=o, key=key: o(
                k, replace={key: np.zeros(6, np.int64)}), TypeError, key)
            c(f"{name}-{key}-shape", lambda k, o=o, key=key: o(k, replace={key: np.zeros(7)}),
              ValueError, key)
            c(f"{name}-{key}-2d", lambda k, o=o, key=key: o(k, replace={key: np.zeros((1, 6))}),
              ValueError, key)
            c(f"{name}-{key}-readonly", lambda k, o=o, key=key: o(
                k, replace={key: frozen(np.zeros(6))}), ValueError, key)
            c(f"{name}-{key}-strided", lambda k, o=o, key=key: o(
                k, replace={key: strided(np.zeros(6))}), ValueError, key)
            c(f"{name}-{key}-list", lambda k, o=o, key=key: o(k, replace={key: [0.0] * 6}),
              TypeError, key)

            def is_params(k, o=o, key=key):
                p = np.ones(6)
                return o(k, params=p, replace={key: p})
            c(f"{name}-{key}-is-params", is_params, ValueError, key)

            def is_grads(k, o=o, key=key):
                g = np.ones(6)
                return o(k, grads=g, replace={key: g})
            c(f"{name}-{key}-is-grads", is_grads, ValueError, key)
        if len(keys) > 1:
            def same(k, o=o, keys=keys):
                s = np.zeros(6)
                return o(k, replace={keys[0]: s, keys[1]: s})
            c(f"{name}-{keys[0]}-is-{keys[1]}", same, ValueError,
              rf"{keys[0]}.*{keys[1]}|{keys[1]}.*{keys[0]}")

    sgd = lambda k, **kw: opt_step(k, "sgd", **kw)  # noqa: E731
    rms = lambda k, **kw: opt_step(k, "rmsprop", **kw)  # noqa: E731
    cases += [
        ("sgd-momentum-negative", lambda k: sgd(k, momentum=-0.1), ValueError, "momentum"),
        ("sgd-momentum-nan", lambda k: sgd(k, momentum=float("nan")), ValueError, "momentum"),
        ("sgd-dampening-nan", lambda k: sgd(k, dampening=float("nan")), ValueError, "dampening"),
        ("sgd-dampening-inf", lambda k: sgd(k, dampening=float("inf")), ValueError, "dampening"),
        ("sgd-nesterov-without-momentum", lambda k: sgd(k, momentum=0.0, nesterov=True),
         ValueError, "nesterov"),
        ("sgd-nesterov-with-dampening", lambda k: sgd(k, momentum=0.9, dampening=0.1,
                                                      nesterov=True), ValueError, "nesterov"),
        ("sgd-momentum-without-buffer", lambda k: k.sgd_update(
            np.ones(3), np.ones(3), step=1, momentum=0.9), ValueError, "momentum_buffer"),
        ("rmsprop-momentum-negative", lambda k: rms(k, momentum=-0.5), ValueError, "momentum"),
        ("rmsprop-momentum-inf", lambda k: rms(k, momentum=float("inf")), ValueError,
         "momentum"),
        ("rmsprop-alpha-negative", lambda k: rms(k, alpha=-0.1), ValueError, "alpha"),
        ("rmsprop-alpha-nan", lambda k: rms(k, alpha=float("nan")), ValueError, "alpha"),
        ("rmsprop-momentum-without-buffer", lambda k: opt_step(
            k, "rmsprop", drop=("momentum_buffer",), centered=False), ValueError,
         "momentum_buffer"),
        ("rmsprop-centered-without-grad_avg", lambda k: opt_step(
            k, "rmsprop", drop=("grad_avg",), momentum=0.0), ValueError, "grad_avg"),
        ("adagrad-lr_decay-negative", lambda k: opt_step(k, "adagrad", lr_decay=-0.1),
         ValueError, "lr_decay"),
        ("adagrad-lr_decay-nan", lambda k: opt_step(k, "adagrad", lr_decay=float("nan")),
         ValueError, "lr_decay"),
        ("adadelta-rho-negative", lambda k: opt_step(k, "adadelta", rho=-0.1), ValueError,
         "rho"),
        ("adadelta-rho-above-1", lambda k: opt_step(k, "adadelta", rho=1.1), ValueError, "rho"),
        ("adadelta-rho-nan", lambda k: opt_step(k, "adadelta", rho=float("nan")), ValueError,
         "rho"),
    ]
    for name in ("adam", "adamw"):
        for bad in ((1.0, 0.999), (-0.1, 0.999), (0.9, 1.0), (0.9, -0.1), (0.9, 1.5),
                    (float("nan"), 0.999), (0.9, float("inf"))):
            cases.append((f"{name}-betas={bad}", lambda k, name=name, bad=bad: opt_step(
                k, name, betas=bad), ValueError, "betas"))
        for bad in (0.9, (0.9,), (0.9, 0.99, 0.9), None):
            cases.append((f"{name}-betas={bad}-not-a-pair", lambda k, name=name, bad=bad:
                          opt_step(k, name, betas=bad), TypeError, "betas"))
        cases.append((f"{name}-amsgrad-without-max", lambda k, name=name: opt_step(
            k, name, drop=("max_exp_avg_sq",)), ValueError, "max_exp_avg_sq"))
        cases.append((f"{name}-amsgrad-max-None", lambda k, name=name: getattr(
            k, f"{name}_update")(np.ones(3), np.ones(3), np.zeros(3), np.zeros(3), None, step=1,
                                 amsgrad=True), ValueError, "max_exp_avg_sq"))
    return cases


def _optimizer_state_cases():
    return [
        ("unknown", lambda k: k.optimizer_state("lbfgs", np.ones(3)), ValueError, "name"),
        ("upper-case", lambda k: k.optimizer_state("Adam", np.ones(3)), ValueError, "name"),
        ("params-2d", lambda k: k.optimizer_state("adam", np.ones((2, 3))), ValueError,
         "params"),
        ("params-int", lambda k: k.optimizer_state("adam", np.ones(3, np.int64)), TypeError,
         "params"),
        ("params-list", lambda k: k.optimizer_state("adam", [1.0, 2.0]), TypeError, "params"),
        ("initial_accumulator_value-negative", lambda k: k.optimizer_state(
            "adagrad", np.ones(3), initial_accumulator_value=-0.1), ValueError,
         "initial_accumulator_value"),
        ("initial_accumulator_value-nan", lambda k: k.optimizer_state(
            "adagrad", np.ones(3), initial_accumulator_value=float("nan")), ValueError,
         "initial_accumulator_value"),
        ("sgd-momentum-negative", lambda k: k.optimizer_state("sgd", np.ones(3), momentum=-1),
         ValueError, "momentum"),
        ("rmsprop-momentum-nan", lambda k: k.optimizer_state(
            "rmsprop", np.ones(3), momentum=float("nan")), ValueError, "momentum"),
    ]


BAD_INPUT = ([(f"activation-{i}", *r) for i, *r in _activation_cases()]
             + [(f"activation_backward-{i}", *r) for i, *r in _activation_backward_cases()]
             + [(f"dense_forward-{i}", *r) for i, *r in _dense_forward_cases()]
             + [(f"dense_backward-{i}", *r) for i, *r in _dense_backward_cases()]
             + _loss_cases()
             + _optimizer_cases()
             + [(f"optimizer_state-{i}", *r) for i, *r in _optimizer_state_cases()])


@pytest.mark.parametrize("call, exc, arg", [pytest.param(c, e, m, id=i)
                                            for i, c, e, m in BAD_INPUT])
def test_bad_input_raises_naming_the_argument(backend, call, exc, arg):
    if arg is None:
        with pytest.raises(exc):
            call(backend)
        return
    pattern = arg if any(ch in arg for ch in "|.*") else names(arg)
    with pytest.raises(exc, match=pattern):
        call(backend)


def test_bad_input_case_ids_are_unique():
    ids = [i for i, *_ in BAD_INPUT]
    assert len(ids) == len(set(ids))


def test_error_messages_state_expected_and_actual(backend):
    with pytest.raises(ValueError) as info:
        backend.dense_forward(A(N, N_IN), A(N_IN + 1, N_OUT), A(N_OUT), "identity")
    assert str(N_IN) in str(info.value) and str((N_IN + 1, N_OUT)) in str(info.value)
    with pytest.raises(TypeError) as info:
        backend.dense_forward(A(N, N_IN), A(N_IN, N_OUT, dtype=F32), A(N_OUT), "identity")
    assert "float32" in str(info.value) and "float64" in str(info.value)
    with pytest.raises(ValueError) as info:
        backend.loss("cross_entropy", P(N, 3), np.array([0, 1, 7, 2, 0]))
    assert "7" in str(info.value) and "3" in str(info.value)


def test_a_failed_optimizer_call_leaves_params_and_state_alone(backend):
    params, grads = np.linspace(-1, 1, 6), np.ones(6)
    state = backend.optimizer_state("adam", params, amsgrad=True)
    before = params.copy()
    with pytest.raises(ValueError):
        backend.adam_update(params, grads, state["exp_avg"], np.zeros(7),
                            state["max_exp_avg_sq"], step=1, amsgrad=True)
    with pytest.raises(ValueError):
        backend.adam_update(params, grads, **state, step=1, eps=0.0)
    np.testing.assert_array_equal(params, before)
    assert all(np.all(buf == 0) for buf in state.values())


# --- side effects, out= buffers, read-only and non-contiguous inputs ------------------

def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-14) if dtype == F64 else dict(rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_contract(backend, name, dtype):
    U = A(6, 5, dtype=dtype)
    U0 = U.copy()
    Y = backend.activation(name, U)
    np.testing.assert_array_equal(U, U0)
    assert Y.dtype == dtype and Y.shape == U.shape and not np.shares_memory(Y, U)
    out = np.full_like(U, np.nan)
    assert backend.activation(name, U, out=out) is out
    np.testing.assert_array_equal(out, Y)
    np.testing.assert_array_equal(backend.activation(name, frozen(U)), Y)
    np.testing.assert_allclose(backend.activation(name, strided(U)), Y, **_tol(dtype))
    np.testing.assert_allclose(backend.activation(name, np.asfortranarray(U)), Y, **_tol(dtype))
    # In place: out may be U itself.
    inplace = U.copy()
    assert backend.activation(name, inplace, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, Y)
    for n_threads in (1, 2):
        np.testing.assert_array_equal(backend.activation(name, U, n_threads=n_threads), Y)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_contract(backend, name, dtype):
    Y = backend.activation(name, A(6, 5, dtype=dtype))
    dY = A(6, 5, dtype=dtype, seed=3)
    Y0, dY0 = Y.copy(), dY.copy()
    dU = backend.activation_backward(name, Y, dY)
    np.testing.assert_array_equal(Y, Y0)
    np.testing.assert_array_equal(dY, dY0)
    assert dU.dtype == dtype and dU.shape == Y.shape
    assert not np.shares_memory(dU, Y) and not np.shares_memory(dU, dY)
    out = np.full_like(Y, np.nan)
    assert backend.activation_backward(name, Y, dY, out=out) is out
    np.testing.assert_array_equal(out, dU)
    np.testing.assert_array_equal(backend.activation_backward(name, frozen(Y), frozen(dY)), dU)
    np.testing.assert_allclose(backend.activation_backward(name, strided(Y), np.asfortranarray(dY)),
                               dU, **_tol(dtype))
    inplace = dY.copy()
    assert backend.activation_backward(name, Y, inplace, out=inplace) is inplace
    np.testing.assert_allclose(inplace, dU, **_tol(dtype))
    for n_threads in (1, 2):
        np.testing.assert_array_equal(
            backend.activation_backward(name, Y, dY, n_threads=n_threads), dU)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_forward_contract(backend, name, dtype):
    X, W, b = A(7, 4, dtype=dtype), A(4, 3, dtype=dtype, seed=1), A(3, dtype=dtype, seed=2)
    inputs = [a.copy() for a in (X, W, b)]
    Y = backend.dense_forward(X, W, b, name)
    for a, a0 in zip((X, W, b), inputs):
        np.testing.assert_array_equal(a, a0)
    assert Y.dtype == dtype and Y.shape == (7, 3)
    out = np.full((7, 3), np.nan, dtype=dtype)
    assert backend.dense_forward(X, W, b, name, out=out) is out
    np.testing.assert_array_equal(out, Y)
    np.testing.assert_array_equal(backend.dense_forward(frozen(X), frozen(W), frozen(b), name), Y)
    np.testing.assert_allclose(
        backend.dense_forward(strided(X), np.asfortranarray(W), strided(b), name), Y,
        **_tol(dtype))
    for n_threads in (1, 2):
        np.testing.assert_allclose(backend.dense_forward(X, W, b, name, n_threads=n_threads), Y,
                                   **_tol(dtype))
    # b=None: no bias, as torch.nn.functional.linear.
    np.testing.assert_allclose(backend.dense_forward(X, W, None, name),
                               backend.dense_forward(X, W, np.zeros_like(b), name),
                               **_tol(dtype))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_backward_contract(backend, name, dtype):
    X, W = A(7, 4, dtype=dtype), A(4, 3, dtype=dtype, seed=1)
    Y = backend.dense_forward(X, W, A(3, dtype=dtype, seed=2), name)
    dY = A(7, 3, dtype=dtype, seed=4)
    inputs = [a.copy() for a in (X, W, Y, dY)]
    dX, dW, db = backend.dense_backward(X, W, Y, dY, name)
    for a, a0 in zip((X, W, Y, dY), inputs):
        np.testing.assert_array_equal(a, a0)
    assert (dX.shape, dW.shape, db.shape) == (X.shape, W.shape, (3,))
    assert dX.dtype == dW.dtype == db.dtype == dtype
    outs = dict(dX_out=np.full_like(X, np.nan), dW_out=np.full_like(W, np.nan),
                db_out=np.full(3, np.nan, dtype), delta_out=np.full_like(Y, np.nan))
    result = backend.dense_backward(X, W, Y, dY, name, **outs)
    assert result[0] is outs["dX_out"] and result[1] is outs["dW_out"]
    assert result[2] is outs["db_out"]
    for got, want in zip(result, (dX, dW, db)):
        np.testing.assert_array_equal(got, want)
    # delta_out is a workspace: its contents afterwards are not part of the contract.
    for a, a0 in zip((X, W, Y, dY), inputs):
        np.testing.assert_array_equal(a, a0)
    no_dX = backend.dense_backward(X, W, Y, dY, name, compute_dX=False)
    assert no_dX[0] is None
    np.testing.assert_array_equal(no_dX[1], dW)
    np.testing.assert_array_equal(no_dX[2], db)
    for got, want in zip(backend.dense_backward(frozen(X), frozen(W), frozen(Y), frozen(dY),
                                                name), (dX, dW, db)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(backend.dense_backward(strided(X), np.asfortranarray(W), strided(Y),
                                                np.asfortranarray(dY), name), (dX, dW, db)):
        np.testing.assert_allclose(got, want, **_tol(dtype))
    for n_threads in (1, 2):
        for got, want in zip(backend.dense_backward(X, W, Y, dY, name, n_threads=n_threads),
                             (dX, dW, db)):
            np.testing.assert_allclose(got, want, **_tol(dtype))


LOSS_PAIRS = [("squared_error", "identity", "rows"), ("mse", "identity", "rows"),
              ("cross_entropy", "softmax", "labels"), ("cross_entropy", "softmax", "rows"),
              ("binary_cross_entropy", "sigmoid", "rows")]


@pytest.mark.parametrize("name, output, targets", LOSS_PAIRS)
def test_loss_contract(backend, name, output, targets, dtype):
    Y = gdcore.reference.activation(output, A(6, 4, dtype=dtype))
    if targets == "labels":
        T = np.array([3, 0, 1, 2, 3, 1], dtype=np.int32)
        T_strided = np.repeat(T, 2)[::2]
    else:
        T = gdcore.reference.activation("softmax", A(6, 4, dtype=dtype, seed=5))
        T_strided = strided(T)
    Y0, T0 = Y.copy(), T.copy()
    value = backend.loss(name, Y, T)
    value2, D = backend.loss_delta(name, Y, T)
    np.testing.assert_array_equal(Y, Y0)
    np.testing.assert_array_equal(T, T0)
    assert T.dtype == T0.dtype
    assert isinstance(value, float) and value == value2
    assert D.dtype == dtype and D.shape == Y.shape
    out = np.full_like(Y, np.nan)
    value3, D3 = backend.loss_delta(name, Y, T, out=out)
    assert D3 is out and value3 == value
    np.testing.assert_array_equal(out, D)
    v_ro, D_ro = backend.loss_delta(name, frozen(Y), frozen(T))
    assert v_ro == value
    np.testing.assert_array_equal(D_ro, D)
    v_nc, D_nc = backend.loss_delta(name, strided(Y), T_strided)
    assert v_nc == pytest.approx(value, rel=1e-12 if dtype == F64 else 1e-6)
    np.testing.assert_allclose(D_nc, D, **_tol(dtype))
    assert backend.loss(name, np.asfortranarray(Y), T) == pytest.approx(value, rel=1e-12)
    for n_threads in (1, 2):
        v_t, D_t = backend.loss_delta(name, Y, T, n_threads=n_threads)
        assert v_t == value
        np.testing.assert_array_equal(D_t, D)


OPT_OPTIONS = {
    "sgd": dict(lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True),
    "adagrad": dict(lr=0.1, lr_decay=0.1, weight_decay=0.1),
    "adadelta": dict(lr=0.5, weight_decay=0.1),
    "rmsprop": dict(momentum=0.5, centered=True, weight_decay=0.1),
    "adam": dict(amsgrad=True, weight_decay=0.1),
    "adamw": dict(amsgrad=True),
}
STATE_KEYS = ("momentum", "centered", "amsgrad")


def _run_optimizer(k, name, dtype, grads_of_step, n_steps=3, **call):
    params = np.linspace(-1, 1, 11).astype(dtype)
    options = OPT_OPTIONS[name]
    state = k.optimizer_state(name, params, **{key: v for key, v in options.items()
                                               if key in STATE_KEYS})
    ids = {key: id(buf) for key, buf in state.items()}
    for step in range(1, n_steps + 1):
        kwargs = {"step": step} if name in STEPPED else {}
        result = getattr(k, f"{name}_update")(params, grads_of_step(step), **state, **kwargs,
                                              **options, **call)
        assert result is params
    assert {key: id(buf) for key, buf in state.items()} == ids
    return params, state


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_contract(backend, name, dtype):
    G = [np.linspace(0.5, -0.7, 11).astype(dtype) * s for s in (1.0, -0.3, 2.0)]
    G0 = [g.copy() for g in G]
    params, state = _run_optimizer(backend, name, dtype, lambda t: G[t - 1])
    for g, g0 in zip(G, G0):
        np.testing.assert_array_equal(g, g0)
    assert params.dtype == dtype
    assert not np.array_equal(params, np.linspace(-1, 1, 11).astype(dtype))
    for buf in state.values():
        assert buf.dtype == dtype and buf.shape == params.shape
    variants = {
        "readonly grads": lambda t: frozen(G[t - 1]),
        "strided grads": lambda t: strided(G[t - 1]),
    }
    for what, grads_of_step in variants.items():
        p2, s2 = _run_optimizer(backend, name, dtype, grads_of_step)
        np.testing.assert_array_equal(p2, params, err_msg=what)
        for key in state:
            np.testing.assert_array_equal(s2[key], state[key], err_msg=f"{what}: {key}")
    for n_threads in (1, 2):
        p3, s3 = _run_optimizer(backend, name, dtype, lambda t: G[t - 1], n_threads=n_threads)
        np.testing.assert_array_equal(p3, params)
        for key in state:
            np.testing.assert_array_equal(s3[key], state[key])


@pytest.mark.parametrize("n_samples, n_in, n_out", [(0, 3, 2), (4, 0, 2), (4, 3, 0),
                                                    (1, 1, 1), (7, 5, 3), (300, 17, 9)])
def test_dense_layer_shapes_including_empty(backend, n_samples, n_in, n_out, dtype):
    X, W = A(n_samples, n_in, dtype=dtype), A(n_in, n_out, dtype=dtype, seed=1)
    b, dY = A(n_out, dtype=dtype, seed=2), A(n_samples, n_out, dtype=dtype, seed=3)
    X64, W64 = X.astype(F64), W.astype(F64)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == F64 else dict(rtol=1e-4,
                                                                   atol=1e-5 * max(n_in, 1))
    Y = backend.dense_forward(X, W, b, "tanh")
    assert Y.shape == (n_samples, n_out) and Y.dtype == dtype
    np.testing.assert_allclose(Y, np.tanh(X64 @ W64 + b), **tol)
    dX, dW, db = backend.dense_backward(X, W, Y, dY, "identity")
    assert (dX.shape, dW.shape, db.shape) == ((n_samples, n_in), (n_in, n_out), (n_out,))
    assert dX.dtype == dW.dtype == db.dtype == dtype
    D = dY.astype(F64)
    np.testing.assert_allclose(dX, D @ W64.T, **tol)
    np.testing.assert_allclose(dW, X64.T @ D, **tol)
    np.testing.assert_allclose(db, D.sum(axis=0), **dict(tol, atol=tol["atol"] * 30))
    # Garbage in the out= buffers must be overwritten, also for empty reductions.
    outs = dict(dX_out=np.full((n_samples, n_in), np.nan, dtype),
                dW_out=np.full((n_in, n_out), np.nan, dtype),
                db_out=np.full(n_out, np.nan, dtype))
    res = backend.dense_backward(X, W, Y, dY, "identity", **outs)
    for got, want in zip(res, (dX, dW, db)):
        np.testing.assert_array_equal(got, want)
