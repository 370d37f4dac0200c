"""Many training runs at once on joblib (``n_jobs`` of grid_search and cross_validate).

joblib is imported only when ``n_jobs != 1``: it is not a run-time dependency of
gdcore (scikit-learn, and so the ``test`` extra, brings it; the ``dask`` extra names
it).  Because joblib's backends run the same code on a Dask or Ray cluster (``with
joblib.parallel_config(backend="dask"): grid_search(..., n_jobs=-1)``), what travels
to a worker is plain: the function that builds a network (``build`` or a
``functools.partial`` of ``MLP``), arrays, fit keyword arguments in which optimizers
are replaced by their class and hyperparameters, and, back, numbers plus the trained
network's state as arrays and dicts (parameters, optimizer state, generator state,
schedule, history).  The parent rebuilds the one network it keeps from that state, so
nothing depends on pickling a network or an optimizer.

Threads: every task limits the library's OpenMP threads and the BLAS pools
(threadpoolctl) to its share of the cores, ``max(1, cpu_count // n_workers)``, so
``n_workers`` processes never run more threads than there are cores.  gdcore's own
reductions give the same bits for any thread count; BLAS may round GEMMs differently
when rows are split among another number of threads (README, Exactness).
"""
import functools

import numpy as np

from . import _openmp
from . import optim as _optim
from . import schedules as _schedules
from . import _validation as v

__all__ = ["require_joblib", "threads_per_worker", "run", "net_state", "restore_net"]


def require_joblib(n_jobs):
    """The joblib module, or an ImportError that says how to get it."""
    try:
        import joblib
    except ImportError:
        raise ImportError(f"n_jobs={n_jobs} runs the fits on joblib, which is not "
                          f"installed: pip install joblib (or gdcore[dask]), or use "
                          f"n_jobs=1") from None
    return joblib


def check_n_jobs(n_jobs):
    """n_jobs as joblib takes it: a non-zero int (-1: all cores) or None (= 1)."""
    if n_jobs is None:
        return 1
    n_jobs = v.check_int(n_jobs, "n_jobs")
    if n_jobs == 0:
        raise ValueError("n_jobs must be a non-zero int (-1 for all cores), got 0")
    return n_jobs


def threads_per_worker(joblib, n_jobs, n_tasks, worker_threads=None):
    """Threads each task may use: ``worker_threads`` when given, else the cores
    divided among the workers that run at once (at least 1)."""
    if worker_threads is not None:
        return v.check_int(worker_threads, "worker_threads", low=1)
    workers = max(1, min(joblib.effective_n_jobs(n_jobs), n_tasks))
    return max(1, joblib.cpu_count() // workers)


class OptimizerSpec:
    """An optimizer's class, hyperparameters and backend: what a worker needs to make
    a fresh one (no state travels)."""

    def __init__(self, optimizer):
        self.name = type(optimizer).__name__
        self.hyperparameters = dict(optimizer.hyperparameters)
        self.backend = optimizer.backend

    def build(self):
        return getattr(_optim, self.name)(backend=self.backend, **self.hyperparameters)


def portable(kwargs):
    """``kwargs`` with optimizers replaced by OptimizerSpec."""
    return {k: OptimizerSpec(x) if isinstance(x, _optim.Optimizer) else x
            for k, x in kwargs.items()}


def local(kwargs):
    """The inverse of ``portable``, in the worker."""
    return {k: x.build() if isinstance(x, OptimizerSpec) else x for k, x in kwargs.items()}


def _in_worker(threads, fn, args):
    from threadpoolctl import threadpool_limits
    saved = _openmp.library_threads()
    _openmp.set_library_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            return fn(*args)
    finally:
        _openmp.set_library_threads(saved)


def run(fn, tasks, n_jobs, worker_threads=None):
    """``[fn(*args) for args in tasks]`` on joblib with ``n_jobs``, each call limited
    to its share of the cores; results in task order."""
    joblib = require_joblib(n_jobs)
    tasks = list(tasks)
    threads = threads_per_worker(joblib, n_jobs, len(tasks), worker_threads)
    return joblib.Parallel(n_jobs=n_jobs)(
        joblib.delayed(_in_worker)(threads, fn, args) for args in tasks)


def net_state(net):
    """A trained network's state as plain data (arrays, numbers, dicts)."""
    return {
        "params": net.params.copy(),
        "optimizer": None if net.optimizer is None else
        (OptimizerSpec(net.optimizer), net.optimizer.state_dict()),
        "epochs_trained": net.epochs_trained,
        "rng": net._rng.bit_generator.state,
        "lr_schedule": None if net.lr_schedule is None else net.lr_schedule.state_dict(),
        "history": net.history.as_dict(),
    }


def restore_net(net, state):
    """Put ``net_state`` into a freshly built network of the same architecture; the
    result continues training exactly as the original would."""
    from .training import History
    if net.params.shape != state["params"].shape or net.params.dtype != state["params"].dtype:
        raise ValueError("the rebuilt network does not match the trained one: build "
                         "must return the same architecture for the same arguments")
    net.params[...] = state["params"]
    if state["optimizer"] is not None:
        spec, optimizer_state = state["optimizer"]
        net.optimizer = spec.build()
        net.optimizer.load_state_dict(optimizer_state)
    net.epochs_trained = state["epochs_trained"]
    net._rng = np.random.Generator(getattr(np.random, state["rng"]["bit_generator"])())
    net._rng.bit_generator.state = state["rng"]
    if state["lr_schedule"] is not None:
        net.lr_schedule = _schedules.from_state_dict(state["lr_schedule"])
    history = History([k for k in state["history"] if k not in History.KEYS])
    for key in history.keys():
        getattr(history, key).extend(state["history"][key])
    net.history = history
    return net


def partial(fn, *args, **kwargs):
    """functools.partial (picklable when ``fn`` is)."""
    return functools.partial(fn, *args, **kwargs)
