"""Scale-out paths in one process: data-parallel training's overhead, the parts of a
distributed step, and many fits on joblib.

* ``TimeDistributedEpoch``: one epoch of 784-256-128-10 (ReLU, Adam, batches of 128)
  over 12,000 x 784 float32 samples by the 1-process ``net.fit`` (one native call per
  epoch) and by ``gd.distributed.fit`` on ``MPI.COMM_SELF`` (a Python loop over steps:
  gather, native gradient, Allreduce, optimizer update).  Their ratio is the cost of
  the distributed path itself; multi-rank scaling needs ``mpirun`` and is measured by
  ``benchmarks/mpi_scaling.py``.
* ``TimeDistributedStep``: the parts of one step at a global batch: the local gradient
  (gather + forward + backward), the Allreduce of the ``n_params + 1`` buffer on
  COMM_SELF (a copy: the floor of any network), and the optimizer update.
* ``TimeParallelSearch``: ``grid_search`` of 4 combinations with ``n_jobs=2``, each
  worker limited to its share of the cores ("share") or left at all cores ("all"):
  the cost of oversubscription.

Rows whose dependency (mpi4py, joblib) is missing are skipped.
"""
import numpy as np

from .common import matrix

SIZES = [784, 256, 128, 10]


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise NotImplementedError("mpi4py is not installed") from None
    return MPI


class TimeDistributedEpoch:
    timeout = 300
    repeat = (1, 3, 60.0)
    number = 1
    N, BATCH = 12_000, 128

    def setup(self):
        self.MPI = _mpi()
        import gdcore as gd
        self.gd = gd
        self.X = matrix(self.N, SIZES[0], "float32", seed=3)
        self.y = np.random.default_rng(4).integers(0, 10, self.N)
        self.net = gd.MLP(SIZES, activation="relu", seed=0)
        self.opt = gd.optim.Adam(lr=1e-3)
        self.net.fit(self.X[:self.BATCH], self.y[:self.BATCH], epochs=1,
                     batch_size=self.BATCH, optimizer=self.opt, progress=False)

    def time_fit_one_process(self):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.BATCH, optimizer=self.opt,
                     progress=False)

    def time_distributed_fit_comm_self(self):
        self.gd.distributed.fit(self.net, self.X, self.y, comm=self.MPI.COMM_SELF, epochs=1,
                                batch_size=self.BATCH, optimizer=self.opt)


class TimeDistributedStep:
    params = ([128, 512],)
    param_names = ["batch"]
    timeout = 120

    def setup(self, batch):
        self.MPI = _mpi()
        import gdcore as gd
        self.net = gd.MLP(SIZES, activation="relu", seed=0)
        self.X = matrix(4 * batch, SIZES[0], "float32", seed=3)
        self.y = np.random.default_rng(4).integers(0, 10, 4 * batch)
        self.rows = np.random.default_rng(5).permutation(4 * batch)[:batch]
        self.X_buf = np.empty((batch, SIZES[0]), np.float32)
        self.y_buf = np.empty(batch, np.int64)
        self.buffer = np.zeros(self.net.n_params + 1, np.float32)
        self.opt = gd.optim.Adam(lr=1e-3)
        self.time_local_gradient(batch)
        self.time_optimizer_update(batch)

    def time_local_gradient(self, batch):
        Xb = np.take(self.X, self.rows, axis=0, out=self.X_buf)
        yb = np.take(self.y, self.rows, axis=0, out=self.y_buf)
        self.net._step(Xb, yb, None, True, 0.0, 0.0, 0.0, 0, None)

    def time_allreduce_comm_self(self, batch):
        self.MPI.COMM_SELF.Allreduce(self.MPI.IN_PLACE, self.buffer, op=self.MPI.SUM)

    def time_optimizer_update(self, batch):
        self.opt.step(self.net.params, self.net.grads)


class TimeParallelSearch:
    params = (["share", "all"],)
    param_names = ["worker_threads"]
    timeout = 600
    repeat = (1, 3, 120.0)
    number = 1
    N = 4_000

    def setup(self, worker_threads):
        try:
            import joblib
        except ImportError:
            raise NotImplementedError("joblib is not installed") from None
        self.threads = None if worker_threads == "share" else joblib.cpu_count()
        self.X = matrix(self.N, SIZES[0], "float32", seed=3)
        self.y = np.random.default_rng(4).integers(0, 10, self.N)
        self.search(worker_threads)          # starts the worker processes

    def search(self, worker_threads):
        from gdcore.model_selection import grid_search
        # the default network (no build function: the workers could not import one
        # from this benchmark package)
        grid_search({"hidden": [(256, 128)], "lr": [1e-3, 3e-3], "l2": [0.0, 1e-4]},
                    self.X, self.y, epochs=1, batch_size=128, n_jobs=2,
                    worker_threads=self.threads)

    def time_grid_search_n_jobs_2(self, worker_threads):
        self.search(worker_threads)
