"""gdcore: fast, exact gradient descent for dense neural networks.

Native kernels (typed Cython, OpenMP, BLAS through ``scipy.linalg.cython_blas``) live in
``gdcore.kernels``; their plain NumPy twins, with the same names and signatures, in
``gdcore.reference``.
"""
__version__ = "0.1.0"


def _check_compiled():
    """Fail with instructions, not a confusing error, when the compiled modules are
    missing: typically Python imported this source tree (the current directory comes
    first on the path) instead of the installed, compiled package."""
    import importlib.machinery
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    if not any(name.startswith("_openmp") and name.endswith(suffixes)
               for name in os.listdir(here)):
        raise ImportError(
            f"gdcore's compiled modules are missing in {here}.\n"
            f"You are probably importing gdcore from its source tree (the current "
            f"directory, or a path added to sys.path), which has no compiled modules.\n"
            f"Either run Python from another directory to use the installed gdcore, or "
            f"build in place first:\n"
            f"    python -m pip install .                    (then leave the source tree)\n"
            f"    python setup.py build_ext --inplace        (to work inside it)")


_check_compiled()

from ._config import get_num_threads, set_num_threads, show_config
from . import datasets, kernels, optim, reference, testfunctions
from . import callbacks, model_selection, plot, schedules, trajectories
from . import distributed
from .linear_model import linear_regression
from .minimize import minimize
from .network import MLP, gradcheck, load
from .callbacks import CSVLogger, ModelCheckpoint
from .training import EarlyStopping, History
from .gradients import numerical_gradient

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
    "callbacks",
    "model_selection",
    "distributed",
    "plot",
    "trajectories",
    "EarlyStopping",
    "ModelCheckpoint",
    "CSVLogger",
    "History",
    "minimize",
    "linear_regression",
    "network",
    "training",
    "checkpoint",
    "linear_model",
]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)
