"""Plain NumPy twins of every native kernel: the oracle in tests and the baseline in
benchmarks.  Same names and signatures as ``gdcore.kernels``; ``n_threads`` is accepted
and ignored.  The docstrings carry the equations.

One module per native module (``gdcore/_<name>.pxi``): ``activations``, ``dense``,
``losses``, ``optimizers`` and ``network`` (the network's training step, its dropout
masks and its input-noise stream).
"""
from . import network
from .activations import activation, activation_backward
from .dense import dense_backward, dense_forward
from .losses import loss, loss_delta
from .optimizers import (adadelta_update, adagrad_update, adam_update, adamax_update,
                         adamw_update, nadam_update, optimizer_state, radam_update,
                         rmsprop_update, rprop_update, sgd_update)
from .optimizers import clip_grad_norm, clip_grad_value

__all__ = [
    "activation", "activation_backward", "dense_forward", "dense_backward",
    "loss", "loss_delta", "optimizer_state",
    "sgd_update", "adagrad_update", "adadelta_update", "rmsprop_update",
    "adam_update", "adamw_update", "nadam_update", "adamax_update", "radam_update",
    "rprop_update",
    "clip_grad_norm", "clip_grad_value",
]
# the twin modules, one per native module
_MODULES = ("activations", "dense", "losses", "network", "optimizers")


def __dir__():
    """Tab completion and ``dir()`` show the public names and the twin modules only."""
    return list(__all__) + list(_MODULES)
