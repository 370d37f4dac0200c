"""Property-based comparison of the native kernels with their NumPy twins: random
shapes, values and hyperparameters (hypothesis), on top of the fixed cases of
test_kernels_vs_reference.py.  Skipped, as a whole, where hypothesis is not installed."""
import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import gdcore.kernels as K  # noqa: E402
import gdcore.reference as R  # noqa: E402
from test_kernels_vs_reference import (  # noqa: E402
    ACTIVATIONS, APPROX_BACKWARD, DENSE_ACTIVATIONS, EXP_DELTA, F32, F64, LOSS_CASES,
    _check_backward_result, _layer, _loss_inputs, activation_tol, assert_matches, base,
    exp_tol, gemm_tol, run_both)


DTYPE_ST = st.sampled_from([F32, F64])
THREADS_ST = st.sampled_from([1, 2])


@st.composite
def activation_inputs(draw):
    dtype = draw(DTYPE_ST)
    shape = draw(st.tuples(st.integers(0, 9), st.integers(0, 40)))
    width = 32 if dtype == F32 else 64
    U = draw(hnp.arrays(dtype, shape, elements=st.floats(-60, 60, width=width)))
    return U


@settings(max_examples=60, deadline=None)
@given(U=activation_inputs(), name=st.sampled_from(ACTIVATIONS), n_threads=THREADS_ST,
       seed=st.integers(0, 2**16))
def test_activation_random(U, name, n_threads, seed):
    dtype = U.dtype
    assert_matches(K.activation(name, U, n_threads=n_threads), R.activation(name, U),
                   activation_tol(name, dtype))
    Y = R.activation(name, U)
    dY = np.random.default_rng(seed).normal(size=U.shape).astype(dtype)
    got = K.activation_backward(name, Y, dY, n_threads=n_threads)
    want = R.activation_backward(name, Y, dY)
    if base(name) in APPROX_BACKWARD:
        rtol = 1e-6 if dtype == F32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 10)
    else:
        np.testing.assert_array_equal(got, want)


LAYER_DIMS = st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 70))


@settings(max_examples=40, deadline=None)
@given(dims=LAYER_DIMS, name=st.sampled_from(DENSE_ACTIVATIONS), dtype=DTYPE_ST,
       n_threads=THREADS_ST, with_bias=st.booleans(), compute_dX=st.booleans(),
       seed=st.integers(0, 2**16))
def test_dense_layer_random(dims, name, dtype, n_threads, with_bias, compute_dX, seed):
    rng = np.random.default_rng(seed)
    X, W, b = _layer(rng, dims, dtype)
    b = b if with_bias else None
    Y = K.dense_forward(X, W, b, name, n_threads=n_threads)
    np.testing.assert_allclose(Y, R.dense_forward(X, W, b, name), **gemm_tol(dtype, dims[1]))
    Y = R.dense_forward(X, W, b, name)
    dY = rng.uniform(-1, 1, Y.shape).astype(dtype)
    got = K.dense_backward(X, W, Y, dY, name, compute_dX=compute_dX, n_threads=n_threads)
    want = R.dense_backward(X, W, Y, dY, name, compute_dX=compute_dX)
    _check_backward_result(got, want, dims, name, dtype, compute_dX,
                           R.activation_backward(name, Y, dY))


@settings(max_examples=40, deadline=None)
@given(case=st.sampled_from([c for c in LOSS_CASES if c[1] != "soft"]),
       n_samples=st.integers(0, 300), n_out=st.integers(1, 12), dtype=DTYPE_ST,
       n_threads=THREADS_ST, seed=st.integers(0, 2**16))
def test_loss_delta_random(case, n_samples, n_out, dtype, n_threads, seed):
    name, targets = case
    if targets == "1-D":
        n_out = 1
    Y, T = _loss_inputs(np.random.default_rng(seed), name, targets, (n_samples, n_out), dtype)
    value, D = K.loss_delta(name, Y, T, n_threads=n_threads)
    want_value, want_D = R.loss_delta(name, Y, T)
    if base(name) in EXP_DELTA and D.size:
        # (exp(y) - t) / N: exp's last-ulp difference is an absolute error of exp(y)'s
        # magnitude, which cancellation against t can leave larger than rtol * |D|
        eps = np.finfo(dtype).eps
        scale = (np.exp(Y.astype(np.float64)) + np.abs(T.reshape(Y.shape))) / D.size
        assert np.all(np.abs(D - want_D) <= 1e-5 * np.abs(want_D) + 4 * eps * scale), \
            np.max(np.abs(D - want_D) / (4 * eps * scale))
    else:
        assert_matches(D, want_D, exp_tol(dtype) if base(name) in EXP_DELTA else None)
    if n_samples == 0:
        assert np.isnan(value)
    else:
        assert value == pytest.approx(want_value, rel=1e-12, abs=1e-300)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 3000), dtype=DTYPE_ST, n_threads=THREADS_ST,
       lr=st.floats(1e-5, 1.0), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.0, 0.9999),
       eps=st.floats(1e-12, 1e-2), weight_decay=st.sampled_from([0.0, 1e-3, 0.1, 0.5]),
       amsgrad=st.booleans(), decoupled=st.booleans(), n_steps=st.integers(1, 6))
def test_adam_random_hyperparameters(n, dtype, n_threads, lr, beta1, beta2, eps,
                                     weight_decay, amsgrad, decoupled, n_steps):
    options = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                   amsgrad=amsgrad)
    run_both("adamw" if decoupled else "adam", options, n, dtype, n_threads, n_steps=n_steps)
