"""gdcore: fast, exact gradient descent for dense neural networks.

Native kernels (typed Cython, OpenMP, BLAS through ``scipy.linalg.cython_blas``) live in
``gdcore.kernels``; their plain NumPy twins, with the same names and signatures, in
``gdcore.reference``.
"""
__version__ = "0.1.0"

from ._config import get_num_threads, set_num_threads, show_config
from . import datasets, kernels, optim, reference, testfunctions
from . import model_selection, plot, schedules, trajectories
from . import distributed
from .linear_model import linear_regression
from .minimize import minimize
from .checkpoint import load
from .network import MLP, gradcheck
from .training import EarlyStopping, History
from .reference import numerical_gradient

__all__ = [
    "__version__",
    "get_num_threads",
    "set_num_threads",
    "show_config",
    "reference",
    "kernels",
    "datasets",
    "testfunctions",
    "numerical_gradient",
    "optim",
    "MLP",
    "gradcheck",
    "load",
    "schedules",
    "model_selection",
    "distributed",
    "plot",
    "trajectories",
    "EarlyStopping",
    "History",
    "minimize",
    "linear_regression",
]
