import numpy as np
import pytest

from gdcore import _blas

SHAPES = [(0, 3, 4), (3, 0, 4), (3, 4, 0), (1, 1, 1), (1, 7, 1), (5, 1, 3), (7, 13, 5),
          (64, 65, 63), (130, 257, 129)]


def _op(a, t):
    return a.T if t else a


@pytest.mark.parametrize("m, k, n", SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_matmul_matches_numpy(m, k, n, trans_a, trans_b, dtype, rng):
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    C0 = rng.standard_normal((m, n)).astype(dtype)
    C = C0.copy()
    _blas.matmul(A, B, C, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=2.0)
    expected = 0.5 * (_op(A, trans_a).astype(np.float64) @ _op(B, trans_b)) + 2.0 * C0
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C, expected, rtol=rtol, atol=rtol * max(k, 1))


def test_matmul_beta_zero_ignores_garbage_in_c(dtype, rng):
    A = rng.standard_normal((4, 0)).astype(dtype)
    B = rng.standard_normal((0, 3)).astype(dtype)
    C = np.full((4, 3), np.nan, dtype=dtype)
    _blas.matmul(A, B, C, beta=0.0)
    assert np.all(C == 0)


def test_matmul_rejects_mismatched_shapes(dtype):
    with pytest.raises(ValueError, match="shapes"):
        _blas.matmul(np.ones((2, 3), dtype), np.ones((4, 2), dtype), np.ones((2, 2), dtype))


def test_blas_runs_single_threaded_inside_native_calls_and_is_restored():
    from threadpoolctl import threadpool_info, threadpool_limits
    controlled = _blas.controlled_libraries()
    if not controlled:
        pytest.skip("no pthreads OpenBLAS to control")
    with threadpool_limits(2, user_api="blas"):
        before = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
        assert all(n == 1 for n in _blas.blas_threads_inside_native_call())
        after = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
    assert after == before
