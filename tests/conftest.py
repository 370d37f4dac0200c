import numpy as np
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Benchmarks (tests/test_micro_benchmarks.py) run their function once, untimed,
    unless ``--benchmark-enable`` or ``--benchmark-only`` asks for timings.  Set here,
    before pytest-benchmark reads its options, rather than in ``addopts``, so that pytest
    still starts where pytest-benchmark is not installed (those tests then skip)."""
    if config.pluginmanager.hasplugin("benchmark") and not config.getoption("benchmark_only"):
        config.option.benchmark_disable = True


def pytest_collection_modifyitems(config, items):
    """Without pytest-benchmark (not installed, or ``-p no:benchmark``), the tests that
    take its ``benchmark`` fixture skip with the reason instead of erroring."""
    if config.pluginmanager.hasplugin("benchmark"):
        return
    skip = pytest.mark.skip(reason="pytest-benchmark is not active")
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)

DTYPES = [np.float32, np.float64]
THREADS = [1, 2]


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(params=THREADS, ids=["1thread", "2threads"])
def n_threads(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def readonly(a):
    """A read-only copy: kernels must accept inputs they may not write."""
    a = np.array(a)
    a.setflags(write=False)
    return a


def bits(a):
    """The raw bytes of an array, so that -0.0 != 0.0 and NaN payloads count."""
    return np.ascontiguousarray(a).view(np.uint8).tobytes()


def assert_bitwise(a, b, what=""):
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    assert a.shape == b.shape and a.dtype == b.dtype, what
    if bits(a) != bits(b):
        diff = np.argwhere(a.view(np.uint8).reshape(a.shape + (-1,))
                           != b.view(np.uint8).reshape(b.shape + (-1,)))
        pytest.fail(f"{what}: not bitwise equal, first difference at {tuple(diff[0][:-1])}")


def dense_layer_inputs(shape, dtype, seed):
    """(X, W, b, dY) of a dense layer of shape (n_samples, n_in, n_out), uniform in
    [-1, 1], seeded."""
    rng = np.random.default_rng(seed)
    n_samples, n_in, n_out = shape
    X = rng.uniform(-1, 1, (n_samples, n_in)).astype(dtype)
    W = rng.uniform(-1, 1, (n_in, n_out)).astype(dtype)
    b = rng.uniform(-1, 1, n_out).astype(dtype)
    dY = rng.uniform(-1, 1, (n_samples, n_out)).astype(dtype)
    return X, W, b, dY


def gemm_tol(dtype, k):
    """assert_allclose tolerances of a GEMM output with inner dimension k (BLAS
    rounding: it depends on how the product is blocked)."""
    k = max(k, 1)
    return (dict(rtol=1e-4, atol=1e-6 * k) if dtype == np.float32
            else dict(rtol=1e-10, atol=1e-13 * k))
