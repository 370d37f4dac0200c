"""Seeded, cached data builders and helpers shared by the benchmark suites.

Every builder is deterministic (fixed seeds) and cached per process; the public
functions return copies (or read-only cached arrays where the benchmark never writes),
so a benchmark that updates its data in place never disturbs another one.

Conventions of the suites
-------------------------
* ``backend`` is ``"native"`` (``gdcore.kernels``) or ``"reference"``
  (``gdcore.reference``, plain NumPy).  Both have the same names and signatures.
* ``n_threads`` is passed to the kernel.  The reference has no threads of its own, so
  its ``n_threads=2`` rows are skipped; its ``n_threads=1`` rows run with NumPy's BLAS
  limited to one thread (``ThreadLimits``), so that "1 thread" means one core for both
  backends.
* A row labelled n threads runs on n threads.  A native kernel gives a second thread
  only to work above its threshold (``gdcore.kernels.THRESHOLDS``), so every suite with
  a thread parameter has a ``thread_work(*params)`` method: (work, threshold name) of
  the row, with the work in the threshold's unit.  ``require_split`` skips an n-thread
  row whose work runs on fewer than n threads (asv shows it as n/a), and
  tests/test_benchmarks.py checks every suite against this rule.
* Shapes of dense layers are written ``"<batch>x<n_in>x<n_out>"`` so that ``asv -b``
  regular expressions and the tables stay readable.
* gdcore is imported on first use (``backend``), not when asv imports this module:
  under ``--launch-method forkserver`` asv imports the suite once in a server and forks
  a child per benchmark, and gdcore imported before a fork runs its kernels on one
  thread in the child (libgomp is not fork-safe).  NumPy, SciPy's BLAS wrappers and
  threadpoolctl are imported here, so a forked child only pays for gdcore itself.
"""
import functools
import importlib

import numpy as np
import scipy.linalg  # noqa: F401  (imported by gdcore; here for forkserver children)
import threadpoolctl  # noqa: F401

BACKEND_NAMES = ["native", "reference"]
DTYPES = ["float32", "float64"]
THREADS = [1, 2]
ACTIVATIONS = ["identity", "sigmoid", "relu", "tanh", "softmax"]
LOSSES = ["squared_error", "mse", "cross_entropy", "binary_cross_entropy"]
# the parametrised activations (elementwise benchmarks only) and the regression losses
PARAM_ACTIVATIONS = ["leaky_relu", "elu", "gelu", "gelu_tanh", "softplus", "silu"]
NEW_LOSSES = ["huber", "mae", "poisson"]


def activation_spec(name):
    """The activation spec a benchmark row name stands for (gelu_tanh: the tanh form)."""
    return ("gelu", {"approximate": "tanh"}) if name == "gelu_tanh" else name


_MODULES = {"native": "gdcore.kernels", "reference": "gdcore.reference"}


def backend(name):
    """The kernel module of backend ``name``.  NotImplementedError skips the rows of a
    backend this commit does not have (an older commit under ``asv continuous``); any
    other import failure, e.g. gdcore not importable at all, is an error."""
    try:
        return importlib.import_module(_MODULES[name])
    except ModuleNotFoundError as exc:
        if exc.name != _MODULES[name]:
            raise
        raise NotImplementedError(f"backend {name!r} does not exist here") from None


def check_forked_child(n_threads):
    """Refuse to mislabel rows: in a process forked after gdcore was imported, gdcore
    runs on one thread whatever n_threads says (see gdcore._config)."""
    if n_threads is not None and n_threads > 1:
        from gdcore import _openmp
        if getattr(_openmp, "in_forked_child", lambda: False)():
            raise RuntimeError("gdcore was imported before this process was forked: it "
                               "runs on one thread here; import it after the fork")


def check_threads(backend_name, n_threads):
    """Skip rows that do not exist: the reference runs on NumPy's threads only."""
    if backend_name == "reference" and n_threads != 1:
        raise NotImplementedError("the reference has no threads of its own")


# OpenBLAS's own rule for a GEMM from NumPy (interface/gemm.c: one thread up to
# 65536 * GEMM_MULTITHREAD_THRESHOLD (4) multiply-adds, then at most one thread per
# that many); the threshold of the rows that time NumPy's threads
OPENBLAS_GEMM_MIN_PER_THREAD = 65536 * 4


