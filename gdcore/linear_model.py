"""Linear regression y = b + W^T x with the mean squared error, two ways::

    method="lstsq":  the least-squares solution of [1, X] [b; W] = y (numpy.linalg.lstsq)
    method="gd":     gradient descent on E(b, W) = 1/N sum_i (b + W^T x_i - y_i)^2,
                     dE/dW = 2/N X^T r,  dE/db = 2/N sum_i r_i,  r = b + X W - y

Gradient descent converges to the least-squares solution; how fast depends on the
conditioning of [1, X] (unscaled features make it slow; ``tol`` bounds the gradient at
the end, not the distance to the solution).
"""
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _validation as v
from . import optim as _optim
from .minimize import minimize

__all__ = ["linear_regression", "LinearRegressionResult"]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


@dataclass
class LinearRegressionResult:
    """What ``linear_regression`` returns.

    A gradient-descent run whose iterates overflow stops with ``converged=False`` and a
    message starting with "diverged" (lower ``lr`` or scale the features).

    Attributes
    ----------
    coef : ndarray
        Shape (n_features,) for one target, (n_features, n_targets) otherwise.
    intercept : float or ndarray
        A float for one target, shape (n_targets,) otherwise.
    mse : float
        The mean squared error on the data.
    method : {'gd', 'lstsq'}
        How the fit was made.
    nit : int
        Gradient-descent updates made (0 for lstsq).
    converged : bool
        The gradient-descent run reached ``tol`` (always True for lstsq).
    path : ndarray or None
        Iterates of ``[b, W...]`` of the gradient-descent run, x0 first; None for
        lstsq.
    message : str
        Why the run stopped.
    """

    coef: NDArray[np.float64]
    intercept: Union[float, NDArray[np.float64]]
    mse: float
    method: str
    nit: int = 0
    converged: bool = True
    path: Optional[NDArray[np.float64]] = field(default=None, repr=False)
    message: str = ""

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """``X @ coef + intercept``, X of shape (n_samples, n_features) or (n_samples,)
        for one feature."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(-1, 1)
        return X @ self.coef + self.intercept


def _check_xy(X, y):
    X = np.asarray(X)
    if X.dtype.kind in "iub":
        X = X.astype(np.float64)
    if X.dtype.kind != "f":
        raise TypeError(f"X must be real, got dtype {X.dtype}")
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2:
        raise ValueError(f"X must be 1-D or 2-D (n_samples, n_features), got shape {X.shape}")
    y = v.real_array(y, "y")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have {X.shape[0]} rows like X, got shape {y.shape}")
    if X.shape[0] == 0:
        raise ValueError("X has no samples")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("X and y must be finite")
    return X.astype(np.float64), y


def linear_regression(X: ArrayLike, y: ArrayLike, method: str = "gd", lr: float = 0.01,
                      optimizer: Optional[_optim.Optimizer] = None, tol: float = 1e-8,
                      max_iter: int = 200_000) -> LinearRegressionResult:
    """Fit y = b + W^T x by gradient descent ("gd") or least squares ("lstsq").

    With several targets the objective is the sum of the per-target mean squared
    errors (each target is its own regression).

    Parameters
    ----------
    X : array_like
        Shape (n_samples, n_features), or (n_samples,) for one feature.
    y : array_like
        Shape (n_samples,) or (n_samples, n_targets).
    method : {'gd', 'lstsq'}
        Gradient descent, or the least-squares solution of numpy.linalg.lstsq.
    lr, optimizer, tol, max_iter
        Gradient-descent settings, passed to ``gd.minimize`` (start: all zeros).

    Returns
    -------
    LinearRegressionResult
    """
    v.check_name(method, "method", ("gd", "lstsq"))
    X_, y_ = _check_xy(X, y)
    n, d = X_.shape
    targets = y_.reshape(n, -1)
    A = np.hstack([np.ones((n, 1)), X_])
    if method == "lstsq":
        theta, *_ = np.linalg.lstsq(A, targets, rcond=None)
        nit, converged, path = 0, True, None
    else:
        k = targets.shape[1]

        def unpack(flat):
            return flat.reshape(d + 1, k)

        def mse(flat):
            r = A @ unpack(flat) - targets
            return float(np.mean(r * r)) * k

        def grad(flat):
            r = A @ unpack(flat) - targets
            return (2.0 / n) * (A.T @ r).reshape(-1)

        result = minimize(mse, np.zeros((d + 1) * k), grad=grad, lr=lr, optimizer=optimizer,
                          tol=tol, max_iter=max_iter)
        theta = unpack(np.asarray(result.x))
        nit, converged, path, message = result.nit, result.converged, result.path, result.message
    if method == "lstsq":
        message = "least-squares solution"
    with np.errstate(all="ignore"):
        residual = A @ theta - targets
        mse_value = float(np.mean(residual * residual))
    if not np.isfinite(mse_value) and converged:
        converged = False
        message = ("diverged: the mean squared error overflows (scale X and y)"
                   if method == "gd" else
                   "the mean squared error overflows (scale X and y)")
    intercept, coef = theta[0], theta[1:]
    if y_.ndim == 1:
        intercept, coef = float(intercept[0]), coef[:, 0]
    return LinearRegressionResult(coef=coef, intercept=intercept,
                                  mse=mse_value, method=method, nit=nit,
                                  converged=converged, path=path, message=message)
