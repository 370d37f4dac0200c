"""The native kernels (``gdcore.kernels``) against their NumPy twins (``gdcore.reference``).

Every kernel runs on float32 and float64, with 1 and 2 threads, on shapes that include
0, 1, odd sizes and sizes above every chunk or thread threshold of the native code
(``gdcore.kernels.THRESHOLDS``, the loss chunks of 128 rows, the bias-gradient column
blocks of 64).  Inputs are read-only and compared with copies afterwards; ``out=``
buffers sit inside guard zones that must not be written.

Tolerances (STYLE.md): bitwise where both sides perform the same
operations in the same order (relu, identity, the sigmoid/tanh backward passes, loss
deltas, the bias gradient, every optimizer update); exp/tanh-based values within a few
ulp; GEMM-based values within ``rtol`` plus an ``atol`` that grows with the reduction
length (NumPy calls its own OpenBLAS, gdcore calls SciPy's, split into row blocks).
"""
import inspect
import zlib

import numpy as np
import pytest

import gdcore.kernels as K
import gdcore.reference as R
from conftest import readonly

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "softmax",
               # the parametrised ones, at their defaults and with other parameters
               "leaky_relu", ("leaky_relu", {"negative_slope": 0.2}), "elu",
               ("elu", {"alpha": 0.5}), "gelu", ("gelu", {"approximate": "tanh"}),
               "softplus", ("softplus", {"beta": 2.0, "threshold": 5.0}), "silu"]
# activations whose derivative needs the pre-activation U (dense_backward refuses them)
NEEDS_U = ("gelu", "silu")
DENSE_ACTIVATIONS = [a for a in ACTIVATIONS if (a if isinstance(a, str) else a[0]) not in NEEDS_U]
# the output activation each loss pairs with
LOSS_OUTPUT = {"squared_error": "identity", "mse": "identity", "cross_entropy": "softmax",
               "binary_cross_entropy": "sigmoid", "huber": "identity", "mae": "identity",
               "poisson": "identity"}
# activations whose forward value comes from exp/tanh/erf (NumPy's or SciPy's vs libm or
# gdcore's own)
EXP_BASED = ("sigmoid", "tanh", "softmax", "elu", "gelu", "softplus", "silu")
# backward passes that are not the reference's operations on the same values
APPROX_BACKWARD = ("softmax", "gelu", "softplus", "silu")


def base(name):
    """The name of an activation or loss spec."""
    return name if isinstance(name, str) else name[0]


def stored(name, U, Y):
    """What activation_backward takes: the output Y, the pre-activation for gelu/silu."""
    return U if base(name) in NEEDS_U else Y

# elementwise shapes: empty, single, odd, and above the 2-thread threshold
# (2 * 32768 elements) with an odd row length
ELEMENTWISE_SHAPES = [(0, 5), (4, 0), (0, 0), (1, 1), (1, 9), (7, 1), (13, 17), (257, 301)]
# dense layers (n_samples, n_in, n_out): zero rows / inputs / outputs, single elements,
# one-row and one-column products (gemv), odd sizes, and a layer whose GEMMs exceed
# 2 x 4e6 multiply-adds and whose output spans several 64-column bias blocks with more
# than 2 x 32768 elements
DENSE_SHAPES = [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0), (1, 1, 1), (1, 7, 5), (6, 5, 1),
                (7, 13, 5), (33, 70, 67), (600, 129, 131)]
# loss shapes: more than 128 rows (several chunks of 128 rows, two threads) and more
# rows than 256 such chunks hold (the chunks then grow to 157 rows)
LOSS_SHAPES = [(0, 3), (1, 1), (1, 5), (7, 3), (13, 1), (300, 9), (700, 97), (40000, 2)]
OPT_SIZES = [0, 1, 17, 200003]

_T = K.THRESHOLDS


def threads_used(*works):
    """[1, 2] when some (work, per-thread threshold) pair gives the kernel two threads,
    else [1]: below every threshold n_threads=2 takes the 1-thread path, an exact re-run."""
    return [1, 2] if any(work >= 2 * limit for work, limit in works) else [1]


def elementwise_threads(shape):
    return threads_used((shape[0] * shape[1], _T["elementwise_min_per_thread"]))


def dense_threads(shape):
    n, n_in, n_out = shape
    return threads_used((n * n_in * n_out, _T["gemm_min_per_thread"]),
                        (n * n_out, _T["elementwise_min_per_thread"]))


def loss_threads(shape):
    # the row chunks hold at least 128 rows: a second thread needs a second chunk
    rows, n_out = shape
    return threads_used((rows * max(n_out, 1) if rows > 128 else 0,
                         _T["elementwise_min_per_thread"]))


def optimizer_threads(n):
    return threads_used((n, _T["optimizer_min_per_thread"]))


# --- helpers -----------------------------------------------------------------------------

