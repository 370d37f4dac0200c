"""A dense layer, batched: rows are samples and W has shape (n_in, n_out).

    forward    U = X @ W + b,   Y = f(U)
    backward   D = dY * f'(U)   (from Y, see ``activation_backward``)
               dW = X^T @ D,  db = sum over samples of D,  dX = D @ W^T
"""
import numpy as np

from .. import _validation as v
from .activations import activation as _activation, activation_backward


def _check_layer(X, W, b=None):
    X = v.float_array(X, "X", 2)
    W = v.float_array(W, "W", 2, X.dtype)
    if W.shape[0] != X.shape[1]:
        raise ValueError(f"W must have shape (n_in, n_out) with n_in = X.shape[1] = "
                         f"{X.shape[1]}, got {W.shape}")
    if b is not None:
        b = v.float_array(b, "b", 1, X.dtype)
        v.check_shape(b, "b", (W.shape[1],), "(n_out,)")
    return X, W, b


def dense_forward(X, W, b, activation, *, out=None, n_threads=None):
    """Y = f(X @ W + b).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_in), float32 or float64
    W : ndarray of shape (n_in, n_out)
    b : ndarray of shape (n_out,), or None
        None: no bias (as ``torch.nn.functional.linear``).
    activation : {'identity', 'sigmoid', 'tanh', 'relu', 'softmax'}
    out : ndarray of shape (n_samples, n_out), optional

    Returns
    -------
    Y : ndarray of shape (n_samples, n_out)
    """
    v.check_name(activation, "activation", v.ACTIVATIONS)
    X, W, b = _check_layer(X, W, b)
    out = v.out_array(out, "out", (X.shape[0], W.shape[1]), X.dtype,
                      [("X", X), ("W", W), ("b", b)])
    U = X @ W if b is None else X @ W + b
    return _activation(activation, U, out=out)


def dense_backward(X, W, Y, dY, activation, *, compute_dX=True, dX_out=None,
                   dW_out=None, db_out=None, delta_out=None, n_threads=None):
    """Gradients of a dense layer from its input X, weights W, output Y and dE/dY.

    D = dY * f'(Y);  dW = X^T @ D;  db = D summed over samples (accumulated in
    float64, sample by sample);  dX = D @ W^T unless ``compute_dX`` is False (the first
    layer needs no dX).  For an output layer whose canonical delta comes from
    ``loss_delta``, pass that delta as dY with activation='identity'.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_in)
    W : ndarray of shape (n_in, n_out)
    Y, dY : ndarray of shape (n_samples, n_out)
    activation : {'identity', 'sigmoid', 'tanh', 'relu', 'softmax'}
    compute_dX : bool
    dX_out, dW_out, db_out, delta_out : ndarray, optional
        Buffers for dX (n_samples, n_in), dW (n_in, n_out), db (n_out,) and the
        workspace D (n_samples, n_out); with all given, nothing is allocated.

    Returns
    -------
    (dX or None, dW, db)
    """
    v.check_name(activation, "activation", v.ACTIVATIONS)
    X, W, _ = _check_layer(X, W)
    n_samples, n_out = X.shape[0], W.shape[1]
    Y = v.float_array(Y, "Y", 2, X.dtype)
    v.check_shape(Y, "Y", (n_samples, n_out), "(n_samples, n_out)")
    dY = v.float_array(dY, "dY", 2, X.dtype)
    v.check_shape(dY, "dY", (n_samples, n_out), "(n_samples, n_out)")
    inputs = [("X", X), ("W", W), ("Y", Y), ("dY", dY)]
    dW = v.out_array(dW_out, "dW_out", W.shape, X.dtype, inputs)
    db = v.out_array(db_out, "db_out", (n_out,), X.dtype, inputs)
    dX = (v.out_array(dX_out, "dX_out", X.shape, X.dtype, inputs) if compute_dX else None)
    if delta_out is not None:
        v.out_array(delta_out, "delta_out", Y.shape, X.dtype, inputs)
    # The outputs are written one after another (D, dW, db, dX): none may overwrite another.
    v.check_no_overlap([("dX_out", dX_out if compute_dX else None), ("dW_out", dW_out),
                        ("db_out", db_out), ("delta_out", delta_out)], what="output buffer")
    D = activation_backward(activation, Y, dY, out=delta_out)
    np.matmul(X.T, D, out=dW)
    # the rows added one after another, in float64 (NumPy's D.sum(axis=0) adds a single
    # column pairwise; a cumulative sum is sequential by definition)
    db[...] = np.cumsum(D, axis=0, dtype=np.float64)[-1] if n_samples else 0
    if compute_dX:
        np.matmul(D, W.T, out=dX)
    return dX, dW, db
