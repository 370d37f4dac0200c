"""MLP training: one ``train_step``, the same step's GEMMs alone, and one epoch of
``fit``, native against the reference backend.

* ``TimeTrainStep``: one call of ``net.train_step`` from Python (validation, the
  native step, the optimizer update) for the networks of the issue's targets.
* ``TimeStepGemms``: only the GEMMs such a step runs (3 forward, 3 dW, 2 dX), with the
  BLAS the native kernels call; train_step / this is the step's overhead factor.
* ``TimeFitEpoch``: one epoch of ``fit`` over 60,000 x 784 synthetic float32 samples,
  784-256-128-10 ReLU, Adam, batches of 128, against the same batches stepped one
  ``train_step`` call at a time; ``track_samples_per_second`` reports throughput.
"""
import numpy as np

from .common import (THREADS, ThreadLimits, backend, check_forked_child, check_threads,
                     matrix, require_split)

# name -> (layer sizes, hidden activation, output, loss, optimizer, batch)
NETWORKS = {
    "784-256-128-10_relu_adam_b32": ([784, 256, 128, 10], "relu", "softmax",
                                     "cross_entropy", ("Adam", {"lr": 1e-3}), 32),
    "784-256-128-10_relu_sgd_b512": ([784, 256, 128, 10], "relu", "softmax",
                                     "cross_entropy", ("SGD", {"lr": 0.01}), 512),
    "784-15-10_sigmoid_sgd_b32": ([784, 15, 10], "sigmoid", "softmax", "cross_entropy",
                                  ("SGD", {"lr": 0.1}), 32),
    "13-16-1_sigmoid_sgd_b1": ([13, 16, 1], "sigmoid", "identity", "squared_error",
                               ("SGD", {"lr": 0.01}), 1),
}


