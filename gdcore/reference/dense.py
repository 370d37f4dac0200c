"""A dense layer, batched: rows are samples and W has shape (n_in, n_out).

::

    forward    U = X @ W + b,   Y = f(U)
    backward   D = dY * f'(U)   (from Y, see ``activation_backward``)
               dW = X^T @ D,  db = sum over samples of D,  dX = D @ W^T
"""
from typing import Optional, Tuple

import numpy as np

from .. import _validation as v
from .._typing import ArrayLike, FloatArray, Spec, Threads
from .activations import activation as _activation, activation_backward

__all__ = ["dense_forward", "dense_backward"]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


def dense_forward(X: ArrayLike, W: ArrayLike, b: Optional[ArrayLike], activation: Spec, *,
                  out: Optional[FloatArray] = None, n_threads: Threads = None) -> FloatArray:
    """Y = f(X @ W + b).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_in), float32 or float64
    W : ndarray of shape (n_in, n_out)
    b : ndarray of shape (n_out,), or None
        None: no bias (as ``torch.nn.functional.linear``).
    activation : str or (str, dict)
        An activation spec (see ``gdcore.reference.activation``).
    out : ndarray of shape (n_samples, n_out), optional

    Returns
    -------
    Y : ndarray of shape (n_samples, n_out)
    """
    v.check_threads(n_threads)
    v.activation_spec(activation)
    X, W, b = v.dense_layer(X, W, b)
    out = v.out_array(out, "out", (X.shape[0], W.shape[1]), X.dtype,
                      [("X", X), ("W", W), ("b", b)])
    U = X @ W if b is None else X @ W + b
    return _activation(activation, U, out=out)


def dense_backward(X: ArrayLike, W: ArrayLike, Y: ArrayLike, dY: ArrayLike, activation: Spec,
                   *, compute_dX: bool = True, dX_out: Optional[FloatArray] = None,
                   dW_out: Optional[FloatArray] = None, db_out: Optional[FloatArray] = None,
                   delta_out: Optional[FloatArray] = None, n_threads: Threads = None
                   ) -> Tuple[Optional[FloatArray], FloatArray, FloatArray]:
    """Gradients of a dense layer from its input X, weights W, output Y and dE/dY.

    D = dY * f'(Y);  dW = X^T @ D;  db = D summed over samples (accumulated in
    float64, sample by sample);  dX = D @ W^T unless ``compute_dX`` is False (the first
    layer needs no dX).  For an output layer whose canonical delta comes from
    ``loss_delta``, pass that delta as dY with activation='identity'.  'gelu' and
    'silu' raise ValueError: their derivative needs the pre-activation U, not Y; pass
    ``activation_backward(spec, U, dY)`` as dY with activation='identity' instead.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_in)
    W : ndarray of shape (n_in, n_out)
    Y, dY : ndarray of shape (n_samples, n_out)
    activation : str or (str, dict)
        An activation spec (see ``gdcore.reference.activation``).
    compute_dX : bool
    dX_out, dW_out, db_out, delta_out : ndarray, optional
        Buffers for dX (n_samples, n_in), dW (n_in, n_out), db (n_out,) and the
        workspace D (n_samples, n_out); with all given, nothing is allocated.

    Returns
    -------
    (dX or None, dW, db)
    """
    v.check_threads(n_threads)
    v.check_dense_backward_activation(activation)
    X, W, Y, dY, dX, dW, db = v.dense_backward_arrays(X, W, Y, dY, compute_dX, dX_out,
                                                      dW_out, db_out, delta_out)
    n_samples = X.shape[0]
    D = activation_backward(activation, Y, dY, out=delta_out)
    np.matmul(X.T, D, out=dW)
    # the rows added one after another, in float64 (NumPy's D.sum(axis=0) adds a single
    # column pairwise; a cumulative sum is sequential by definition)
    db[...] = np.cumsum(D, axis=0, dtype=np.float64)[-1] if n_samples else 0
    if compute_dX:
        np.matmul(D, W.T, out=dX)
    return dX, dW, db
