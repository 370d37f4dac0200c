"""Fused optimizer updates: native kernels against their NumPy reference."""
from .common import backend, vector

_OPTIMIZERS = {
    "sgd": ("sgd_update", dict(lr=1e-3)),
    "sgd_momentum": ("sgd_update", dict(lr=1e-3, momentum=0.9)),
    "adagrad": ("adagrad_update", dict(lr=1e-2)),
    "adadelta": ("adadelta_update", dict()),
    "rmsprop": ("rmsprop_update", dict()),
    "adam": ("adam_update", dict()),
    "adamw": ("adamw_update", dict()),
}


class TimeOptimizerUpdate:
    params = (["reference", "native"], list(_OPTIMIZERS), ["float32", "float64"],
              [10_000, 1_000_000, 10_000_000], [1, 2])
    param_names = ["backend", "optimizer", "dtype", "n", "n_threads"]
    timeout = 120

    def setup(self, backend_name, optimizer, dtype, n, n_threads):
        if backend_name == "reference" and n_threads != 1:
            raise NotImplementedError("the reference has no threads")
        kernels = backend(backend_name)
        func_name, hyper = _OPTIMIZERS[optimizer]
        self.update = getattr(kernels, func_name)
        self.params_ = vector(n, dtype, seed=1)
        self.grads = vector(n, dtype, seed=2)
        self.hyper = dict(hyper, n_threads=n_threads)
        short = func_name[: -len("_update")]
        self.state = kernels.optimizer_state(short, self.params_,
                                             momentum=hyper.get("momentum", 0.0))
        if func_name in ("sgd_update", "adagrad_update", "adam_update", "adamw_update"):
            self.hyper["step"] = 2
        # one step first: buffers initialised as in a running optimizer
        self.update(self.params_, self.grads, **self.state, **self.hyper)

    def time_update(self, backend_name, optimizer, dtype, n, n_threads):
        self.update(self.params_, self.grads, **self.state, **self.hyper)
