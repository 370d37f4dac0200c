"""Fused optimizer updates: native kernels against their NumPy reference.

``TimeOptimizerUpdate`` is the throughput grid (divide by ``n`` for ns/element); the
timed call is one steady-state step (step 2 after a first step, state buffers
allocated and initialised in ``setup``; step 10 for RAdam, whose rectified steps start
at step 6).  ``TimeOptimizerCall`` is the small-buffer
case written exactly as a user writes it, literal arguments and all: at 1e4 elements
the argument checks and the call from Python are a visible part of the step.
"""
from .common import BACKEND_NAMES, DTYPES, THREADS, KernelBenchmark, vector

# name -> (update function, optimizer_state options, hyperparameters)
OPTIMIZERS = {
    "sgd": ("sgd_update", {}, dict(lr=1e-3)),
    "sgd_momentum": ("sgd_update", dict(momentum=0.9), dict(lr=1e-3, momentum=0.9)),
    "nesterov": ("sgd_update", dict(momentum=0.9),
                 dict(lr=1e-3, momentum=0.9, nesterov=True)),
    "adagrad": ("adagrad_update", {}, dict(lr=1e-2)),
    "adadelta": ("adadelta_update", {}, {}),
    "rmsprop": ("rmsprop_update", {}, {}),
    "rmsprop_centered_momentum": ("rmsprop_update", dict(momentum=0.9, centered=True),
                                  dict(momentum=0.9, centered=True)),
    "adam": ("adam_update", {}, {}),
    "adam_amsgrad": ("adam_update", dict(amsgrad=True), dict(amsgrad=True)),
    "adamw": ("adamw_update", {}, {}),
    "nadam": ("nadam_update", {}, {}),
    "adamax": ("adamax_update", {}, {}),
    "radam": ("radam_update", {}, {}),
    "rprop": ("rprop_update", {}, {}),
}
# updates whose bias corrections / decayed rate depend on the step number
_STEPPED = ("sgd_update", "adagrad_update", "adam_update", "adamw_update", "nadam_update",
            "adamax_update", "radam_update")
# the timed step where the first steps differ from the steady state: RAdam's variance
# rectification starts at step 6
_TIMED_STEP = {"radam_update": 10}


def make_update(kernels, optimizer, dtype, n, n_threads):
    """(update, args, kwargs) of one steady-state step: state allocated and one step
    taken, so that momentum buffers and moments hold realistic values."""
    func_name, state_options, hyper = OPTIMIZERS[optimizer]
    update = getattr(kernels, func_name)
    params = vector(n, dtype, seed=1)
    grads = vector(n, dtype, seed=2)
    state = kernels.optimizer_state(func_name[: -len("_update")], params, **state_options)
    kwargs = dict(hyper, n_threads=n_threads)
    if func_name in _STEPPED:
        update(params, grads, **state, **kwargs, step=1)
        kwargs["step"] = _TIMED_STEP.get(func_name, 2)
    else:
        update(params, grads, **state, **kwargs)
    # state as keywords: the update's argument names are optimizer_state's keys
    kwargs.update(state)
    return update, (params, grads), kwargs


class TimeOptimizerUpdate(KernelBenchmark):
    """One step over n parameters; ns/element = time / n."""
    params = (BACKEND_NAMES, list(OPTIMIZERS), DTYPES,
              [10_000, 1_000_000, 10_000_000], THREADS)
    param_names = ["backend", "optimizer", "dtype", "n", "n_threads"]
    timeout = 120

    @staticmethod
    def thread_work(backend_name, optimizer, dtype, n, n_threads):
        return n, "optimizer_min_per_thread"

    def setup(self, backend_name, optimizer, dtype, n, n_threads):
        work = self.thread_work(backend_name, optimizer, dtype, n, n_threads)
        kernels = self.prepare(backend_name, n_threads, work)
        self.update, self.args, self.kwargs = make_update(kernels, optimizer, dtype, n,
                                                          n_threads)

    def time_update(self, backend_name, optimizer, dtype, n, n_threads):
        self.update(*self.args, **self.kwargs)


class TimeOptimizerCall(KernelBenchmark):
    """One call from Python at 1e4 elements, argument validation included: the call
    a training loop makes, with literal keyword arguments (no ``**`` unpacking)."""
    params = (BACKEND_NAMES, DTYPES, [1])     # 1e4 elements never split
    param_names = ["backend", "dtype", "n_threads"]
    n = 10_000

    @classmethod
    def thread_work(cls, backend_name, dtype, n_threads):
        return cls.n, "optimizer_min_per_thread"

    def setup(self, backend_name, dtype, n_threads):
        kernels = self.prepare(backend_name, n_threads,
                               self.thread_work(backend_name, dtype, n_threads))
        self.adam_update = kernels.adam_update
        self.sgd_update = kernels.sgd_update
        self.p = vector(self.n, dtype, seed=1)
        self.g = vector(self.n, dtype, seed=2)
        self.m = vector(self.n, dtype, seed=3) * 0.1
        self.v = vector(self.n, dtype, seed=4) ** 2 * 0.01
        self.buf = vector(self.n, dtype, seed=5) * 0.1

    def time_adam(self, backend_name, dtype, n_threads):
        self.adam_update(self.p, self.g, self.m, self.v, step=2, lr=1e-3,
                         n_threads=n_threads)

    def time_sgd_momentum(self, backend_name, dtype, n_threads):
        self.sgd_update(self.p, self.g, self.buf, step=2, lr=1e-3, momentum=0.9,
                        n_threads=n_threads)
