"""Micro-benchmarks of single kernel calls (pytest-benchmark), native beside reference.

In the normal test run (``addopts = --benchmark-disable``) each benchmark body runs
once, untimed, and each test checks that the native and the reference kernels agree
on the case it times.  To time them::

    pytest --benchmark-enable --benchmark-only tests/test_micro_benchmarks.py

Native and reference rows of one case share a benchmark group, so the table shows
them side by side.  Everything runs on one thread: ``n_threads=1`` for the native
kernels and NumPy's BLAS limited to one thread (threadpoolctl) for the reference.
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose

pytest.importorskip("pytest_benchmark")
from threadpoolctl import threadpool_limits  # noqa: E402

import gdcore.kernels  # noqa: E402
import gdcore.reference  # noqa: E402

BACKENDS = {"native": gdcore.kernels, "reference": gdcore.reference}
backends = pytest.mark.parametrize("backend", list(BACKENDS))

# float32 tolerances of the project's tests (STYLE.md): elementwise, exp/log, and
# GEMM with an absolute part scaled by the reduction length
RTOL_ELEMENTWISE = 1e-6
RTOL_EXP = 1e-5
RTOL_GEMM = 1e-4


def gemm_atol(n_reduce, scale=1.0):
    return 4 * n_reduce * np.finfo(np.float32).eps * scale


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(20240607)


def dense_layer(rng, n_samples, n_in, n_out):
    X = rng.standard_normal((n_samples, n_in), dtype=np.float32)
    W = rng.standard_normal((n_in, n_out), dtype=np.float32) / np.float32(np.sqrt(n_in))
    b = rng.standard_normal(n_out, dtype=np.float32) * np.float32(0.1)
    return X, W, b


@backends
@pytest.mark.benchmark(group="adam_update float32 n=1e4")
def test_adam_update_1e4(benchmark, backend, rng):
    kernels = BACKENDS[backend]
    n = 10_000
    p0 = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    m0 = rng.standard_normal(n, dtype=np.float32) * np.float32(0.1)
    v0 = rng.standard_normal(n, dtype=np.float32) ** 2 * np.float32(0.01)

    # the timed call: a steady-state step (step > 1) on preallocated state
    p, m, v = p0.copy(), m0.copy(), v0.copy()
    benchmark(kernels.adam_update, p, g, m, v, step=2, lr=1e-3, n_threads=1)

    # one step of each backend from the same state agrees, every buffer
    g_before = g.copy()
    results = {}
    for name, k in BACKENDS.items():
        bufs = (p0.copy(), m0.copy(), v0.copy())
        k.adam_update(bufs[0], g, bufs[1], bufs[2], step=2, lr=1e-3, n_threads=1)
        results[name] = bufs
    for native, reference in zip(results["native"], results["reference"]):
        assert_allclose(native, reference, rtol=RTOL_ELEMENTWISE, atol=0)
    np.testing.assert_array_equal(g, g_before)


@backends
@pytest.mark.benchmark(group="dense_forward float32 128x784 @ 784x256 + b, relu")
def test_dense_forward_128x784x256_relu(benchmark, backend, rng):
    X, W, b = dense_layer(rng, 128, 784, 256)
    out = np.empty((128, 256), dtype=np.float32)
    Y = benchmark(BACKENDS[backend].dense_forward, X, W, b, "relu", out=out, n_threads=1)
    assert Y is out

    other = "reference" if backend == "native" else "native"
    Y_other = BACKENDS[other].dense_forward(X, W, b, "relu", n_threads=1)
    assert_allclose(Y, Y_other, rtol=RTOL_GEMM, atol=gemm_atol(784))


@backends
@pytest.mark.benchmark(group="dense_backward float32 batch 1, 784 -> 256, relu")
def test_dense_backward_batch1_784x256(benchmark, backend, rng):
    X, W, b = dense_layer(rng, 1, 784, 256)
    Y = gdcore.reference.dense_forward(X, W, b, "relu")
    dY = rng.standard_normal((1, 256), dtype=np.float32)
    bufs = dict(dX_out=np.empty((1, 784), np.float32), dW_out=np.empty((784, 256), np.float32),
                db_out=np.empty(256, np.float32), delta_out=np.empty((1, 256), np.float32))
    dX, dW, db = benchmark(BACKENDS[backend].dense_backward, X, W, Y, dY, "relu",
                           **bufs, n_threads=1)
    assert dX is bufs["dX_out"] and dW is bufs["dW_out"] and db is bufs["db_out"]

    other = "reference" if backend == "native" else "native"
    dX_o, dW_o, db_o = BACKENDS[other].dense_backward(X, W, Y, dY, "relu", n_threads=1)
    # dW = X^T D is an outer product at batch 1: one product per element
    assert_allclose(dW, dW_o, rtol=RTOL_ELEMENTWISE, atol=0)
    assert_allclose(db, db_o, rtol=RTOL_ELEMENTWISE, atol=0)
    assert_allclose(dX, dX_o, rtol=RTOL_GEMM, atol=gemm_atol(256, np.abs(dY).max()))


@backends
@pytest.mark.benchmark(group="loss_delta cross_entropy float32 128x10, int labels")
def test_loss_delta_cross_entropy_128x10(benchmark, backend, rng):
    Y = gdcore.reference.activation(
        "softmax", rng.standard_normal((128, 10), dtype=np.float32))
    T = rng.integers(0, 10, 128)
    out = np.empty_like(Y)
    value, D = benchmark(BACKENDS[backend].loss_delta, "cross_entropy", Y, T, out=out,
                         n_threads=1)
    assert D is out

    other = "reference" if backend == "native" else "native"
    value_o, D_o = BACKENDS[other].loss_delta("cross_entropy", Y, T, n_threads=1)
    assert isinstance(value, float)
    assert value == pytest.approx(value_o, rel=RTOL_EXP)
    assert_allclose(D, D_o, rtol=RTOL_ELEMENTWISE, atol=0)
