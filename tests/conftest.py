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