def _rng(*key):
    """A generator seeded by the test's parameters (stable across processes)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def exp_tol(dtype):
    """Values of exp/tanh: NumPy's implementation vs gdcore's, each within ~2 ulp."""
    return dict(rtol=1e-5, atol=1e-7) if dtype == F32 else dict(rtol=1e-12, atol=1e-15)


def gemm_tol(dtype, k, scale=1.0):
    """A GEMM with reduction length k over entries of magnitude <= ~scale."""
    k = max(k, 1)
    if dtype == F32:
        return dict(rtol=1e-4, atol=1e-6 * k * scale)
    return dict(rtol=1e-10, atol=1e-13 * k * scale)


def guarded(shape, dtype, fill=np.nan, pad=19):
    """A C-contiguous buffer of ``shape`` filled with ``fill``, inside a larger array whose
    margins must stay untouched; returns (buffer, check) where check() asserts that."""
    size = int(np.prod(shape))
    whole = np.full(size + 2 * pad, 12345.0, dtype=dtype)
    buf = whole[pad:pad + size].reshape(shape)
    buf[...] = fill

    def check():
        np.testing.assert_array_equal(whole[:pad], 12345.0, err_msg="wrote before out=")
        np.testing.assert_array_equal(whole[pad + size:], 12345.0, err_msg="wrote after out=")

    return buf, check


def assert_untouched(arrays, copies):
    for name, a in arrays.items():
        if a is None:
            continue
        np.testing.assert_array_equal(a, copies[name], err_msg=f"input {name} was modified")
        assert a.dtype == copies[name].dtype


def frozen_inputs(**arrays):
    """Read-only copies of the inputs and pristine copies to compare with afterwards."""
    ro = {k: (readonly(a) if a is not None else None) for k, a in arrays.items()}
    copies = {k: a.copy() for k, a in ro.items() if a is not None}
    return ro, copies


def pre_activations(rng, shape, dtype):
    """U with moderate values, saturating values, exact zeros and a few large ones."""
    U = rng.normal(0.0, 3.0, size=shape)
    flat = U.reshape(-1)
    flat[::11] = 0.0
    flat[5::23] = 40.0
    flat[7::29] = -40.0
    return U.astype(dtype)


def activation_tol(name, dtype):
    if base(name) in ("gelu", "softplus", "elu"):
        # erf / expm1 / log1p near cancellation: absolute errors of a few ulp of 1
        return dict(rtol=1e-5, atol=1e-6) if dtype == F32 else dict(rtol=1e-12, atol=1e-14)
    return exp_tol(dtype) if base(name) in EXP_BASED else None


def assert_matches(got, want, tol, err_msg=""):
    if tol is None:
        np.testing.assert_array_equal(got, want, err_msg=err_msg)
    else:
        np.testing.assert_allclose(got, want, err_msg=err_msg, **tol)


# --- API parity -------------------------------------------------------------------------

PUBLIC = ["activation", "activation_backward", "dense_forward", "dense_backward", "loss",
          "loss_delta", "optimizer_state", "sgd_update", "adagrad_update",
          "adadelta_update", "rmsprop_update", "adam_update", "adamw_update", "nadam_update",
          "adamax_update", "radam_update", "rprop_update"]


@pytest.mark.parametrize("name", PUBLIC)
def test_signature_matches_reference(name):
    native, reference = inspect.signature(getattr(K, name)), inspect.signature(getattr(R, name))
    as_tuples = lambda sig: [(p.name, p.kind, p.default) for p in sig.parameters.values()]
    assert as_tuples(native) == as_tuples(reference)


def test_all_names_exist_and_cover_the_reference_kernels():
    for name in K.__all__:
        assert hasattr(K, name), name
    assert set(PUBLIC) <= set(K.__all__)
    assert set(PUBLIC) <= set(R.__all__)
    assert K.ISA in K.ISAS


# --- activations -----------------------------------------------------------------------

@pytest.mark.parametrize("shape, n_threads", [
    pytest.param(s, t, id=f"{s}-{t}thread") for s in ELEMENTWISE_SHAPES
    for t in elementwise_threads(s)])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(name, shape, dtype, n_threads):
    rng = _rng("act", name, shape, dtype)
    (ro, copies) = frozen_inputs(U=pre_activations(rng, shape, dtype))
    want = R.activation(name, ro["U"])
    got = K.activation(name, ro["U"], n_threads=n_threads)
    assert got.dtype == dtype and got.shape == shape and got.flags.c_contiguous
    assert_matches(got, want, activation_tol(name, dtype))
    out, check = guarded(shape, dtype)
    assert K.activation(name, ro["U"], out=out, n_threads=n_threads) is out
    np.testing.assert_array_equal(out, got)
    check()
    assert_untouched(ro, copies)
    # in place: out may be U itself
    inplace = copies["U"].copy()
    assert K.activation(name, inplace, out=inplace, n_threads=n_threads) is inplace
    np.testing.assert_array_equal(inplace, got)


@pytest.mark.parametrize("shape, n_threads", [
    pytest.param(s, t, id=f"{s}-{t}thread") for s in ELEMENTWISE_SHAPES
    for t in elementwise_threads(s)])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward(name, shape, dtype, n_threads):
    rng = _rng("actb", name, shape, dtype)
    U = pre_activations(rng, shape, dtype)
    Y = stored(name, U, R.activation(name, U))
    dY = rng.normal(size=shape).astype(dtype)
    ro, copies = frozen_inputs(Y=Y, dY=dY)
    want = R.activation_backward(name, ro["Y"], ro["dY"])
    got = K.activation_backward(name, ro["Y"], ro["dY"], n_threads=n_threads)
    assert got.dtype == dtype and got.shape == shape
    if base(name) in APPROX_BACKWARD:
        # softmax: sum(dY * Y) per row, NumPy's pairwise float sum vs gdcore's float64
        # sum; the others: exp/erf/tanh of NumPy or SciPy vs libm or gdcore's own
        rtol = 1e-6 if dtype == F32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=rtol,
                                   atol=rtol * (np.abs(dY).max(initial=0) + 1))
    else:
        # same operations in the same order: dY * Y * (1 - Y), dY * (1 - Y * Y), ...
        np.testing.assert_array_equal(got, want)
    out, check = guarded(shape, dtype)
    assert K.activation_backward(name, ro["Y"], ro["dY"], out=out, n_threads=n_threads) is out
    np.testing.assert_array_equal(out, got)
    check()
    assert_untouched(ro, copies)
    inplace = dY.copy()
    assert K.activation_backward(name, ro["Y"], inplace, out=inplace,
                                 n_threads=n_threads) is inplace
    np.testing.assert_array_equal(inplace, got)


def test_relu_of_negative_zero_matches_reference_bitwise(dtype):
    # numpy.maximum(-0.0, 0) is +0.0; gdcore's relu claims to behave as numpy.maximum
    U = np.array([[-0.0, 0.0, -1.0, np.nan, 2.0, -0.0]], dtype=dtype)
    want = R.activation("relu", U)
    for n_threads in (1, 2):
        got = K.activation("relu", U, n_threads=n_threads)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want),
                                      err_msg="sign of zero differs from the reference")


def special_values(dtype):
    """Infinities, NaN, signed zeros, subnormals, the overflow edges of exp, and ordinary
    values, in an odd-length array."""
    info = np.finfo(dtype)
    special = [np.inf, -np.inf, np.nan, 0.0, -0.0, float(info.max), -float(info.max),
               float(info.tiny), float(info.smallest_subnormal), 1e4, -1e4, 88.7, -88.7,
               89.0, -104.0, 709.0, -709.0, 710.0, -746.0, 0.625, -0.625, 20.0, -20.0]
    ordinary = np.random.default_rng(8).normal(0, 30, 200)
    with np.errstate(over="ignore"):
        return np.concatenate([np.array(special).astype(dtype), ordinary.astype(dtype)])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_of_special_values_matches_reference(name, dtype):
    v = special_values(dtype)
    for U in (v.reshape(1, -1), v.reshape(-1, 1), v[:221].reshape(-1, 13)):
        with np.errstate(all="ignore"):
            want = R.activation(name, U)
            dY = np.resize(v[::-1], U.size).reshape(U.shape)
            want_D = R.activation_backward(name, stored(name, U, want), dY)
        got = K.activation(name, U)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg="NaN positions")
        tol = activation_tol(name, dtype)
        if tol is not None:
            np.testing.assert_allclose(got, want, **tol)
        else:
            np.testing.assert_array_equal(got, want)
        got_D = K.activation_backward(name, stored(name, U, want), dY)
        np.testing.assert_array_equal(np.isnan(got_D), np.isnan(want_D),
                                      err_msg="NaN positions of the backward pass")
        if base(name) not in APPROX_BACKWARD:
            np.testing.assert_array_equal(got_D, want_D)
        elif name != "softmax":
            # slopes from exp/erf/tanh: a few ulp of the slope (near 1) times dY
            eps = 1e-6 if dtype == F32 else 1e-14
            with np.errstate(all="ignore"):
                err = np.abs(got_D.astype(np.float64) - want_D)
                bound = 10 * eps * np.abs(want_D.astype(np.float64)) + eps * np.abs(
                    dY.astype(np.float64))
            finite = np.isfinite(want_D)
            assert np.all(err[finite] <= bound[finite])
            np.testing.assert_array_equal(got_D[~finite], want_D[~finite])


# --- dense layers ----------------------------------------------------------------------

def _layer(rng, shape, dtype):
    n_samples, n_in, n_out = shape
    X = rng.uniform(-1, 1, (n_samples, n_in)).astype(dtype)
    W = rng.uniform(-1, 1, (n_in, n_out)).astype(dtype)
    b = rng.uniform(-1, 1, n_out).astype(dtype)
    return X, W, b


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("shape, n_threads", [
    pytest.param(s, t, id=f"{s}-{t}thread") for s in DENSE_SHAPES for t in dense_threads(s)])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_forward(name, shape, with_bias, dtype, n_threads):
    rng = _rng("fwd", name, shape, dtype)
    X, W, b = _layer(rng, shape, dtype)
    ro, copies = frozen_inputs(X=X, W=W, b=b if with_bias else None)
    want = R.dense_forward(ro["X"], ro["W"], ro["b"], name)
    got = K.dense_forward(ro["X"], ro["W"], ro["b"], name, n_threads=n_threads)
    assert got.shape == (shape[0], shape[2]) and got.dtype == dtype
    np.testing.assert_allclose(got, want, **gemm_tol(dtype, shape[1]))
    if shape[1] == 0:
        # no inputs: U is the bias (or 0), exactly
        U = np.broadcast_to(b if with_bias else np.zeros_like(b), got.shape)
        assert_matches(got, R.activation(name, np.ascontiguousarray(U)),
                       activation_tol(name, dtype))
    out, check = guarded(got.shape, dtype)
    assert K.dense_forward(ro["X"], ro["W"], ro["b"], name, out=out, n_threads=n_threads) is out
    np.testing.assert_array_equal(out, got)
    check()
    assert_untouched(ro, copies)


def sequential_column_sums(D):
    """Column sums of D with the rows added in order, in float64 (np.cumsum is a
    sequential scan; np.sum may add pairwise)."""
    if D.shape[0] == 0:
        return np.zeros(D.shape[1], dtype=D.dtype)
    return np.cumsum(D, axis=0, dtype=np.float64)[-1].astype(D.dtype)


def _check_backward_result(result, want, shape, name, dtype, compute_dX, D_ref):
    dX, dW, db = result
    n_samples, n_in, n_out = shape
    assert dW.shape == (n_in, n_out) and db.shape == (n_out,)
    assert dW.dtype == db.dtype == dtype
    # dW = X^T D reduces over the samples, dX = D W^T over the outputs
    np.testing.assert_allclose(dW, want[1], **gemm_tol(dtype, n_samples))
    if base(name) in APPROX_BACKWARD:
        # D itself differs by rounding (see test_activation_backward)
        np.testing.assert_allclose(db, want[2], **gemm_tol(dtype, n_samples))
    else:
        # the rows of the same D added in order, in float64
        np.testing.assert_array_equal(db, sequential_column_sums(D_ref))
        if n_out != 1:
            # NumPy's D.sum(axis=0) adds rows in order too, except for a single column,
            # which it sums pairwise (see test_bias_gradient_of_one_output_is_the_reference)
            np.testing.assert_array_equal(db, want[2])
        else:
            np.testing.assert_allclose(db, want[2], rtol=1e-15 if dtype == F64 else 1e-7,
                                       atol=1e-15 * n_samples)
    if compute_dX:
        assert dX.shape == (n_samples, n_in) and dX.dtype == dtype
        np.testing.assert_allclose(dX, want[0], **gemm_tol(dtype, n_out))
    else:
        assert dX is None


@pytest.mark.parametrize("compute_dX", [True, False], ids=["dX", "no-dX"])
@pytest.mark.parametrize("shape, n_threads", [
    pytest.param(s, t, id=f"{s}-{t}thread") for s in DENSE_SHAPES for t in dense_threads(s)])
@pytest.mark.parametrize("name", DENSE_ACTIVATIONS)
def test_dense_backward(name, shape, compute_dX, dtype, n_threads):
    rng = _rng("bwd", name, shape, dtype)
    X, W, b = _layer(rng, shape, dtype)
    Y = R.dense_forward(X, W, b, name)
    dY = rng.uniform(-1, 1, Y.shape).astype(dtype)
    ro, copies = frozen_inputs(X=X, W=W, Y=Y, dY=dY)
    args = (ro["X"], ro["W"], ro["Y"], ro["dY"], name)
    want = R.dense_backward(*args, compute_dX=compute_dX)
    D_ref = R.activation_backward(name, Y, dY)
    got = K.dense_backward(*args, compute_dX=compute_dX, n_threads=n_threads)
    _check_backward_result(got, want, shape, name, dtype, compute_dX, D_ref)

    # every out= buffer given (including the delta workspace)
    n_samples, n_in, n_out = shape
    dX_out, check_dX = guarded((n_samples, n_in), dtype)
    dW_out, check_dW = guarded((n_in, n_out), dtype)
    db_out, check_db = guarded((n_out,), dtype)
    delta_out, check_delta = guarded((n_samples, n_out), dtype)
    result = K.dense_backward(*args, compute_dX=compute_dX, dX_out=dX_out, dW_out=dW_out,
                              db_out=db_out, delta_out=delta_out, n_threads=n_threads)
    assert result[1] is dW_out and result[2] is db_out
    if compute_dX:
        assert result[0] is dX_out
        np.testing.assert_array_equal(dX_out, got[0])
    else:
        assert result[0] is None
        assert np.isnan(dX_out).all(), "dX_out written although compute_dX=False"
    np.testing.assert_array_equal(dW_out, got[1])
    np.testing.assert_array_equal(db_out, got[2])
    if name == "identity":
        # documented in gdcore.kernels.dense_backward: D is dY itself, the workspace is
        # checked but not written
        assert np.isnan(delta_out).all()
    elif base(name) in APPROX_BACKWARD:
        rtol = 1e-6 if dtype == F32 else 1e-12
        np.testing.assert_allclose(delta_out, D_ref, rtol=rtol, atol=rtol)
        # db is the float64 row-by-row sum of the D the kernel used
        np.testing.assert_array_equal(
            db_out, delta_out.sum(axis=0, dtype=np.float64).astype(dtype))
    else:
        np.testing.assert_array_equal(delta_out, D_ref)
    for check in (check_dX, check_dW, check_db, check_delta):
        check()

    # only some buffers given
    dW_only = np.full((n_in, n_out), np.nan, dtype)
    partial = K.dense_backward(*args, compute_dX=compute_dX, dW_out=dW_only,
                               n_threads=n_threads)
    assert partial[1] is dW_only
    for a, c in zip(partial, got):
        if c is None:
            assert a is None
        else:
            np.testing.assert_array_equal(a, c)
    assert_untouched(ro, copies)


@pytest.mark.parametrize("name", ["gelu", ("silu", {})])
def test_dense_backward_refuses_activations_that_need_the_pre_activation(name):
    X, W = np.ones((2, 3)), np.ones((3, 4))
    Y = dY = np.ones((2, 4))
    for module in (K, R):
        with pytest.raises(ValueError, match=f"activation '{base(name)}' needs the pre-activation"):
            module.dense_backward(X, W, Y, dY, name)


def test_bias_gradient_of_one_output_is_the_reference(dtype):
    """db for n_out == 1 must be the reference's bits, as for every other width: the
    reference (np.sum over axis 0 of an (n, 1) array) sums pairwise, gdcore row by row."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (64, 3)).astype(dtype)
    W = rng.uniform(-1, 1, (3, 1)).astype(dtype)
    Y = R.dense_forward(X, W, None, "identity")
    dY = rng.uniform(-1, 1, Y.shape).astype(dtype)
    got = K.dense_backward(X, W, Y, dY, "identity")[2]
    want = R.dense_backward(X, W, Y, dY, "identity")[2]
    assert got.tobytes() == want.tobytes(), f"db {got!r} vs reference {want!r}"


