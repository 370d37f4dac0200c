"""Narrow layers' GEMMs in row chunks (``gemm_row_chunks`` in gdcore/_blas.pxd).

On OpenBLAS cores with small-matrix kernels gdcore splits a narrow layer's Y = X @ W
and dW = X^T @ D into chunks of rows that fit those kernels.  The import turns it on
only there (CI forces OpenBLAS's Haswell kernels, where it stays off), so these tests
set the chunk size themselves: every output of the chunked layer and training step
must agree with the unchunked one and with the NumPy reference, on 1 and 2 threads,
repeat bit for bit, and leave the inputs untouched.
"""
import io

import numpy as np
import pytest

import gdcore as gd
import gdcore.kernels as K
import gdcore.reference as R
from gdcore import _blas, _openmp, optim
from gdcore._config import config_info
from conftest import assert_bitwise, dense_layer_inputs, gemm_tol

FORWARD_MIN = _blas.CHUNK_MIN_ROWS["forward"]
WEIGHT_GRAD_MIN = _blas.CHUNK_MIN_ROWS["weight_grad"]
ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "softmax"]


@pytest.fixture
def chunks():
    """Set the chunk size (multiply-adds) for one test; restore the import's choice."""
    saved = _blas.small_gemm_chunks()[1]
    yield _blas.set_small_gemm_madds
    _blas.set_small_gemm_madds(saved)


def test_import_chooses_chunks_by_openblas_core():
    core, madds = _blas.small_gemm_chunks()
    expected = (_blas.SMALL_GEMM_MADDS if str(core or "").lower() in _blas.SMALL_GEMM_CORES
                else 0)
    assert madds == expected
    info = config_info()
    assert info["blas_small_gemm"] == {"core": core, "chunk_madds": madds}
    buf = io.StringIO()
    gd.show_config(file=buf)
    line = next(l for l in buf.getvalue().splitlines() if "narrow GEMMs" in l)
    assert (f"<= {madds} multiply-adds" in line) == (madds > 0)
    assert f"OpenBLAS core {core}" in line


def test_chunk_plan(chunks):
    chunks(1_000_000)
    # 784-15 layer at batch 512: forward chunks of <= 85 rows, even (7 x 74 > 512 - 74)
    assert _blas.small_gemm_chunk_rows(512, 15, 784, FORWARD_MIN) == 74
    # dW 784 x 15 over a batch of 512: <= 130 rows, 7 chunks of 112
    assert _blas.small_gemm_chunk_rows(784, 15, 512, WEIGHT_GRAD_MIN) == 112
    # small enough already, too wide, one column (gemv), chunks below the minimum
    assert _blas.small_gemm_chunk_rows(64, 15, 784, FORWARD_MIN) == 64
    assert _blas.small_gemm_chunk_rows(512, 33, 784, FORWARD_MIN) == 512
    assert _blas.small_gemm_chunk_rows(512, 1, 784, FORWARD_MIN) == 512
    assert _blas.small_gemm_chunk_rows(784, 15, 2048, WEIGHT_GRAD_MIN) == 784
    assert _blas.small_gemm_chunk_rows(0, 15, 784, FORWARD_MIN) == 0
    # dW over a batch of 2048: rows would be 32 (< 64), so the batch is split instead:
    # all 784 rows, <= 85 terms per chunk, 25 even chunks of 82
    assert _blas.small_gemm_chunk_depth(784, 15, 2048, WEIGHT_GRAD_MIN) == 82
    assert _blas.small_gemm_chunk_depth(784, 15, 512, WEIGHT_GRAD_MIN) == 512   # rows
    assert _blas.small_gemm_chunk_depth(4096, 15, 2048, WEIGHT_GRAD_MIN) == 2048  # 16
    assert _blas.small_gemm_chunk_depth(784, 33, 2048, WEIGHT_GRAD_MIN) == 2048
    assert _blas.small_gemm_chunk_depth(0, 15, 2048, WEIGHT_GRAD_MIN) == 2048
    assert _blas.small_gemm_chunk_rows(512, 15, 0, FORWARD_MIN) == 512
    chunks(0)
    assert _blas.small_gemm_chunk_rows(512, 15, 784, FORWARD_MIN) == 512
    with pytest.raises(ValueError, match="madds"):
        chunks(-1)


# (n_samples, n_in, n_out) with the chunk size each test sets: 300,000 multiply-adds
# gives odd, uneven chunks in forward and dW of the first three; (2048, 129, 15) splits
# dW along the batch (14 chunks of 147 terms on one thread); the last is the 784-15
# layer at batch 512 with the import's 1e6 (forward 7 x 74 rows, dW 7 x 112)
SHAPES = [((301, 129, 15), 300_000), ((197, 1001, 2), 300_000), ((1, 129, 15), 300_000),
          ((0, 129, 15), 300_000), ((2048, 129, 15), 300_000), ((512, 784, 15), 1_000_000)]


