"""``minimize``: gradient descent on any differentiable function::

    result = gd.minimize(lambda x: x**2, 5.0, lr=0.01, tol=0.1)
    result.x, result.fun, result.nit, result.converged, result.path

Plain gradient descent, x <- x - lr * grad(x), by default; any ``gdcore.optim``
optimizer otherwise.  Iteration stops before an update when the largest absolute
gradient component is below ``tol``, so ``nit`` counts updates and ``path`` holds the
``nit + 1`` iterates from ``x0``.  Without ``grad`` the gradient is taken by central
differences (``gdcore.numerical_gradient``).
"""
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _validation as v
from . import optim as _optim
from .gradients import numerical_gradient

__all__ = ["minimize", "MinimizeResult"]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


@dataclass
class MinimizeResult:
    """What ``minimize`` returns.

    Attributes
    ----------
    x : float or ndarray
        The last iterate (a float for a scalar x0).
    fun : float
        ``fun(x)``.
    grad : float or ndarray
        The gradient at x.
    nit : int
        Number of updates made.
    converged : bool
        ``max |grad| < tol`` was reached.
    path : ndarray
        Every iterate, x0 first: shape (nit + 1,) for a scalar x0, (nit + 1, n)
        otherwise.
    message : str
        Why the iteration stopped.
    """

    x: Union[float, NDArray[np.float64]]
    fun: float
    grad: Union[float, NDArray[np.float64]]
    nit: int
    converged: bool
    path: NDArray[np.float64] = field(repr=False)
    message: str = ""


def minimize(fun: Callable[[Any], float], x0: ArrayLike,
             grad: Optional[Callable[[Any], ArrayLike]] = None, lr: float = 0.01,
             optimizer: Optional[_optim.Optimizer] = None, tol: float = 1e-6,
             max_iter: int = 10_000, callback: Optional[Callable[[Any, int], Any]] = None,
             h: float = 1e-5) -> MinimizeResult:
    """Minimize ``fun`` by gradient descent from ``x0``.

    Parameters
    ----------
    fun : callable
        fun(x) -> float; x is a float when x0 is a scalar, a float64 array otherwise.
    x0 : float or array_like
    grad : callable, optional
        grad(x) -> gradient of the shape of x.  Default: central differences of fun
        with step ``h``.
    lr : float > 0
        Learning rate of plain gradient descent (ignored when ``optimizer`` is given:
        the optimizer's own lr applies).
    optimizer : gdcore.optim optimizer, optional
        E.g. ``gd.optim.Adam(lr=0.1)``; it is used as given (its state continues).
    tol : float >= 0
        Stop when ``max |grad(x)| < tol``.
    max_iter : int >= 0
        The most updates to make.
    callback : callable, optional
        callback(x, k) after update k (x is a copy); a true return value stops.
    h : float > 0
        Step of the numerical gradient.

    Returns
    -------
    MinimizeResult
        Iteration also stops, with ``converged=False`` and a message saying it
        diverged, when x, fun or the gradient becomes NaN or infinite or ``fun`` /
        ``grad`` overflow (OverflowError); NumPy floating-point warnings inside the
        run are silenced, since the result reports them.
    """
    if not callable(fun):
        raise TypeError(f"fun must be callable, got {type(fun).__name__}")
    if grad is not None and not callable(grad):
        raise TypeError(f"grad must be callable or None, got {type(grad).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if optimizer is not None and not isinstance(optimizer, _optim.Optimizer):
        raise TypeError(f"optimizer must be a gdcore.optim optimizer, got "
                        f"{type(optimizer).__name__}")
    lr = v.check_float(lr, "lr", 0.0, low_open=True)
    tol = v.check_float(tol, "tol", 0.0)
    max_iter = v.check_int(max_iter, "max_iter", low=0)
    h = v.check_float(h, "h", 0.0, low_open=True)
    scalar = np.ndim(x0) == 0
    x = np.array(v.real_array(x0, "x0"), dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("x0 is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError("x0 contains NaN or infinity")
    shape = np.shape(x0)

    def as_user(flat):
        return float(flat[0]) if scalar else flat.reshape(shape).copy()

    def gradient(flat):
        point = as_user(flat)
        try:
            g = grad(point) if grad is not None else numerical_gradient(fun, point, h=h)
        except OverflowError:
            return np.full(flat.shape, np.inf)
        g = v.real_array(g, "grad(x)").reshape(-1)
        if g.shape != flat.shape:
            raise ValueError(f"grad returned {g.size} values for a point of {flat.size}")
        return g

    with np.errstate(all="ignore"):
        return _run(fun, x, gradient, as_user, shape, scalar, lr, optimizer, tol,
                    max_iter, callback)


def _run(fun, x, gradient, as_user, shape, scalar, lr, optimizer, tol, max_iter, callback):
    path = [x.copy()]
    nit, converged, message = 0, False, "maximum number of iterations reached"
    while True:
        g = gradient(x)
        if not np.all(np.isfinite(g)):
            message = "diverged: the gradient is not finite"
            break
        if np.max(np.abs(g)) < tol:
            converged, message = True, f"max |grad| < tol = {tol}"
            break
        if nit >= max_iter:
            break
        if optimizer is None:
            x -= lr * g
        else:
            optimizer.step(x, g)
        nit += 1
        path.append(x.copy())
        if not np.all(np.isfinite(x)):
            message = "diverged: x is not finite"
            break
        if callback is not None and callback(as_user(x), nit):
            message = "stopped by the callback"
            g = gradient(x)
            break
    try:
        value = float(fun(as_user(x)))
    except OverflowError:
        value = math.inf
    path = np.array(path)
    if scalar:
        path = path[:, 0]
    else:
        path = path.reshape((len(path),) + shape)
    if not math.isfinite(value):
        if converged or not message.startswith("diverged"):
            message = "diverged: fun is not finite at the last iterate"
        converged = False
    return MinimizeResult(x=as_user(x), fun=value, grad=as_user(g), nit=nit,
                          converged=converged, path=path, message=message)