# --- losses ----------------------------------------------------------------------------

def _loss_inputs(rng, name, targets, shape, dtype):
    n_samples, n_out = shape
    U = rng.normal(0, 2, shape)
    Y = R.activation(LOSS_OUTPUT[base(name)], U.astype(dtype))
    if targets == "labels":
        T = rng.integers(0, n_out, n_samples)
    elif targets in ("one-hot", "soft") and n_out == 0:
        T = np.zeros(shape, dtype=dtype)
    elif targets == "one-hot":
        T = np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, n_samples)]
    elif targets == "soft":
        T = rng.dirichlet(np.ones(n_out), n_samples).astype(dtype)
    elif targets == "1-D":
        T = rng.uniform(0, 1, n_samples).astype(dtype)
    elif name == "binary_cross_entropy":
        T = rng.integers(0, 2, shape).astype(dtype)
        T.reshape(-1)[::3] = 0.3         # soft labels as well
    elif base(name) == "poisson":
        T = rng.poisson(np.exp(U)).astype(dtype)          # counts of rate exp(U)
    else:
        T = rng.normal(0, 1, shape).astype(dtype)
    if base(name) in ("mae", "huber") and T.size:
        T.reshape(-1)[::5] = Y.reshape(-1)[::5]           # Y == T: mae's sign(0) = 0
    if base(name) == "poisson" and targets == "1-D":
        T = rng.poisson(2.0, n_samples).astype(dtype)
    return Y, T


