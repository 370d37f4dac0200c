"""The training-step grid: native against the NumPy reference, same thread count.

Cases: 784-15-10 sigmoid and 784-256-128-10 ReLU (softmax output, cross-entropy on
integer labels), batch 1/32/128/512, SGD (lr 0.01) and Adam (lr 1e-3), float32 and
float64, 1 and 2 threads.  One timed call is one ``net.train_step`` from Python.

Threads are set the same way for both backends:

* native: ``train_step(..., n_threads=n)``; gdcore switches BLAS to one thread inside
  its call and splits the GEMMs with its own OpenMP threads (``gdcore._dense``).
* reference: NumPy's BLAS is limited to exactly ``n`` threads with threadpoolctl
  (``threadpool_limits(n, user_api="blas")``), so its 2-thread rows really run
  OpenBLAS on 2 threads (checked in ``setup``: the row fails otherwise).

A 2-thread row whose largest GEMM cannot split (gdcore's step threshold for native,
OpenBLAS's GEMM rule for the reference) runs on one thread and is skipped (n/a): the
1-thread row is the figure for it.

``benchmarks/step_grid.py`` runs the same cases outside asv, interleaving the variants
it compares and reporting medians of many repeats (see benchmarks/README.md).
"""
import numpy as np

from .common import backend, check_forked_child, matrix, require_split

NETS = {
    "784-15-10_sigmoid": ([784, 15, 10], "sigmoid"),
    "784-256-128-10_relu": ([784, 256, 128, 10], "relu"),
}
BATCHES = [1, 32, 128, 512]
OPTIMIZERS = {"sgd": ("SGD", {"lr": 0.01}), "adam": ("Adam", {"lr": 1e-3})}
DTYPES = ["float32", "float64"]
THREADS = [1, 2]


def make_case(backend_name, net_name, batch, opt_name, dtype, seed=0):
    """(net, optimizer, X, labels) of one grid case, seeded."""
    import gdcore as gd
    sizes, act = NETS[net_name]
    net = gd.MLP(sizes, activation=act, output="softmax", loss="cross_entropy",
                 dtype=dtype, seed=seed, backend=backend_name)
    cls, kwargs = OPTIMIZERS[opt_name]
    optimizer = getattr(gd.optim, cls)(**kwargs)
    X = matrix(batch, sizes[0], dtype, seed=1)
    T = np.random.default_rng(2).integers(0, sizes[-1], batch)
    return net, optimizer, X, T


def blas_limits(n_threads):
    """Limit every BLAS of the process to ``n_threads`` and check NumPy's got it."""
    from threadpoolctl import threadpool_info, threadpool_limits
    limits = threadpool_limits(limits=n_threads, user_api="blas")
    got = {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}
    if got != {n_threads}:
        limits.restore_original_limits()
        raise RuntimeError(f"BLAS runs {sorted(got)} threads, not {n_threads}")
    return limits


class TimeStepGrid:
    params = (["native", "reference"], list(NETS), BATCHES, list(OPTIMIZERS), DTYPES,
              THREADS)
    param_names = ["backend", "network", "batch", "optimizer", "dtype", "n_threads"]
    timeout = 120

    @staticmethod
    def thread_work(backend_name, network, batch, opt_name, dtype, n_threads):
        sizes, _ = NETS[network]
        largest = max(batch * a * b for a, b in zip(sizes[:-1], sizes[1:]))
        return largest, ("step_gemm_min_per_thread" if backend_name == "native"
                         else "openblas_gemm")

    def setup(self, backend_name, network, batch, opt_name, dtype, n_threads):
        require_split(n_threads, *self.thread_work(backend_name, network, batch, opt_name,
                                                   dtype, n_threads))
        backend(backend_name)
        check_forked_child(n_threads)
        self.limits = blas_limits(n_threads)
        self.net, self.opt, self.X, self.T = make_case(backend_name, network, batch,
                                                       opt_name, dtype)
        self.kwargs = {"n_threads": n_threads} if backend_name == "native" else {}
        # workspace, optimizer state, and the stall guard's two solo steps that time a
        # new batch size: the timed step is the fourth, threaded in 2-thread rows
        for _ in range(3):
            self.net.train_step(self.X, self.T, self.opt, **self.kwargs)

    def teardown(self, *params):
        limits = getattr(self, "limits", None)
        if limits is not None:
            limits.restore_original_limits()

    def time_train_step(self, backend_name, network, batch, opt_name, dtype, n_threads):
        self.net.train_step(self.X, self.T, self.opt, **self.kwargs)
