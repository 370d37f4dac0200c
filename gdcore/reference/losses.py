"""Losses, averaged over the batch of B samples, and their canonical deltas.

Each loss pairs with an output activation so that dE/dU takes the simple form
D = (Y - T) / B (textbook notation: delta_k = y_k - t_k, per sample)::

    squared_error          (identity)  E = 1/B sum_i 1/2 sum_k (y_ik - t_ik)^2
                                       D = (Y - T) / B
    mse                    (identity)  E = 1/(B K) sum_ik (y_ik - t_ik)^2
                                       D = 2 (Y - T) / (B K)
    cross_entropy          (softmax)   E = -1/B sum_i sum_k t_ik log y_ik
                                       D = (Y s - T) / B, s_i = sum_k t_ik
                                       (= (Y - T) / B for one-hot rows and labels)
    binary_cross_entropy   (sigmoid)   E = -1/B sum_i sum_k [t log y + (1 - t) log(1 - y)]
                                       D = (Y - T) / B
    huber                  (identity)  E = 1/(B K) sum_ik h(y_ik - t_ik),
                                       h(x) = x^2 / 2 if |x| < delta
                                              else delta (|x| - delta / 2)
                                       D = clip(Y - T, -delta, delta) / (B K)
    mae                    (identity)  E = 1/(B K) sum_ik |y_ik - t_ik|
                                       D = sign(Y - T) / (B K)   (0 where Y = T)
    poisson                (identity)  E = 1/(B K) sum_ik [exp(y_ik) - t_ik y_ik]
                                       D = (exp(Y) - T) / (B K)

huber, mae and poisson are torch's HuberLoss(delta), L1Loss and
PoissonNLLLoss(log_input=True, full=False) with mean reduction: for poisson the
network's output is the log of the rate (log link), and the targets are counts
(non-negative; not checked here, as torch does not).  ``name`` is a loss spec: a
name, or a pair such as ``("huber", {"delta": 0.5})`` (delta > 0, default 1).

T is (B, K) in Y's dtype; cross_entropy also takes integer labels of shape (B,), and
the other losses take shape (B,) when K = 1.  The loss is accumulated in float64 and
returned as a Python float (NaN for an empty batch, the mean of nothing).  The
logarithms see probabilities clipped below at the dtype's smallest normal number, so
a saturated output gives a large finite loss instead of inf (PyTorch's BCELoss clamps
the logarithm at -100 for the same reason).  Deltas are not clipped.
"""
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .. import _validation as v
from .._typing import ArrayLike, FloatArray, NDArray, Spec, Threads

__all__ = ["loss", "loss_delta"]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


def _log_clipped(P):
    P = P.astype(np.float64)
    return np.log(np.maximum(P, np.finfo(P.dtype).tiny))


def _loss_value(name, Y, T, params=None):
    n_samples = Y.shape[0]
    if n_samples == 0:
        return float("nan")
    tiny = np.finfo(Y.dtype).tiny
    if name in ("huber", "mae", "poisson"):
        Y64, T64 = Y.astype(np.float64), T.astype(np.float64)
        if name == "poisson":
            with np.errstate(over="ignore"):
                terms = np.exp(Y64) - T64 * Y64
        else:
            terms = np.abs(Y64 - T64)
            if name == "huber":
                delta = params["delta"]
                terms = np.where(terms < delta, 0.5 * terms * terms,
                                 delta * (terms - 0.5 * delta))
        return float(np.sum(terms) / max(Y.size, 1))
    if name == "squared_error":
        D = (Y - T).astype(np.float64)
        return float(0.5 * np.sum(D * D) / n_samples)
    if name == "mse":
        D = (Y - T).astype(np.float64)
        return float(np.sum(D * D) / max(D.size, 1))
    if name == "cross_entropy":
        logY = np.log(np.maximum(Y.astype(np.float64), tiny))
        if T.ndim == 1:
            return float(-np.sum(logY[np.arange(n_samples), T]) / n_samples)
        return float(-np.sum(T * logY) / n_samples)
    Y64 = Y.astype(np.float64)
    log_y = np.log(np.maximum(Y64, tiny))
    log_1my = np.log(np.maximum(1 - Y64, tiny))
    return float(-np.sum(T * log_y + (1 - T.astype(np.float64)) * log_1my) / n_samples)