LOSS_CASES = [("squared_error", "rows"), ("squared_error", "1-D"), ("mse", "rows"),
              ("mse", "1-D"), ("cross_entropy", "labels"), ("cross_entropy", "one-hot"),
              ("cross_entropy", "soft"), ("binary_cross_entropy", "rows"),
              ("binary_cross_entropy", "1-D"), ("huber", "rows"), ("huber", "1-D"),
              (("huber", {"delta": 0.3}), "rows"), ("mae", "rows"), ("mae", "1-D"),
              ("poisson", "rows"), ("poisson", "1-D")]
# losses whose delta comes from exp (NumPy's vs gdcore's own)
EXP_DELTA = ("poisson",)


def _loss_shapes(name, targets):
    if targets == "1-D":
        return [(0, 1), (1, 1), (13, 1), (300, 1), (70000, 1)]
    shapes = list(LOSS_SHAPES)
    if targets != "labels":
        shapes.append((5, 0))        # no outputs: D is empty, the loss 0 (or -0.0)
    return shapes


@pytest.mark.parametrize("name, targets, shape, n_threads", [
    pytest.param(n, t, s, nt, id=f"{n}-{t}-{s}-{nt}thread") for n, t in LOSS_CASES
    for s in _loss_shapes(n, t) for nt in loss_threads(s)])
