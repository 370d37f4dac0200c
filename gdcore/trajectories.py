"""Optimizer trajectories on the classic test functions.

    paths = gd.trajectories.optimizer_paths(gd.testfunctions.rosenbrock, steps=3000)
    gd.plot.plot_paths(gd.testfunctions.rosenbrock, paths, "rosenbrock.png")

``ROSENBROCK`` lists, for each of the seven classic optimizers, settings that take
``minimize`` from Rosenbrock's usual start (-1.5, 2) to its minimum (1, 1), with the
iteration budget and the distance (max-norm) reached within it.  They are what the
test suite checks and what the demo draws.  Adadelta needs a small learning rate on
this function: with torch's default lr = 1 it wanders along the valley for 250,000
steps without settling.
"""
from typing import Dict, Optional

import numpy as np
from numpy.typing import ArrayLike

from . import optim
from .minimize import MinimizeResult, minimize
from .testfunctions import TestFunction

__all__ = ["ROSENBROCK", "classic_optimizers", "optimizer_paths"]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)

# name -> (make the optimizer, iteration budget, distance to (1, 1) reached within it)
ROSENBROCK = {
    "SGD": (lambda: optim.SGD(lr=2e-3), 10_000, 1e-3),
    "Momentum": (lambda: optim.SGD(lr=5e-4, momentum=0.9), 6_000, 1e-3),
    "Nesterov": (lambda: optim.SGD(lr=5e-4, momentum=0.9, nesterov=True), 6_000, 1e-3),
    "Adagrad": (lambda: optim.Adagrad(lr=0.5), 20_000, 1e-3),
    "Adadelta": (lambda: optim.Adadelta(lr=0.01, rho=0.9, eps=1e-7), 40_000, 1e-2),
    "RMSprop": (lambda: optim.RMSprop(lr=1e-4, momentum=0.9), 6_000, 1e-3),
    "Adam": (lambda: optim.Adam(lr=0.02), 4_000, 1e-3),
}


def classic_optimizers() -> Dict[str, optim.Optimizer]:
    """Fresh instances of the seven classic optimizers, with the ROSENBROCK settings."""
    return {name: make() for name, (make, _, _) in ROSENBROCK.items()}


def optimizer_paths(function: TestFunction, start: Optional[ArrayLike] = None,
                    steps: Optional[int] = None,
                    optimizers: Optional[Dict[str, optim.Optimizer]] = None,
                    tol: float = 0.0) -> Dict[str, MinimizeResult]:
    """Run ``minimize`` from ``start`` with each optimizer; return name -> result.

    Parameters
    ----------
    function : a gdcore.testfunctions function (value, gradient, start)
    start : (2,) array_like, optional
        Default: the function's suggested start.
    steps : int, optional
        Iterations per optimizer (fewer when the gradient falls below ``tol``).
        Default: each classic optimizer's ROSENBROCK budget (2000 for others).
    optimizers : dict name -> gdcore.optim optimizer, optional
        Default: ``classic_optimizers()``.
    """
    start = np.asarray(function.start if start is None else start, dtype=np.float64)
    optimizers = classic_optimizers() if optimizers is None else optimizers
    budget = lambda name: steps if steps is not None else ROSENBROCK.get(name, (0, 2000))[1]
    return {name: minimize(function, start, grad=function.gradient, optimizer=opt,
                           tol=tol, max_iter=budget(name))
            for name, opt in optimizers.items()}