def threads_used(n_threads, work, threshold):
    """The threads a row of ``work`` runs on when asked for ``n_threads``: gdcore's own
    rule (``_openmp.threads_used``, one thread without OpenMP) with
    ``gdcore.kernels.THRESHOLDS[threshold]`` per thread, or OpenBLAS's for
    ``threshold="openblas_gemm"``."""
    if n_threads is None or n_threads <= 1:
        return 1
    if threshold == "openblas_gemm":
        return int(max(1, min(n_threads, work // OPENBLAS_GEMM_MIN_PER_THREAD)))
    from gdcore import _openmp
    from gdcore.kernels import THRESHOLDS
    return _openmp.threads_used(n_threads, work, THRESHOLDS[threshold])


def require_split(n_threads, work, threshold):
    """Skip (NotImplementedError: asv shows n/a) a row labelled ``n_threads`` whose
    ``work`` runs on fewer threads (see ``threads_used``)."""
    got = threads_used(n_threads, work, threshold)
    if n_threads is not None and got < n_threads:
        raise NotImplementedError(f"{work} units of work run on {got} thread(s), not "
                                  f"{n_threads} (threshold {threshold!r})")


class ThreadLimits:
    """Limit the BLAS libraries of the process to ``n`` threads between ``start`` and
    ``stop`` (threadpoolctl), or leave them alone for ``n=None``."""

    def __init__(self, n):
        self.n = n
        self._limits = None

    def start(self):
        if self.n is not None:
            from threadpoolctl import threadpool_limits
            self._limits = threadpool_limits(limits=self.n, user_api="blas")
        return self

    def stop(self):
        if self._limits is not None:
            self._limits.restore_original_limits()
            self._limits = None


class KernelBenchmark:
    """Base for the backend x n_threads grids: resolves the backend, skips the
    reference's multi-thread rows and holds BLAS at one thread for 1-thread rows.

    Subclasses define ``thread_work(*params)`` (see the module doc) and call
    ``self.prepare(backend_name, n_threads, self.thread_work(*params))`` first in
    ``setup``: an n-thread row whose work cannot split is skipped there."""

    def prepare(self, backend_name, n_threads, work):
        check_threads(backend_name, n_threads)
        require_split(n_threads, *work)
        self.kernels = backend(backend_name)
        check_forked_child(n_threads)
        self.blas_limits = ThreadLimits(1 if n_threads == 1 else None).start()
        return self.kernels

    def teardown(self, *params):
        limits = getattr(self, "blas_limits", None)
        if limits is not None:
            limits.stop()


def parse_shape(shape):
    """'128x784x256' -> (128, 784, 256)."""
    return tuple(int(s) for s in shape.split("x"))


# ---- cached builders -------------------------------------------------------------
# NumPy's Generator draws float32 directly: no float64 temporary for 1e7 elements.

@functools.lru_cache(maxsize=None)
def _normal(shape, dtype, seed):
    a = np.random.default_rng(seed).standard_normal(shape, dtype=np.dtype(dtype))
    a.setflags(write=False)
    return a


def vector(n, dtype, seed=0):
    """A fresh copy of a cached seeded standard-normal 1-D array."""
    return _normal((n,), dtype, seed).copy()


def matrix(rows, cols, dtype, seed=0, scale=1.0):
    """A fresh seeded standard-normal (rows, cols) array times ``scale``."""
    return _normal((rows, cols), dtype, seed) * np.asarray(scale, dtype=dtype)


def empty(shape, dtype):
    """An output buffer, touched once so that page faults are not timed."""
    out = np.empty(shape, dtype=dtype)
    out.fill(0)
    return out


@functools.lru_cache(maxsize=None)
def _activation_output(name, rows, cols, dtype, seed):
    """A valid output of activation ``name`` (e.g. rows of softmax sum to 1)."""
    U = _normal((rows, cols), dtype, seed)
    if name in ("gelu", "gelu_tanh", "silu"):
        return U        # their backward pass takes the pre-activation
    Y = backend("reference").activation(activation_spec(name), U)
    Y.setflags(write=False)
    return Y


def activation_output(name, rows, cols, dtype, seed=0):
    return _activation_output(name, rows, cols, dtype, seed)


def dense_layer(n_samples, n_in, n_out, dtype, seed=0):
    """(X, W, b) of a dense layer: unit-variance inputs, W scaled by 1/sqrt(n_in)
    (Glorot-like) so the pre-activations are O(1) and no activation saturates."""
    X = matrix(n_samples, n_in, dtype, seed)
    W = matrix(n_in, n_out, dtype, seed + 1, scale=1.0 / np.sqrt(n_in))
    b = matrix(1, n_out, dtype, seed + 2, scale=0.1).reshape(n_out)
    return X, W, b


@functools.lru_cache(maxsize=None)
def labels(n_samples, n_classes, seed=0):
    """Integer class labels (int64), read-only."""
    T = np.random.default_rng(seed).integers(0, n_classes, n_samples)
    T.setflags(write=False)
    return T


def loss_inputs(name, n_samples, n_outputs, dtype, seed=0):
    """(Y, T) for loss ``name``: Y the output of its paired activation, T integer
    labels for cross_entropy, otherwise targets in Y's dtype (0/1 for
    binary_cross_entropy)."""
    paired = {"squared_error": "identity", "mse": "identity",
              "cross_entropy": "softmax", "binary_cross_entropy": "sigmoid",
              "huber": "identity", "mae": "identity", "poisson": "identity"}[name]
    Y = activation_output(paired, n_samples, n_outputs, dtype, seed)
    if name == "cross_entropy":
        return Y, labels(n_samples, n_outputs, seed + 1)
    if name == "binary_cross_entropy":
        T = (_normal((n_samples, n_outputs), dtype, seed + 1) > 0).astype(dtype)
        return Y, T
    if name == "poisson":
        return Y, np.floor(3 * np.abs(_normal((n_samples, n_outputs), dtype, seed + 1)))
    return Y, matrix(n_samples, n_outputs, dtype, seed + 1)