def _delta(name, Y, T, out, params=None):
    n_samples, n_outputs = Y.shape
    t = Y.dtype.type
    if name == "huber":
        delta = t(params["delta"])
        out[...] = np.clip(Y - T, -delta, delta) / t(n_samples * n_outputs)
    elif name == "mae":
        out[...] = np.sign(Y - T) / t(n_samples * n_outputs)
    elif name == "poisson":
        with np.errstate(over="ignore"):
            out[...] = (np.exp(Y) - T) / t(n_samples * n_outputs)
    elif name == "cross_entropy":
        if T.ndim == 1:
            out[...] = Y
            out[np.arange(n_samples), T] -= 1
            out /= n_samples
        else:
            # row sums added in order, as the native kernel does (np.sum is pairwise)
            row_sums = np.cumsum(T, axis=1)[:, -1:] if n_outputs else T[:, :0]
            out[...] = (Y * row_sums - T) / n_samples
    elif name == "mse":
        out[...] = 2 * (Y - T) / (n_samples * n_outputs)
    else:
        out[...] = (Y - T) / n_samples
    return out


def _prepare(spec: Any, Y: Any, T: Any
             ) -> Tuple[str, Dict[str, Any], FloatArray, NDArray[Any]]:
    """(name, params, Y, T) of a loss call: the checked spec, Y as a 2-D float array and
    T normalised for the loss."""
    name, params = v.loss_spec(spec)
    Y = v.float_array(Y, "Y", 2)
    return name, params, Y, v.targets(name, Y, T)


def loss(name: Spec, Y: ArrayLike, T: ArrayLike, *, n_threads: Threads = None) -> float:
    """The loss E(Y, T) of a batch, as a Python float.

    Parameters
    ----------
    name : str or (str, dict)
        'squared_error', 'mse', 'cross_entropy', 'binary_cross_entropy', 'huber',
        'mae' or 'poisson', alone or with its parameters (huber's delta).
    Y : ndarray of shape (n_samples, n_outputs), float32 or float64
        Output of the paired activation (identity, identity, softmax, sigmoid;
        identity for huber, mae and poisson).
    T : ndarray
        Targets: (n_samples, n_outputs) in Y's dtype; integer labels (n_samples,)
        for cross_entropy; (n_samples,) when n_outputs == 1.

    Returns
    -------
    float
    """
    v.check_threads(n_threads)
    name, params, Y, T = _prepare(name, Y, T)
    return _loss_value(name, Y, T, params)


def loss_delta(name: Spec, Y: ArrayLike, T: ArrayLike, *, out: Optional[FloatArray] = None,
               n_threads: Threads = None) -> Tuple[float, FloatArray]:
    """The loss and D = dE/dU of the paired output activation, in one call.

    Parameters are those of ``loss``; ``out`` is an optional buffer for D, of Y's
    shape and dtype.

    Returns
    -------
    (float, ndarray)
        The loss and D, of Y's shape and dtype.
    """
    v.check_threads(n_threads)
    name, params, Y, T = _prepare(name, Y, T)
    out = v.out_array(out, "out", Y.shape, Y.dtype, [("Y", Y), ("T", T)])
    value = _loss_value(name, Y, T, params)
    return value, _delta(name, Y, T, out, params)


def weighted_loss_delta(name: Spec, Y: FloatArray, T: NDArray[Any], sample_weight: FloatArray
                        ) -> Tuple[float, FloatArray]:
    """The sample-weighted loss and delta of the native weighted train step.

        E = sum_i w_i E_i / sum_i w_i            (E_i: sample i's term of ``loss``)
        D_i = w_i * B / sum_i w_i * D_i^unweighted   (= w_i (Y_i - T_i) / sum_i w_i)

    (scikit-learn's weighted MLP loss).  ``sample_weight`` is (n_samples,) of Y's
    dtype with a positive sum; other parameters are those of ``loss_delta``.
    """
    name, params, Y, T = _prepare(name, Y, T)
    w = np.asarray(sample_weight)
    n_samples = Y.shape[0]
    rows = [_loss_value(name, Y[i:i + 1], T[i:i + 1], params) for i in range(n_samples)]
    w64 = w.astype(np.float64)
    sw_sum = float(np.sum(w64))
    D = _delta(name, Y, T, np.empty_like(Y), params)
    D *= (w64 * n_samples / sw_sum).astype(Y.dtype)[:, None]
    return float(np.dot(w64, rows) / sw_sum), D
