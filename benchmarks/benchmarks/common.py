"""Seeded, cached data builders shared by the benchmark suites."""
import functools

import numpy as np

import gdcore.reference

BACKENDS = {"reference": gdcore.reference}
try:
    import gdcore.kernels
    BACKENDS["native"] = gdcore.kernels
except ImportError:   # an older build under comparison without native kernels
    pass


@functools.lru_cache(maxsize=None)
def _vector(n, dtype, seed):
    return np.random.default_rng(seed).standard_normal(n).astype(dtype)


def vector(n, dtype, seed=0):
    """A fresh copy of a cached seeded 1-D array (benchmarks may update it in place)."""
    return _vector(n, dtype, seed).copy()


@functools.lru_cache(maxsize=None)
def _matrix(rows, cols, dtype, seed):
    return np.random.default_rng(seed).standard_normal((rows, cols)).astype(dtype)


def matrix(rows, cols, dtype, seed=0, scale=1.0):
    return _matrix(rows, cols, dtype, seed) * np.asarray(scale, dtype=dtype)


def backend(name):
    if name not in BACKENDS:
        raise NotImplementedError(f"backend {name!r} is not built")
    return BACKENDS[name]