def test_loss_and_loss_delta(name, targets, shape, dtype, n_threads):
    rng = _rng("loss", name, targets, shape, dtype)
    Y, T = _loss_inputs(rng, name, targets, shape, dtype)
    ro, copies = frozen_inputs(Y=Y, T=T)
    want_value, want_D = R.loss_delta(name, ro["Y"], ro["T"])
    # read-only inputs of loss(): test_loss_accepts_read_only_inputs
    value = K.loss(name, copies["Y"].copy(), copies["T"].copy(), n_threads=n_threads)
    value2, D = K.loss_delta(name, ro["Y"], ro["T"], n_threads=n_threads)
    assert type(value) is float and type(value2) is float
    if shape[0] == 0:
        assert np.isnan(value) and np.isnan(value2) and np.isnan(want_value)
    else:
        # both accumulate in float64, in different orders
        assert value == pytest.approx(want_value, rel=1e-12, abs=1e-300)
        assert value2 == value
    assert D.shape == shape and D.dtype == dtype
    assert_matches(D, want_D, exp_tol(dtype) if base(name) in EXP_DELTA else None)
    out, check = guarded(shape, dtype)
    value3, D3 = K.loss_delta(name, ro["Y"], ro["T"], out=out, n_threads=n_threads)
    assert D3 is out
    np.testing.assert_array_equal(out, D)
    assert value3 == value or (np.isnan(value3) and np.isnan(value))
    check()
    assert_untouched(ro, copies)


