"""Activations and their backward pass, computed from the output.

::

    identity  y = u                          f'(u) = 1
    sigmoid   y = 1 / (1 + exp(-u))          f'(u) = y (1 - y)
    tanh      y = tanh(u)                    f'(u) = 1 - y^2
    relu      y = max(u, 0)                  f'(u) = 1 if y > 0 else 0
    softmax   y_k = exp(u_k) / sum_j exp(u_j)  (per row)
              dE/du_k = y_k (dE/dy_k - sum_j dE/dy_j y_j)

The parametrised activations follow torch.nn.functional's formulas and defaults::

    leaky_relu  y = u if u > 0 else s u          f' = 1 if y > 0 else s
                (negative_slope s >= 0, default 0.01)
    elu         y = u if u > 0 else a expm1(u)   f' = 1 if y > 0 else y + a
                (alpha a > 0, default 1)
    softplus    y = u if b u > th else log1p(exp(b u)) / b
                f' = 1 if b y > th else sigmoid(b u) = -expm1(-b y)
                (beta b > 0, default 1; threshold th, default 20)
    gelu        y = u Phi(u) = u (1 + erf(u / sqrt 2)) / 2   (approximate='none')
                f' = Phi(u) + u phi(u)
                y = u (1 + tanh(k (u + 0.044715 u^3))) / 2, k = sqrt(2 / pi)
                (approximate='tanh'), f' its derivative
    silu        y = u sigmoid(u)                 f' = s (1 + u (1 - s)), s = sigmoid(u)

``name`` is an activation spec: a name (parameters at their defaults) or a pair
``(name, {parameter: value})``, e.g. ``("leaky_relu", {"negative_slope": 0.2})``;
an unknown name or parameter, or a value out of range, raises ValueError naming it.

``activation_backward`` takes the stored output Y, so U need not be kept -- except
for gelu and silu, whose derivative is not a function of the output: for them it
takes the pre-activation U in place of Y.  Softplus is computed as
``(max(b u, 0) + log1p(exp(-|b u|))) / b``, equal to torch's formula, which never
overflows.  Torch's softplus jumps at the threshold (from log1p(exp(th)) / b to
th / b), so an output in between may come from either side: its derivative from the
output is 1 where torch's may be sigmoid(th), a difference below exp(-th) (2e-9 at
the default threshold 20).
"""
from typing import Any, Optional

import numpy as np
import scipy.special

from .. import _validation as v
from .._typing import ArrayLike, FloatArray, Spec, Threads

__all__ = ["activation", "activation_backward"]

_PARAMETRISED = ("leaky_relu", "elu", "gelu", "softplus", "silu")


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


def _parametrised(name, params, U, out):
    t = U.dtype.type
    if name == "leaky_relu":
        out[...] = np.where(U > 0, U, U * t(params["negative_slope"]))
    elif name == "elu":
        out[...] = np.where(U > 0, U, t(params["alpha"]) * np.expm1(np.minimum(U, 0)))
    elif name == "gelu" and params["approximate"] == "tanh":
        inner = t(0.7978845608028654) * (U + t(0.044715) * U * U * U)
        out[...] = t(0.5) * U * (1 + np.tanh(inner))
    elif name == "gelu":
        out[...] = U * t(0.5) * (1 + scipy.special.erf(U * t(0.7071067811865476)))
    elif name == "softplus":
        beta, threshold = t(params["beta"]), params["threshold"]
        bu = beta * U
        smooth = (np.maximum(bu, 0) + np.log1p(np.exp(-np.abs(bu)))) / beta
        out[...] = np.where(bu > t(threshold), U, smooth)
    else:
        out[...] = U * _sigmoid(U, np.empty_like(U))
    return out


def _parametrised_slope(name, params, S):
    """f' from the stored values S (Y, or U for gelu and silu)."""
    t = S.dtype.type
    if name == "leaky_relu":
        return np.where(S > 0, t(1), t(params["negative_slope"]))
    if name == "elu":
        return np.where(S > 0, t(1), S + t(params["alpha"]))
    if name == "softplus":
        by = t(params["beta"]) * S
        with np.errstate(over="ignore"):
            return np.where(by > t(params["threshold"]), t(1), -np.expm1(-by))
    if name == "gelu":
        x2 = S * S
        if params["approximate"] == "tanh":
            th = np.tanh(t(0.7978845608028654) * (S + t(0.044715) * x2 * S))
            return (t(0.5) * (1 + th) + t(0.5) * S * (1 - th * th)
                    * (t(0.7978845608028654) * (1 + t(0.134145) * x2)))
        return (t(0.5) * (1 + scipy.special.erf(S * t(0.7071067811865476)))
                + S * np.exp(t(-0.5) * x2) * t(0.3989422804014327))
    sg = _sigmoid(S, np.empty_like(S))
    return sg * (1 + S * (1 - sg))


def activation(name: Spec, U: ArrayLike, *, out: Optional[FloatArray] = None,
               n_threads: Threads = None) -> FloatArray:
    """Y = f(U), elementwise (softmax: per row).

    Parameters
    ----------
    name : str or (str, dict)
        'identity', 'sigmoid', 'tanh', 'relu', 'softmax', 'leaky_relu', 'elu',
        'gelu', 'softplus' or 'silu', alone or with its parameters (see the module
        docstring).
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
    name, params = v.activation_spec(name)
    U = v.float_array(U, "U", 2)
    out = v.out_array(out, "out", U.shape, U.dtype, [("U", U)], may_alias=("U",))
    if name in _PARAMETRISED:
        return _parametrised(name, params, U, out)
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


def activation_backward(name: Spec, Y: ArrayLike, dY: ArrayLike, *,
                        out: Optional[FloatArray] = None,
                        n_threads: Threads = None) -> FloatArray:
    """dE/dU from the activation's output Y and the upstream gradient dY = dE/dY.

    identity: dY;  sigmoid: dY * Y * (1 - Y);  tanh: dY * (1 - Y^2);
    relu: dY where Y > 0, else 0;  softmax: Y * (dY - rowsum(dY * Y));
    the parametrised activations: dY * f' (see the module docstring).

    Parameters
    ----------
    name : str or (str, dict)
        An activation spec, as for ``activation``.
    Y, dY : ndarray of shape (n_samples, n_units), one float dtype
        Y is the activation's output -- for 'gelu' and 'silu' the pre-activation U.
    out : ndarray, optional
        Result buffer; may be dY itself.

    Returns
    -------
    dU : ndarray of Y's shape and dtype.
    """
    v.check_threads(n_threads)
    name, params = v.activation_spec(name)
    Y = v.float_array(Y, "Y", 2)
    dY = v.float_array(dY, "dY", 2, Y.dtype)
    v.check_shape(dY, "dY", Y.shape, "Y.shape")
    out = v.out_array(out, "out", Y.shape, Y.dtype, [("Y", Y), ("dY", dY)], may_alias=("dY",))
    if name in _PARAMETRISED:
        out[...] = dY * _parametrised_slope(name, params, Y)
    elif name == "identity":
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
