"""Dense layers: forward (GEMM + bias + activation) and backward (dW, db, dX).

``TimeBareGemm`` times the product alone, with the same BLAS the native kernel calls
(``gdcore._blas.matmul``, scipy's OpenBLAS held at one thread) and with NumPy's
``np.matmul`` (NumPy's OpenBLAS, 1 or 2 threads): dense_forward / bare GEMM is the
cost of the fused bias + activation epilogue and of the call.
"""
import numpy as np

from .common import (ACTIVATIONS, BACKEND_NAMES, DTYPES, THREADS, KernelBenchmark,
                     ThreadLimits, activation_output, dense_layer, empty, matrix,
                     parse_shape, require_split)

# (batch, n_in, n_out): one sample to a large batch of MNIST's first layer, a 10-class
# output layer, and a narrow first layer (784-15) at batch 512 and 2048, whose products
# the native kernels split into OpenBLAS small-matrix chunks where the core has them
# (at 2048 the weight gradient is split along the batch)
SHAPES = ["1x784x256", "32x784x256", "128x784x256", "512x784x256", "128x256x10",
          "512x784x15", "2048x784x15"]


def check_activation(activation, n_out):
    if activation == "softmax" and n_out != 10:
        raise NotImplementedError("softmax only on the 10-output layer")


class TimeDenseForward(KernelBenchmark):
    """Y = f(X @ W + b) into a preallocated ``out``."""
    params = (BACKEND_NAMES, DTYPES, SHAPES, ACTIVATIONS, THREADS)
    param_names = ["backend", "dtype", "shape", "activation", "n_threads"]
    timeout = 60

    @staticmethod
    def thread_work(backend_name, dtype, shape, activation, n_threads):
        # the GEMM's multiply-adds; its row blocks carry the bias and activation
        n_samples, n_in, n_out = parse_shape(shape)
        return n_samples * n_in * n_out, "gemm_min_per_thread"

    def setup(self, backend_name, dtype, shape, activation, n_threads):
        n_samples, n_in, n_out = parse_shape(shape)
        check_activation(activation, n_out)
        kernels = self.prepare(backend_name, n_threads,
                               self.thread_work(backend_name, dtype, shape, activation,
                                                n_threads))
        self.forward = kernels.dense_forward
        self.X, self.W, self.b = dense_layer(n_samples, n_in, n_out, dtype)
        self.out = empty((n_samples, n_out), dtype)
        self.forward(self.X, self.W, self.b, activation, out=self.out, n_threads=n_threads)

    def time_forward(self, backend_name, dtype, shape, activation, n_threads):
        self.forward(self.X, self.W, self.b, activation, out=self.out, n_threads=n_threads)


class TimeBareGemm:
    """X @ W alone.  ``gdcore_blas``: ``gdcore._blas.matmul``, the sgemm/dgemm call of
    the native kernels (always one BLAS thread: its 2-thread rows are skipped);
    ``numpy``: ``np.matmul(X, W, out=Y)`` with NumPy's BLAS limited to n_threads (its
    2-thread rows only where OpenBLAS splits the product, see ``common.threads_used``)."""
    params = (["gdcore_blas", "numpy"], DTYPES, SHAPES, THREADS)
    param_names = ["impl", "dtype", "shape", "n_threads"]
    timeout = 60

    @staticmethod
    def thread_work(impl, dtype, shape, n_threads):
        n_samples, n_in, n_out = parse_shape(shape)
        return n_samples * n_in * n_out, "openblas_gemm"

    def setup(self, impl, dtype, shape, n_threads):
        if impl == "gdcore_blas":
            if n_threads != 1:
                raise NotImplementedError("gdcore._blas.matmul runs BLAS on one thread")
        require_split(n_threads, *self.thread_work(impl, dtype, shape, n_threads))
        if impl == "gdcore_blas":
            from gdcore import _blas
            self.matmul = _blas.matmul
        else:
            self.matmul = lambda A, B, C: np.matmul(A, B, out=C)
        self.limits = ThreadLimits(n_threads).start()
        n_samples, n_in, n_out = parse_shape(shape)
        self.X, self.W, _ = dense_layer(n_samples, n_in, n_out, dtype)
        self.Y = empty((n_samples, n_out), dtype)
        self.matmul(self.X, self.W, self.Y)

    def teardown(self, *params):
        if hasattr(self, "limits"):
            self.limits.stop()

    def time_matmul(self, impl, dtype, shape, n_threads):
        self.matmul(self.X, self.W, self.Y)


class TimeDenseBackward(KernelBenchmark):
    """(dX, dW, db) with every output buffer (and the delta workspace) preallocated;
    ``compute_dX=False`` is the first layer's case."""
    params = (BACKEND_NAMES, DTYPES, SHAPES, ["identity", "relu"],
              [True, False], THREADS)
    param_names = ["backend", "dtype", "shape", "activation", "compute_dX", "n_threads"]
    timeout = 60

    @staticmethod
    def thread_work(backend_name, dtype, shape, activation, compute_dX, n_threads):
        # the multiply-adds of dW (and dX), split together
        n_samples, n_in, n_out = parse_shape(shape)
        return n_samples * n_in * n_out * (2 if compute_dX else 1), "gemm_min_per_thread"

    def setup(self, backend_name, dtype, shape, activation, compute_dX, n_threads):
        n_samples, n_in, n_out = parse_shape(shape)
        kernels = self.prepare(backend_name, n_threads,
                               self.thread_work(backend_name, dtype, shape, activation,
                                                compute_dX, n_threads))
        self.backward = kernels.dense_backward
        self.X, self.W, _ = dense_layer(n_samples, n_in, n_out, dtype)
        self.Y = activation_output(activation, n_samples, n_out, dtype, seed=7)
        self.dY = matrix(n_samples, n_out, dtype, seed=8)
        self.dX = empty((n_samples, n_in), dtype) if compute_dX else None
        self.dW = empty((n_in, n_out), dtype)
        self.db = empty((n_out,), dtype)
        self.delta = empty((n_samples, n_out), dtype)
        self.time_backward(backend_name, dtype, shape, activation, compute_dX, n_threads)

    def time_backward(self, backend_name, dtype, shape, activation, compute_dX, n_threads):
        self.backward(self.X, self.W, self.Y, self.dY, activation, compute_dX=compute_dX,
                      dX_out=self.dX, dW_out=self.dW, db_out=self.db,
                      delta_out=self.delta, n_threads=n_threads)