@pytest.mark.parametrize("targets", ["labels", "rows"])
def test_loss_accepts_read_only_inputs(targets, dtype, n_threads):
    """loss() only reads Y and T (both native entry points: labels and target rows)."""
    for name, kind in LOSS_CASES:
        if (kind == "labels") != (targets == "labels"):
            continue
        rng = _rng("loss-ro", name, kind, dtype)
        shape = (300, 1) if kind == "1-D" else (300, 4)
        Y, T = _loss_inputs(rng, name, kind, shape, dtype)
        ro, copies = frozen_inputs(Y=Y, T=T)
        try:
            value = K.loss(name, ro["Y"], ro["T"], n_threads=n_threads)
        except ValueError as exc:
            pytest.fail(f"loss({name!r}) with read-only {kind} inputs raised: {exc}")
        assert value == pytest.approx(R.loss(name, Y, T), rel=1e-12)
        assert value == K.loss_delta(name, ro["Y"], ro["T"], n_threads=n_threads)[0]
        assert_untouched(ro, copies)


def test_cross_entropy_soft_row_delta_is_bitwise(dtype):
    """D = (Y * sum_k T_k - T) / B: the contract asks for the reference's bits."""
    rng = np.random.default_rng(7)
    Y = R.activation("softmax", rng.normal(size=(50, 9)).astype(dtype))
    T = rng.dirichlet(np.ones(9), 50).astype(dtype)
    want = R.loss_delta("cross_entropy", Y, T)[1]
    got = K.loss_delta("cross_entropy", Y, T)[1]
    mismatched = np.argwhere(got != want)
    assert mismatched.size == 0, (
        f"{len(mismatched)} of {got.size} entries differ, e.g. at {tuple(mismatched[0])}: "
        f"{got[tuple(mismatched[0])]!r} vs reference {want[tuple(mismatched[0])]!r}")


@pytest.mark.parametrize("name", ["cross_entropy", "binary_cross_entropy"])
def test_saturated_probabilities_give_the_reference_loss(name, dtype, n_threads):
    # outputs of exactly 0 and 1: the logarithms see clipped probabilities on both sides
    rng = np.random.default_rng(3)
    Y = rng.uniform(0, 1, (300, 4)).astype(dtype)
    Y[::3, 0] = 0.0
    Y[1::3, 1] = 1.0
    T = (rng.uniform(size=Y.shape) < 0.5).astype(dtype)
    if name == "cross_entropy":
        T = np.eye(4, dtype=dtype)[rng.integers(0, 4, 300)]
        labels = T.argmax(axis=1)
        value = K.loss(name, Y, labels, n_threads=n_threads)
        assert np.isfinite(value)
        assert value == pytest.approx(R.loss(name, Y, labels), rel=1e-12)
    value, D = K.loss_delta(name, Y, T, n_threads=n_threads)
    want_value, want_D = R.loss_delta(name, Y, T)
    assert np.isfinite(value)
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_array_equal(D, want_D)


# --- optimizers ------------------------------------------------------------------------

