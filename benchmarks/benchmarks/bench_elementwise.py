"""Elementwise kernels: activations, their backward pass, and the fused loss + delta.

The first shape of each list is below ``THRESHOLDS["elementwise_min_per_thread"]``
elements per thread (one thread: its 2-thread rows are skipped), the second above it.
"""
from .common import (ACTIVATIONS, BACKEND_NAMES, DTYPES, LOSSES, NEW_LOSSES,
                     PARAM_ACTIVATIONS, THREADS, KernelBenchmark, activation_output,
                     activation_spec, empty, loss_inputs, matrix, parse_shape)


def elementwise_work(shape):
    """``thread_work`` of an elementwise kernel: the elements of ``shape``."""
    rows, cols = parse_shape(shape)
    return rows * cols, "elementwise_min_per_thread"

ACTIVATION_SHAPES = ["128x256", "1024x1024"]
LOSS_SHAPES = ["128x10", "65536x10"]


class TimeActivation(KernelBenchmark):
    """Y = f(U) into a preallocated buffer (softmax: per row)."""
    params = (BACKEND_NAMES, ACTIVATIONS + PARAM_ACTIVATIONS, DTYPES, ACTIVATION_SHAPES,
              THREADS)
    param_names = ["backend", "activation", "dtype", "shape", "n_threads"]

    @staticmethod
    def thread_work(backend_name, activation, dtype, shape, n_threads):
        return elementwise_work(shape)

    def setup(self, backend_name, activation, dtype, shape, n_threads):
        kernels = self.prepare(backend_name, n_threads, elementwise_work(shape))
        self.activation = kernels.activation
        rows, cols = parse_shape(shape)
        self.U = matrix(rows, cols, dtype)
        self.out = empty((rows, cols), dtype)
        self.spec = activation_spec(activation)
        self.activation(self.spec, self.U, out=self.out, n_threads=n_threads)

    def time_activation(self, backend_name, activation, dtype, shape, n_threads):
        self.activation(self.spec, self.U, out=self.out, n_threads=n_threads)


class TimeActivationBackward(KernelBenchmark):
    """dE/dU from the stored output Y (the pre-activation for gelu and silu) and dE/dY,
    into a preallocated buffer."""
    params = (BACKEND_NAMES, ACTIVATIONS + PARAM_ACTIVATIONS, DTYPES, ACTIVATION_SHAPES,
              THREADS)
    param_names = ["backend", "activation", "dtype", "shape", "n_threads"]

    @staticmethod
    def thread_work(backend_name, activation, dtype, shape, n_threads):
        return elementwise_work(shape)

    def setup(self, backend_name, activation, dtype, shape, n_threads):
        kernels = self.prepare(backend_name, n_threads, elementwise_work(shape))
        self.backward = kernels.activation_backward
        rows, cols = parse_shape(shape)
        self.Y = activation_output(activation, rows, cols, dtype)
        self.dY = matrix(rows, cols, dtype, seed=1)
        self.out = empty((rows, cols), dtype)
        self.spec = activation_spec(activation)
        self.backward(self.spec, self.Y, self.dY, out=self.out, n_threads=n_threads)

    def time_activation_backward(self, backend_name, activation, dtype, shape, n_threads):
        self.backward(self.spec, self.Y, self.dY, out=self.out, n_threads=n_threads)


class TimeLossDelta(KernelBenchmark):
    """(loss, D) of an output layer in one call, D preallocated; Y is the output of the
    loss's paired activation, cross_entropy takes integer labels."""
    params = (BACKEND_NAMES, LOSSES + NEW_LOSSES, DTYPES, LOSS_SHAPES, THREADS)
    param_names = ["backend", "loss", "dtype", "shape", "n_threads"]

    @staticmethod
    def thread_work(backend_name, loss, dtype, shape, n_threads):
        return elementwise_work(shape)

    def setup(self, backend_name, loss, dtype, shape, n_threads):
        kernels = self.prepare(backend_name, n_threads, elementwise_work(shape))
        self.loss_delta = kernels.loss_delta
        rows, cols = parse_shape(shape)
        self.Y, self.T = loss_inputs(loss, rows, cols, dtype)
        self.out = empty((rows, cols), dtype)
        self.loss_delta(loss, self.Y, self.T, out=self.out, n_threads=n_threads)

    def time_loss_delta(self, backend_name, loss, dtype, shape, n_threads):
        self.loss_delta(loss, self.Y, self.T, out=self.out, n_threads=n_threads)