def step_work(sizes, batch):
    """``thread_work`` of a training step: the multiply-adds of its largest layer GEMM
    (a step whose largest GEMM cannot split runs on one thread, see _network.pxi)."""
    largest = max(batch * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return largest, "step_gemm_min_per_thread"


def _make(name, backend_name, seed=0):
    import gdcore as gd
    sizes, act, out, loss, (opt_name, opt_kwargs), batch = NETWORKS[name]
    net = gd.MLP(sizes, activation=act, output=out, loss=loss, dtype="float32", seed=seed,
                 backend=backend_name)
    optimizer = getattr(gd.optim, opt_name)(**opt_kwargs)
    X = matrix(batch, sizes[0], "float32", seed=1)
    if loss == "cross_entropy":
        T = np.random.default_rng(2).integers(0, sizes[-1], batch)
    else:
        T = matrix(batch, sizes[-1], "float32", seed=2)
    return net, optimizer, X, T


class TimeTrainStep:
    params = (["native", "reference"], list(NETWORKS), THREADS)
    param_names = ["backend", "network", "n_threads"]
    timeout = 120

    @staticmethod
    def thread_work(backend_name, network, n_threads):
        sizes, *_, batch = NETWORKS[network]
        return step_work(sizes, batch)

    def setup(self, backend_name, network, n_threads):
        check_threads(backend_name, n_threads)
        require_split(n_threads, *self.thread_work(backend_name, network, n_threads))
        backend(backend_name)
        check_forked_child(n_threads)
        self.limits = ThreadLimits(1 if n_threads == 1 else None).start()
        self.net, self.opt, self.X, self.T = _make(network, backend_name)
        self.kwargs = {"n_threads": n_threads} if backend_name == "native" else {}
        # workspace and optimizer state; the first two steps of a batch size run on
        # one thread to time it (the step's stall guard), so the timed step is the
        # fourth and a 2-thread row runs threaded
        for _ in range(3):
            self.net.train_step(self.X, self.T, self.opt, **self.kwargs)

    def teardown(self, *params):
        limits = getattr(self, "limits", None)     # setup may have skipped the row
        if limits is not None:
            limits.stop()

    def time_train_step(self, backend_name, network, n_threads):
        self.net.train_step(self.X, self.T, self.opt, **self.kwargs)


class TimeStepGemms:
    """The GEMMs of one train step of each network, through gdcore._blas.matmul."""
    params = [list(NETWORKS)]
    param_names = ["network"]

    def setup(self, network):
        from gdcore import _blas
        self.matmul = _blas.matmul
        sizes, *_, batch = NETWORKS[network]
        self.A = [matrix(batch, n, "float32", seed=i) for i, n in enumerate(sizes)]
        self.W = [matrix(a, b, "float32", seed=10 + i)
                  for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.dW = [np.empty_like(W) for W in self.W]
        self.dX = [np.empty_like(A) for A in self.A]

    def time_gemms(self, network):
        A, W = self.A, self.W
        for l in range(len(W)):
            self.matmul(A[l], W[l], A[l + 1])
        for l in range(len(W) - 1, -1, -1):
            self.matmul(A[l], A[l + 1], self.dW[l], trans_a=True)
            if l > 0:
                self.matmul(A[l + 1], W[l], self.dX[l], trans_b=True)


class TimeFitEpoch:
    """One epoch over 60,000 x 784 samples: ``fit`` (one native call per epoch) against
    the same batches stepped by ``train_step`` from a Python loop."""
    params = (["native", "reference"], THREADS)
    param_names = ["backend", "n_threads"]
    timeout = 600
    repeat = (1, 3, 60.0)
    number = 1
    N, BATCH = 60_000, 128

    @classmethod
    def thread_work(cls, backend_name, n_threads):
        return step_work([784, 256, 128, 10], cls.BATCH)

    def setup(self, backend_name, n_threads):
        check_threads(backend_name, n_threads)
        require_split(n_threads, *self.thread_work(backend_name, n_threads))
        backend(backend_name)
        check_forked_child(n_threads)
        import gdcore as gd
        self.limits = ThreadLimits(1 if n_threads == 1 else None).start()
        self.X = matrix(self.N, 784, "float32", seed=3)
        self.y = np.random.default_rng(4).integers(0, 10, self.N)
        self.net = gd.MLP([784, 256, 128, 10], activation="relu", seed=0,
                          backend=backend_name)
        self.opt = gd.optim.Adam(lr=1e-3)
        self.kwargs = {"n_threads": n_threads} if backend_name == "native" else {}
        self.net.train_step(self.X[:self.BATCH], self.y[:self.BATCH], self.opt, **self.kwargs)
        self.batches = [(np.ascontiguousarray(self.X[s:s + self.BATCH]), self.y[s:s + self.BATCH])
                        for s in range(0, self.N, self.BATCH)]

    def teardown(self, *params):
        limits = getattr(self, "limits", None)     # setup may have skipped the row
        if limits is not None:
            limits.stop()

    def time_fit_epoch(self, backend_name, n_threads):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.BATCH, optimizer=self.opt,
                     shuffle=True, progress=False, **self.kwargs)

    def time_train_steps(self, backend_name, n_threads):
        for X, y in self.batches:
            self.net.train_step(X, y, self.opt, **self.kwargs)

    def track_samples_per_second(self, backend_name, n_threads):
        import time
        start = time.perf_counter()
        self.time_fit_epoch(backend_name, n_threads)
        return self.N / (time.perf_counter() - start)

    track_samples_per_second.unit = "samples/s"


class TimeClippedStep:
    """The cost of gradient clipping inside the native step: one ``train_step`` of
    784-256-128-10 ReLU, Adam, batch 32, float32, without clipping, with ``clip_norm``
    (one extra read of the gradient for its norm, then the scaling fused into the
    update pass) and with ``clip_value`` (the clamp fused into the update pass)."""
    params = (["none", "clip_norm", "clip_value"], THREADS)
    param_names = ["clipping", "n_threads"]
    timeout = 120

    @staticmethod
    def thread_work(clipping, n_threads):
        sizes, *_, batch = NETWORKS["784-256-128-10_relu_adam_b32"]
        return step_work(sizes, batch)

    def setup(self, clipping, n_threads):
        check_threads("native", n_threads)
        require_split(n_threads, *self.thread_work(clipping, n_threads))
        backend("native")
        check_forked_child(n_threads)
        self.limits = ThreadLimits(1 if n_threads == 1 else None).start()
        self.net, self.opt, self.X, self.T = _make("784-256-128-10_relu_adam_b32", "native")
        if clipping == "clip_norm":
            self.opt.set_clipping(clip_norm=1e-3)       # small: every step scales
        elif clipping == "clip_value":
            self.opt.set_clipping(clip_value=1e-5)
        self.n_threads = n_threads
        for _ in range(3):
            self.net.train_step(self.X, self.T, self.opt, n_threads=n_threads)

    def teardown(self, *params):
        limits = getattr(self, "limits", None)
        if limits is not None:
            limits.stop()

    def time_train_step(self, clipping, n_threads):
        self.net.train_step(self.X, self.T, self.opt, n_threads=self.n_threads)
