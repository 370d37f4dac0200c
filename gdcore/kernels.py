"""Native kernels: typed Cython with OpenMP threads and BLAS, without the GIL.

Same names and signatures as ``gdcore.reference``, whose docstrings carry the
equations; results match it (bitwise for the optimizer updates and the elementwise
kernels' operation order, within a few ulp where exp/tanh/log or GEMM are involved).

Every function validates its arguments once, here (shapes, dtypes, contiguity --
non-contiguous inputs are copied --, ``out=`` buffers, hyperparameters), and raises
``TypeError``/``ValueError`` naming the argument; the cores below do not check again.
With all ``out=`` buffers given, nothing is allocated.

Threads: ``n_threads=None`` uses ``gdcore.get_num_threads()``.  A kernel uses fewer
threads when its work is small (see ``THRESHOLDS``): below the threshold it runs on the
calling thread without entering an OpenMP region.  Inside a call the BLAS library runs
single-threaded and gdcore's threads split the GEMMs, so two thread pools never compete.

The compiled kernels exist in one build per instruction-set level; ``ISA`` names the
one in use (the best this CPU runs, or the ``GDCORE_ISA`` environment variable's).
"""
import importlib
import os
from typing import Any, Optional, Tuple

import numpy as np

from . import _constants, _cpu, _openmp
from . import _validation as v
from ._typing import ArrayLike, FloatArray, Spec, Threads
from .reference.optimizers import optimizer_state

ISAS = ("avx512", "avx2", "baseline")


def _load_native():
    supported = _cpu.supported_isas()
    forced = os.environ.get("GDCORE_ISA", "").strip().lower()
    if forced:
        if forced not in ISAS:
            raise ImportError(f"GDCORE_ISA must be one of {', '.join(ISAS)}, got {forced!r}")
        if forced not in supported:
            raise ImportError(f"GDCORE_ISA={forced} but this CPU supports only "
                              f"{', '.join(supported)}")
        candidates = [forced]
    else:
        candidates = supported
    for isa in candidates:
        try:
            return isa, importlib.import_module(f"gdcore._native_{isa}")
        except ImportError:          # not built for this architecture
            continue
    raise ImportError("no build of gdcore's native kernels could be imported")


ISA, _native = _load_native()

# the size rules of the cores, read from the compiled module (never a copy)
THRESHOLDS = dict(_native.THRESHOLDS)

__all__ = [
    "activation", "activation_backward", "dense_forward", "dense_backward",
    "loss", "loss_delta", "optimizer_state",
    "sgd_update", "adagrad_update", "adadelta_update", "rmsprop_update",
    "adam_update", "adamw_update", "nadam_update", "adamax_update", "radam_update",
    "rprop_update", "ISA", "THRESHOLDS",
    "clip_grad_norm", "clip_grad_value",
]

sgd_update = _native.sgd_update
adagrad_update = _native.adagrad_update
adadelta_update = _native.adadelta_update
rmsprop_update = _native.rmsprop_update
adam_update = _native.adam_update
adamw_update = _native.adamw_update
clip_grad_norm = _native.clip_grad_norm
clip_grad_value = _native.clip_grad_value
nadam_update = _native.nadam_update
adamax_update = _native.adamax_update
radam_update = _native.radam_update
rprop_update = _native.rprop_update

_ACT = {name: code for code, name in enumerate(_constants.ACTIVATIONS)}
_LOSS = {name: code for code, name in enumerate(_constants.LOSSES)}
_PARAMETRISED = _constants.ACTIVATIONS[_constants.ACTIVATIONS.index("leaky_relu"):]


def activation(name: Spec, U: ArrayLike, *, out: Optional[FloatArray] = None,
               n_threads: Threads = None) -> FloatArray:
    """Y = f(U); see ``gdcore.reference.activation``."""
    name, params = v.activation_spec(name)
    U = v.float_array(U, "U", 2)
    out = v.out_array(out, "out", U.shape, U.dtype, [("U", U)], may_alias=("U",))
    _native.activation_forward(_ACT[name], U, out, _openmp.resolve(n_threads),
                               *v.native_params(name, params))
    return out


def activation_backward(name: Spec, Y: ArrayLike, dY: ArrayLike, *,
                        out: Optional[FloatArray] = None,
                        n_threads: Threads = None) -> FloatArray:
    """dE/dU from Y (U for gelu and silu) and dE/dY; see
    ``gdcore.reference.activation_backward``."""
    name, params = v.activation_spec(name)
    Y = v.float_array(Y, "Y", 2)
    dY = v.float_array(dY, "dY", 2, Y.dtype)
    v.check_shape(dY, "dY", Y.shape, "Y.shape")
    out = v.out_array(out, "out", Y.shape, Y.dtype, [("Y", Y), ("dY", dY)], may_alias=("dY",))
    _native.activation_backward(_ACT[name], Y, dY, out, _openmp.resolve(n_threads),
                                *v.native_params(name, params))
    return out