def _forward_backward(X, W, b, dY, name, n_threads):
    Y = K.dense_forward(X, W, b, name, n_threads=n_threads)
    delta = np.full_like(dY, np.nan)
    dX, dW, db = K.dense_backward(X, W, Y, dY, name, delta_out=delta, n_threads=n_threads)
    return Y, dX, dW, db, delta


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("shape, madds", SHAPES, ids=lambda c: str(c))
def test_chunked_layer_matches_unchunked_and_reference(chunks, shape, madds, name,
                                                        n_threads, dtype):
    n_samples, n_in, n_out = shape
    X, W, b, dY = dense_layer_inputs(shape, dtype, seed=0)
    inputs = [a.copy() for a in (X, W, b, dY)]
    chunks(0)
    plain = _forward_backward(X, W, b, dY, name, n_threads)
    chunks(madds)
    if n_samples > 1:
        # the shapes really chunk: forward by rows, dW (n_in rows) by rows or batch
        assert _blas.small_gemm_chunk_rows(n_samples, n_out, n_in, FORWARD_MIN) < n_samples
        assert (_blas.small_gemm_chunk_rows(n_in, n_out, n_samples, WEIGHT_GRAD_MIN) < n_in
                or _blas.small_gemm_chunk_depth(n_in, n_out, n_samples,
                                                WEIGHT_GRAD_MIN) < n_samples)
    chunked = _forward_backward(X, W, b, dY, name, n_threads)
    Y_ref = R.dense_forward(X, W, b, name)
    dX_ref, dW_ref, db_ref = R.dense_backward(X, W, Y_ref, dY, name)
    labels = ["Y", "dX", "dW", "db", "delta"]
    k_of = {"Y": n_in, "dX": n_out, "dW": n_samples, "db": n_samples, "delta": 1}
    for label, p, c in zip(labels, plain, chunked):
        assert c.dtype == dtype and c.shape == p.shape, label
        if label == "delta" and name == "identity":
            continue                                # delta_out is not written then
        np.testing.assert_allclose(c, p, err_msg=label, **gemm_tol(dtype, k_of[label]))
    for label, c, r in zip(labels, chunked, (Y_ref, dX_ref, dW_ref, db_ref)):
        np.testing.assert_allclose(c, r, err_msg=label, **gemm_tol(dtype, k_of[label]))
    again = _forward_backward(X, W, b, dY, name, n_threads)
    for label, c, a in zip(labels, chunked, again):
        assert_bitwise(c, a, f"{label}, two identical calls")
    for name_, before, after in zip("XWbd", inputs, (X, W, b, dY)):
        assert_bitwise(after, before, f"input {name_}")


@pytest.mark.parametrize("batch", [512, 2048])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_chunked_training_step_matches_reference(chunks, opt_name, n_threads, batch, dtype):
    """A 784-15-10 sigmoid net at batch 512 and 2048 (the import's chunk size: the
    first layer's forward chunks rows, its dW rows at 512 and the batch at 2048),
    trained 3 steps natively and with the reference."""
    if n_threads == 2 and not _openmp.openmp_enabled():
        pytest.skip("serial build")
    chunks(_blas.SMALL_GEMM_MADDS)
    kw = dict(activation="sigmoid", output="softmax", loss="cross_entropy",
              dtype=dtype, seed=2)
    native = gd.MLP([784, 15, 10], backend="native", **kw)
    ref = gd.MLP([784, 15, 10], backend="reference", **kw)
    opt_kw = {"lr": 0.05, "momentum": 0.9} if opt_name == "SGD" else {"lr": 1e-3}
    opt_n, opt_r = getattr(optim, opt_name)(**opt_kw), getattr(optim, opt_name)(**opt_kw)
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, (batch, 784)).astype(dtype)
    T = rng.integers(0, 10, batch)
    X0 = X.copy()
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for _ in range(3):
        loss_n = native.train_step(X, T, opt_n, l2=1e-4, n_threads=n_threads)
        loss_r = ref.train_step(X, T, opt_r, l2=1e-4)
        assert loss_n == pytest.approx(loss_r, rel=rtol)
    np.testing.assert_allclose(native.params, ref.params, rtol=rtol, atol=rtol * 1e-2)
    for key in opt_n.state:
        np.testing.assert_allclose(opt_n.state[key], opt_r.state[key], rtol=rtol,
                                   atol=rtol * 1e-2)
    assert_bitwise(X, X0, "X")
