"""Activations and their backward pass, computed from the output.

::

    identity  y = u                          f'(u) = 1
    sigmoid   y = 1 / (1 + exp(-u))          f'(u) = y (1 - y)
    tanh      y = tanh(u)                    f'(u) = 1 - y^2
    relu      y = max(u, 0)                  f'(u) = 1 if y > 0 else 0
    softmax   y_k = exp(u_k) / sum_j exp(u_j)  (per row)
              dE/du_k = y_k (dE/dy_k - sum_j dE/dy_j y_j)

``activation_backward`` takes the stored output Y, so U need not be kept.
"""
from typing import Optional

import numpy as np

from .. import _validation as v
from .._typing import ArrayLike, FloatArray, Threads

__all__ = ["activation", "activation_backward"]


def _sigmoid(U, out):
    # Stable for any |u|: exp only ever sees -|u| <= 0, so it cannot overflow.
    e = np.exp(-np.abs(U))
    np.divide(np.where(U >= 0, 1, e), 1 + e, out=out)
    return out


def _softmax(U, out):
    # Shift each row by its maximum: exp then sees values <= 0 (log-sum-exp trick).
    e = np.exp(U - U.max(axis=1, keepdims=True)) if U.shape[1] else U.copy()
    np.divide(e, e.sum(axis=1, keepdims=True), out=out)
    return out


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


def activation(name: str, U: ArrayLike, *, out: Optional[FloatArray] = None,
               n_threads: Threads = None) -> FloatArray:
    """Y = f(U), elementwise (softmax: per row).

    Parameters
    ----------
    name : {'identity', 'sigmoid', 'tanh', 'relu', 'softmax'}
    U : ndarray of shape (n_samples, n_units), float32 or float64
    out : ndarray, optional
        Result buffer of U's shape and dtype; may be U itself.
    n_threads : int, optional
        Accepted for signature parity with ``gdcore.kernels``; NumPy decides.

    Returns
    -------
    Y : ndarray, the same shape and dtype as U.
    """
    v.check_threads(n_threads)
    v.check_name(name, "activation", v.ACTIVATIONS)
    U = v.float_array(U, "U", 2)
    out = v.out_array(out, "out", U.shape, U.dtype, [("U", U)], may_alias=("U",))
    if name == "identity":
        out[...] = U
    elif name == "sigmoid":
        _sigmoid(U, out)
    elif name == "tanh":
        np.tanh(U, out=out)
    elif name == "relu":
        np.maximum(U, 0, out=out)
    else:
        _softmax(U, out)
    return out


def activation_backward(name: str, Y: ArrayLike, dY: ArrayLike, *,
                        out: Optional[FloatArray] = None,
                        n_threads: Threads = None) -> FloatArray:
    """dE/dU from the activation's output Y and the upstream gradient dY = dE/dY.

    identity: dY;  sigmoid: dY * Y * (1 - Y);  tanh: dY * (1 - Y^2);
    relu: dY where Y > 0, else 0;  softmax: Y * (dY - rowsum(dY * Y)).

    Parameters
    ----------
    name : {'identity', 'sigmoid', 'tanh', 'relu', 'softmax'}
    Y, dY : ndarray of shape (n_samples, n_units), one float dtype
    out : ndarray, optional
        Result buffer; may be dY itself.

    Returns
    -------
    dU : ndarray of Y's shape and dtype.
    """
    v.check_threads(n_threads)
    v.check_name(name, "activation", v.ACTIVATIONS)
    Y = v.float_array(Y, "Y", 2)
    dY = v.float_array(dY, "dY", 2, Y.dtype)
    v.check_shape(dY, "dY", Y.shape, "Y.shape")
    out = v.out_array(out, "out", Y.shape, Y.dtype, [("Y", Y), ("dY", dY)], may_alias=("dY",))
    if name == "identity":
        out[...] = dY
    elif name == "sigmoid":
        out[...] = dY * Y * (1 - Y)
    elif name == "tanh":
        out[...] = dY * (1 - Y * Y)
    elif name == "relu":
        out[...] = np.where(Y > 0, dY, 0)
    else:
        out[...] = Y * (dY - (dY * Y).sum(axis=1, keepdims=True))
    return out