def dense_forward(X: ArrayLike, W: ArrayLike, b: Optional[ArrayLike], activation: Spec, *,
                  out: Optional[FloatArray] = None, n_threads: Threads = None) -> FloatArray:
    """Y = f(X @ W + b) in one GEMM and one fused epilogue; see
    ``gdcore.reference.dense_forward``.  A parametrised activation runs as a second
    pass over the output, after the GEMM and the bias."""
    name, params = v.activation_spec(activation)
    X, W, b = v.dense_layer(X, W, b)
    out = v.out_array(out, "out", (X.shape[0], W.shape[1]), X.dtype,
                      [("X", X), ("W", W), ("b", b)])
    nt = _openmp.resolve(n_threads)
    if name in _PARAMETRISED:
        _native.dense_forward(_ACT["identity"], X, W, b, out, nt)
        _native.activation_forward(_ACT[name], out, out, nt, *v.native_params(name, params))
    else:
        _native.dense_forward(_ACT[name], X, W, b, out, nt)
    return out


def dense_backward(X: ArrayLike, W: ArrayLike, Y: ArrayLike, dY: ArrayLike, activation: Spec,
                   *, compute_dX: bool = True, dX_out: Optional[FloatArray] = None,
                   dW_out: Optional[FloatArray] = None, db_out: Optional[FloatArray] = None,
                   delta_out: Optional[FloatArray] = None, n_threads: Threads = None
                   ) -> Tuple[Optional[FloatArray], FloatArray, FloatArray]:
    """(dX or None, dW, db) of a dense layer; see ``gdcore.reference.dense_backward``.

    ``delta_out`` is the workspace for D = dY * f'(Y); it is not used (and need not be
    given) for activation 'identity', where D is dY itself."""
    name, params = v.check_dense_backward_activation(activation)
    X, W, Y, dY, dX, dW, db = v.dense_backward_arrays(X, W, Y, dY, compute_dX, dX_out,
                                                      dW_out, db_out, delta_out)
    nt = _openmp.resolve(n_threads)
    if name in _PARAMETRISED:
        # D = dY f'(Y) in its own pass; the layer's backward then runs as 'identity'
        delta: Optional[FloatArray] = (delta_out if delta_out is not None
                                       else np.empty(Y.shape, dtype=Y.dtype))
        _native.activation_backward(_ACT[name], Y, dY, delta, nt,
                                    *v.native_params(name, params))
        _native.dense_backward(_ACT["identity"], X, W, Y, delta, None, dX, dW, db, nt)
        return dX, dW, db
    activation = name
    # with 'identity', D is dY itself: the workspace, when given, is not written
    delta = None if activation == "identity" else (
        delta_out if delta_out is not None else np.empty(Y.shape, dtype=Y.dtype))
    _native.dense_backward(_ACT[activation], X, W, Y, dY, delta, dX, dW, db,
                           _openmp.resolve(n_threads))
    return dX, dW, db


def _loss(name, Y, T, out, want_delta, n_threads):
    name, params = v.loss_spec(name)
    Y = v.float_array(Y, "Y", 2)
    T = v.targets(name, Y, T)
    D = v.out_array(out, "out", Y.shape, Y.dtype, [("Y", Y), ("T", T)]) if want_delta else None
    nt = _openmp.resolve(n_threads)
    if T.ndim == 1:
        value = _native.loss_delta_labels(_LOSS[name], Y, T, D, nt)
    else:
        value = _native.loss_delta_targets(_LOSS[name], Y, T, D, nt,
                                           v.native_params(name, params)[0])
    return value, D


def loss(name: Spec, Y: ArrayLike, T: ArrayLike, *, n_threads: Threads = None) -> float:
    """The batch loss as a Python float; see ``gdcore.reference.loss``."""
    return _loss(name, Y, T, None, False, n_threads)[0]


def loss_delta(name: Spec, Y: ArrayLike, T: ArrayLike, *, out: Optional[FloatArray] = None,
               n_threads: Threads = None) -> Tuple[float, FloatArray]:
    """(loss, D) in one fused pass per row; see ``gdcore.reference.loss_delta``."""
    return _loss(name, Y, T, out, True, n_threads)