STATE_OPTIONS = ("momentum", "centered", "amsgrad", "initial_accumulator_value")
STEPPED = ("sgd", "adagrad", "adam", "adamw", "nadam", "adamax", "radam")
OPT_CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.8, dampening=0.3)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("sgd", dict(lr=0.1, weight_decay=0.01)),
    ("sgd", dict(lr=0.03, momentum=0.7, weight_decay=0.1, nesterov=True)),
    ("adagrad", dict()),
    ("adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("adagrad", dict(lr=0.1, initial_accumulator_value=0.3)),
    ("adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, eps=1e-7,
                     initial_accumulator_value=0.1)),
    ("adadelta", dict()),
    ("adadelta", dict(weight_decay=0.05)),
    ("adadelta", dict(lr=0.5, rho=0.95, eps=1e-5)),
    ("rmsprop", dict()),
    ("rmsprop", dict(momentum=0.9)),
    ("rmsprop", dict(centered=True)),
    ("rmsprop", dict(centered=True, momentum=0.5, weight_decay=0.1)),
    ("rmsprop", dict(weight_decay=0.01, eps=1e-6)),
    ("rmsprop", dict(alpha=0.3, centered=True)),       # lerp weight 0.7 >= 0.5: other branch
    ("rmsprop", dict(alpha=0.5, centered=True, momentum=0.3)),   # weight exactly 0.5
    ("adam", dict()),
    ("adam", dict(amsgrad=True)),
    ("adam", dict(lr=0.01, weight_decay=0.1)),
    ("adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True, eps=1e-6)),
    ("adam", dict(lr=0.01, betas=(0.3, 0.5))),         # lerp weight 0.7 >= 0.5
    ("adam", dict(lr=0.01, betas=(0.5, 0.9), amsgrad=True)),     # weight exactly 0.5
    ("adamw", dict()),
    ("adamw", dict(amsgrad=True)),
    ("adamw", dict(lr=0.01, weight_decay=0.3)),
    ("adamw", dict(lr=0.01, weight_decay=0.0, amsgrad=True)),
    ("adamw", dict(lr=0.01, betas=(0.2, 0.6), weight_decay=0.05, amsgrad=True)),
    ("nadam", dict()),
    ("nadam", dict(lr=0.01, weight_decay=0.1, momentum_decay=0.02)),
    ("nadam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("nadam", dict(lr=0.01, betas=(0.3, 0.5), eps=1e-6)),          # lerp weight 0.7
    ("adamax", dict()),
    ("adamax", dict(lr=0.01, weight_decay=0.1, eps=1e-6)),
    ("adamax", dict(lr=0.01, betas=(0.3, 0.5))),
    ("radam", dict()),
    ("radam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1)),  # rectified from step 6
    ("radam", dict(lr=0.01, betas=(0.3, 0.9), weight_decay=0.1, decoupled_weight_decay=True)),
    ("rprop", dict()),
    ("rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.1))),   # clipped sizes
]
# gradient scale per step: shrinking and growing, so amsgrad's maximum matters
GRAD_SCALES = (1.0, 0.1, 3.0, 0.01, 0.5, 2.0, 0.3, 1.5)
# steps per comparison: RAdam's variance rectification starts at step 6
N_STEPS = {"radam": 8}


def split_options(name, options):
    state_kw = {k: v for k, v in options.items() if k in STATE_OPTIONS}
    update_kw = {k: v for k, v in options.items() if k != "initial_accumulator_value"}
    if name == "rprop":             # Rprop's lr is only the initial step size
        state_kw["lr"] = update_kw.pop("lr", 1e-2)
    return state_kw, update_kw


def make_grads(rng, n, dtype, n_steps, contiguous=True):
    grads = []
    for s in GRAD_SCALES[:n_steps]:
        g = (rng.normal(size=n) * s).astype(dtype)
        g[::13] = 0.0
        if not contiguous:
            wide = np.full(2 * n, np.nan, dtype=dtype)
            wide[::2] = g
            g = wide[::2]
            assert not g.flags.c_contiguous or n <= 1
        grads.append(g)
    return grads


def run_both(name, options, n, dtype, n_threads, contiguous=True, n_steps=5, seed=0):
    """Run reference and native side by side for n_steps and compare after every step."""
    rng = _rng("opt", name, sorted(options.items()), n, dtype, seed)
    state_kw, update_kw = split_options(name, options)
    p_ref = rng.normal(size=n).astype(dtype)
    p_ref[::17] = 0.0
    p_nat = p_ref.copy()
    s_ref = R.optimizer_state(name, p_ref, **state_kw)
    s_nat = K.optimizer_state(name, p_nat, **state_kw)
    assert s_ref.keys() == s_nat.keys()
    grads = make_grads(rng, n, dtype, n_steps, contiguous)
    ref_update, nat_update = getattr(R, f"{name}_update"), getattr(K, f"{name}_update")
    for step, g in enumerate(grads, start=1):
        g_copy = g.copy()
        kw = dict(update_kw, step=step) if name in STEPPED else dict(update_kw)
        assert ref_update(p_ref, g, **s_ref, **kw) is p_ref
        assert nat_update(p_nat, g, **s_nat, **kw, n_threads=n_threads) is p_nat
        np.testing.assert_array_equal(g, g_copy, err_msg="the gradient was modified")
        np.testing.assert_array_equal(p_nat, p_ref, err_msg=f"params after step {step}")
        for key in s_ref:
            assert s_nat[key].dtype == dtype
            np.testing.assert_array_equal(s_nat[key], s_ref[key],
                                          err_msg=f"{key} after step {step}")
    return p_nat, s_nat


def _optimizer_step_cases():
    """Every option set on each non-empty size, with two threads where the size uses
    them; empty buffers once per optimizer (nothing is read or written, whatever the
    options)."""
    seen = set()
    for name, options in OPT_CASES:
        opt_id = f"{name}-" + ",".join(f"{k}={v}" for k, v in options.items())
        for n in OPT_SIZES:
            if n == 0 and name in seen:
                continue
            for nt in optimizer_threads(n):
                yield pytest.param(name, options, n, nt, id=f"{opt_id}-{n}-{nt}thread")
        seen.add(name)


@pytest.mark.parametrize("name, options, n, n_threads", list(_optimizer_step_cases()))
def test_optimizer_steps_are_bitwise_the_reference(name, options, n, dtype, n_threads):
    p, state = run_both(name, options, n, dtype, n_threads, n_steps=N_STEPS.get(name, 5))
    if n > 1:
        assert np.isfinite(p).all()


@pytest.mark.parametrize("name, options", [
    pytest.param(n, o, id=f"{n}-" + ",".join(f"{k}={v}" for k, v in o.items()))
    for n, o in OPT_CASES if n in ("sgd", "rmsprop", "adam") or not o])
@pytest.mark.parametrize("n", [17, 200003])
def test_optimizer_with_non_contiguous_grads(name, options, n, dtype):
    run_both(name, options, n, dtype, n_threads=2, contiguous=False)


@pytest.mark.parametrize("name, options", [
    ("sgd", dict(lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)),
    ("adagrad", dict(lr_decay=0.1, weight_decay=0.1)),
    ("adadelta", dict(weight_decay=0.1)),
    ("rmsprop", dict(centered=True, momentum=0.5, weight_decay=0.1)),
    ("adam", dict(amsgrad=True, weight_decay=0.1)),
    ("adamw", dict(amsgrad=True)),
    ("nadam", dict(weight_decay=0.1)),
    ("nadam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("adamax", dict(weight_decay=0.1)),
    ("radam", dict(betas=(0.5, 0.9), weight_decay=0.1)),
    ("rprop", dict()),
], ids=lambda x: x if isinstance(x, str) else "")
def test_optimizer_with_non_finite_and_huge_gradients_is_bitwise_the_reference(
        name, options, dtype):
    """inf, NaN, huge and subnormal gradients follow the same operations (NaN wins in
    amsgrad's maximum, as numpy.maximum)."""
    v = special_values(dtype)
    finite = v[np.isfinite(v)]
    state_kw, update_kw = split_options(name, options)
    p_ref = np.resize(finite[::-1], v.size).astype(dtype) / 8
    p_nat = p_ref.copy()
    s_ref = R.optimizer_state(name, p_ref, **state_kw)
    s_nat = K.optimizer_state(name, p_nat, **state_kw)
    for step in range(1, 9 if name == "radam" else 5):
        g = np.roll(v, 7 * step)
        kw = dict(update_kw, step=step) if name in STEPPED else dict(update_kw)
        with np.errstate(all="ignore"):
            getattr(R, f"{name}_update")(p_ref, g, **s_ref, **kw)
        getattr(K, f"{name}_update")(p_nat, g, **s_nat, **kw)
        np.testing.assert_array_equal(p_nat, p_ref, err_msg=f"params after step {step}")
        for key in s_ref:
            np.testing.assert_array_equal(s_nat[key], s_ref[key],
                                          err_msg=f"{key} after step {step}")


# the state buffers an option adds (the others exist whatever the options)
OPTIONAL_STATE = {"momentum_buffer": "momentum", "grad_avg": "centered",
                  "max_exp_avg_sq": "amsgrad"}


def test_optimizer_state_allocates_exactly_the_update_buffers(dtype):
    """Both backends share one allocator (K.optimizer_state is R.optimizer_state); what
    it returns must be the buffers the update takes, per options, fresh and filled."""
    assert K.optimizer_state is R.optimizer_state
    params = np.linspace(-1, 1, 7).astype(dtype)
    for name, options in OPT_CASES:
        state_kw, _ = split_options(name, options)
        state = K.optimizer_state(name, params, **state_kw)
        signature = inspect.signature(getattr(K, f"{name}_update")).parameters
        buffers = [k for k in list(signature)[2:]
                   if signature[k].kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]
        wanted = {k for k in buffers
                  if k not in OPTIONAL_STATE or state_kw.get(OPTIONAL_STATE[k])}
        assert set(state) == wanted, (name, options)
        fills = {"state_sum": state_kw.get("initial_accumulator_value", 0.0),
                 "step_size": state_kw.get("lr")}
        for key, buf in state.items():
            assert buf.dtype == dtype and buf.shape == params.shape
            assert not np.shares_memory(buf, params)
            np.testing.assert_array_equal(buf, np.full(7, fills.get(key, 0), dtype),
                                          err_msg=f"{name} {key}")


def test_sgd_steps_after_the_first_use_the_momentum_rule(dtype):
    # a restart from a saved buffer (step > 1) must not re-initialise the buffer
    rng = np.random.default_rng(1)
    p_ref = rng.normal(size=33).astype(dtype)
    p_nat = p_ref.copy()
    b_ref = rng.normal(size=33).astype(dtype)
    b_nat = b_ref.copy()
    g = rng.normal(size=33).astype(dtype)
    for step in (7, 8):
        R.sgd_update(p_ref, g, b_ref, step=step, lr=0.1, momentum=0.9, dampening=0.2)
        K.sgd_update(p_nat, g, b_nat, step=step, lr=0.1, momentum=0.9, dampening=0.2)
        np.testing.assert_array_equal(p_nat, p_ref)
        np.testing.assert_array_equal(b_nat, b_ref)
