import numpy as np
import pytest

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
