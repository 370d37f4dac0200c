"""Numerical gradients by central differences."""
from typing import Any, Callable, Union

import numpy as np

from . import _validation as v
from ._typing import ArrayLike, NDArray

__all__ = ["numerical_gradient"]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


def numerical_gradient(f: Callable[..., Any], x: ArrayLike, h: float = 1e-5
                       ) -> Union[float, NDArray[np.float64]]:
    """Central-difference gradient of a scalar function.

    ::

        df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2 h)

    The truncation error is O(h^2), the rounding error O(eps / h); h = 1e-5 balances
    them for float64 inputs of order 1 (relative error near 1e-10).  The step is
    scaled to the point, ``h_i = h * max(1, |x_i|)``, so that it stays above the spacing
    of floats at large ``|x_i|`` (a fixed step vanishes there: x + h == x and the
    gradient reads 0).

    Parameters
    ----------
    f : callable
        f(x) -> a real number, for x of the shape of ``x``.
    x : float or ndarray
        The point.  It is not modified (f sees a float64 copy, perturbed one element
        at a time).
    h : float
        The step, > 0.

    Returns
    -------
    float or ndarray
        The gradient, shaped like ``x`` (a float for a scalar x).
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    h = v.check_float(h, "h", 0.0, low_open=True)
    scalar = np.ndim(x) == 0
    point = np.array(v.real_array(x, "x"), dtype=np.float64)
    flat = point.reshape(-1)
    grad = np.empty_like(flat)
    for i in range(flat.size):
        saved = flat[i]
        step = h * max(1.0, abs(float(saved)))
        flat[i] = saved + step
        f_plus = float(f(point))
        flat[i] = saved - step
        f_minus = float(f(point))
        flat[i] = saved
        # the step actually taken, (x + step) - (x - step), after rounding
        grad[i] = (f_plus - f_minus) / ((saved + step) - (saved - step))
    return float(grad[0]) if scalar else grad.reshape(point.shape)
