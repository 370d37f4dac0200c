"""Input checks shared by ``gdcore.reference`` and ``gdcore.kernels``.

Both kernel sets validate identically at their public boundary, so a bad input gets
the same ``TypeError``/``ValueError`` from either, naming the argument and the
expected against the actual value.  Nothing below the boundary checks again.
"""
import math
import operator
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _constants
from ._typing import FloatArray, NDArray, Spec

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
ACTIVATIONS = _constants.ACTIVATIONS
LOSSES = _constants.LOSSES
# BLAS takes 32-bit dimensions.
MAX_DIM = 2**31 - 1
# Step counts reach C as signed 64-bit integers and bias corrections as beta**step;
# 2**53 keeps them exact in a double as well.
MAX_STEP = 2**53
# Seeds reach C as unsigned 64-bit integers.
MAX_SEED = 2**64 - 1
# Thread counts above this are a mistake, not a request (they are clamped to the
# usable CPUs below it).
MAX_THREADS = 1 << 16


def _describe(a):
    return f"{a.ndim}-D array of shape {a.shape} and dtype {a.dtype}"


def check_name(value: Any, name: str, choices: Any) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def float_array(a: Any, name: str, ndim: int, dtype: Any = None) -> FloatArray:
    """``a`` as a C-contiguous float32/float64 array of ``ndim`` dimensions.

    Non-contiguous inputs are copied; the dtype is never changed: ``dtype`` (the dtype
    of the call's first array) must match exactly."""
    if not isinstance(a, np.ndarray):
        if a is None:
            raise TypeError(f"{name} must be a {ndim}-D float32 or float64 array, got None")
        a = np.asarray(a)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {a.dtype} but the other arrays of this call are {dtype}; "
            f"use one dtype per call")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got a {_describe(a)}")
    if any(d > MAX_DIM for d in a.shape):
        raise ValueError(f"{name} has shape {a.shape}; dimensions above {MAX_DIM} are not supported")
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    return a


def check_shape(a, name, expected, meaning):
    if a.shape != expected:
        raise ValueError(f"{name} must have shape {meaning} = {expected}, got {a.shape}")


def out_array(out: Any, name: str, shape: Any, dtype: Any, inputs: Any = (),
              may_alias: Any = ()) -> FloatArray:
    """Validate an ``out=`` buffer: an ndarray of exactly ``shape`` and ``dtype``,
    C-contiguous and writable, overlapping no input except those in ``may_alias``
    (which it may equal exactly: elementwise kernels work in place)."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (it is written in place)")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writable")
    for other_name, other in inputs:
        if other is None or not np.may_share_memory(out, other):
            continue
        same = (other_name in may_alias and other.shape == out.shape
                and other.__array_interface__["data"][0] == out.__array_interface__["data"][0])
        if not same:
            raise ValueError(f"{name} overlaps {other_name}; pass a separate buffer")
    return out


def check_float(value: Any, name: str, low: Optional[float] = None,
                high: Optional[float] = None, low_open: bool = False,
                high_open: bool = False) -> float:
    """A finite Python float within [low, high] (ends open where asked)."""
    if isinstance(value, (complex, np.complexfloating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        x = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be finite, got a number too large for a "
                         f"float ({str(value)[:20]}...)") from None
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    if low is not None and (x <= low if low_open else x < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {x}")
    if high is not None and (x >= high if high_open else x > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {x}")
    return x


def check_int(value: Any, name: str, low: Optional[int] = None,
              high: Optional[int] = None) -> int:
    """A Python int in [low, high]; ``high`` bounds what a C integer can hold."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if low is not None and n < low:
        raise ValueError(f"{name} must be >= {low}, got {n}")
    if high is not None and n > high:
        raise ValueError(f"{name} must be <= {high}, got {n}")
    return n


def check_threads(n_threads, name="n_threads"):
    """Check an ``n_threads`` argument as the native kernels do (None, or an int in
    [1, 65536], not a bool); the reference kernels accept it for signature parity."""
    if n_threads is not None:
        from ._config import _check_thread_count
        _check_thread_count(n_threads, name)
    return n_threads


def check_seed(value: Any, name: str = "seed") -> int:
    """A seed: an int in [0, 2**64 - 1]."""
    return check_int(value, name, low=0, high=MAX_SEED)


def real_array(a: Any, name: str, dtype: Any = np.float64) -> NDArray[Any]:
    """``a`` as an array of the real ``dtype``: bools, integers and floats convert;
    complex, object, string and other dtypes raise TypeError instead of being
    truncated or parsed."""
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a real number or array, got {type(a).__name__}: "
                        f"{err}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be real (bool, integer or float), got dtype "
                        f"{arr.dtype}")
    with np.errstate(over="ignore"):
        return arr.astype(dtype)


def check_betas(betas: Any) -> Tuple[float, float]:
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
    return (check_float(beta1, "betas[0]", 0.0, 1.0, high_open=True),
            check_float(beta2, "betas[1]", 0.0, 1.0, high_open=True))


def check_pair(value, name, meaning):
    """The two items of a pair argument (Rprop's etas and step_sizes), as a tuple."""
    try:
        first, second = value
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair {meaning}, got {value!r}") from None
    return first, second


def param_vector(a: Any, name: str) -> FloatArray:
    """A 1-D float buffer updated in place: it can be neither copied nor converted."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a 1-D float32 or float64 numpy.ndarray "
                        f"(it is updated in place), got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array (ravel parameters into one flat "
                         f"buffer), got a {_describe(a)}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (it is updated in place)")
    if not a.flags.writeable:
        raise ValueError(f"{name} must be writable (it is updated in place)")
    return a


def state_vector(a: Any, name: str, params: Any, needed_for: str) -> FloatArray:
    if a is None:
        raise ValueError(f"{name} is required {needed_for}")
    a = param_vector(a, name)
    if a.dtype != params.dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but params is {params.dtype}")
    if a.shape != params.shape:
        raise ValueError(f"{name} must have the shape of params {params.shape}, got {a.shape}")
    return a


def grad_vector(grads: Any, params: Any) -> FloatArray:
    grads = float_array(grads, "grads", 1, params.dtype)
    if grads.shape != params.shape:
        raise ValueError(f"grads must have the shape of params {params.shape}, got {grads.shape}")
    return grads


def check_no_overlap(named_arrays, what="optimizer buffer"):
    """Raise if any two of the buffers (of an optimizer step, or the outputs of one
    call) share memory."""
    present = [(n, a) for n, a in named_arrays if a is not None]
    for i, (name_i, a_i) in enumerate(present):
        for name_j, a_j in present[i + 1:]:
            if np.may_share_memory(a_i, a_j):
                raise ValueError(f"{name_i} and {name_j} share memory; each {what} "
                                 f"must be separate")


def dense_layer(X: Any, W: Any, b: Any = None
                ) -> Tuple[FloatArray, FloatArray, Optional[FloatArray]]:
    """X (n_samples, n_in), W (n_in, n_out) and, when given, b (n_out,) of one dtype."""
    X = float_array(X, "X", 2)
    W = float_array(W, "W", 2, X.dtype)
    if W.shape[0] != X.shape[1]:
        raise ValueError(f"W must have shape (n_in, n_out) with n_in = X.shape[1] = "
                         f"{X.shape[1]}, got {W.shape}")
    if b is not None:
        b = float_array(b, "b", 1, X.dtype)
        check_shape(b, "b", (W.shape[1],), "(n_out,)")
    return X, W, b


def dense_backward_arrays(X: Any, W: Any, Y: Any, dY: Any, compute_dX: bool, dX_out: Any,
                          dW_out: Any, db_out: Any, delta_out: Any) -> Tuple[
        FloatArray, FloatArray, FloatArray, FloatArray, Optional[FloatArray], FloatArray,
        FloatArray]:
    """Check the arguments of dense_backward; returns (X, W, Y, dY, dX, dW, db) with
    the outputs allocated where not given (dX None unless ``compute_dX``).  The output
    buffers may overlap no input and no other output; ``delta_out`` is checked, not
    allocated."""
    X, W, _ = dense_layer(X, W)
    n_samples, n_out = X.shape[0], W.shape[1]
    Y = float_array(Y, "Y", 2, X.dtype)
    check_shape(Y, "Y", (n_samples, n_out), "(n_samples, n_out)")
    dY = float_array(dY, "dY", 2, X.dtype)
    check_shape(dY, "dY", (n_samples, n_out), "(n_samples, n_out)")
    inputs = [("X", X), ("W", W), ("Y", Y), ("dY", dY)]
    dW = out_array(dW_out, "dW_out", W.shape, X.dtype, inputs)
    db = out_array(db_out, "db_out", (n_out,), X.dtype, inputs)
    dX = out_array(dX_out, "dX_out", X.shape, X.dtype, inputs) if compute_dX else None
    if delta_out is not None:
        out_array(delta_out, "delta_out", Y.shape, X.dtype, inputs)
    # the outputs are written one after another (D, dW, db, dX): none may overwrite another
    check_no_overlap([("dX_out", dX_out if compute_dX else None), ("dW_out", dW_out),
                      ("db_out", db_out), ("delta_out", delta_out)], what="output buffer")
    return X, W, Y, dY, dX, dW, db


def targets(loss_name: str, Y: Any, T: Any) -> NDArray[Any]:
    """Normalise T for ``loss_name`` against the network output Y of shape (B, K).

    cross_entropy: integer labels of shape (B,) in [0, K) -> int64 array, or rows of
    shape (B, K) (one-hot or probabilities) of Y's dtype.  Other losses: (B, K) of Y's
    dtype, or (B,) when K == 1.  Returns T ready for the kernels."""
    n_samples, n_outputs = Y.shape
    if not isinstance(T, np.ndarray):
        if T is None:
            raise TypeError("T must be an array of targets, got None")
        T = np.asarray(T)
    if loss_name == "cross_entropy" and T.ndim == 1:
        if T.dtype.kind not in "iu":
            raise TypeError(f"T as class labels must have an integer dtype, got {T.dtype}; "
                            f"pass one-hot rows of shape {Y.shape} for soft targets")
        if T.shape[0] != n_samples:
            raise ValueError(f"T has {T.shape[0]} labels but Y has {n_samples} samples")
        if n_samples:
            low, high = T.min(), T.max()
            if low < 0 or high >= n_outputs:
                bad = low if low < 0 else high
                raise ValueError(f"T contains label {bad}; labels must be in [0, {n_outputs})"
                                 f" for {n_outputs} output classes")
        return np.ascontiguousarray(T, dtype=np.int64)
    if T.ndim == 1 and n_outputs == 1 and loss_name != "cross_entropy":
        if T.shape[0] != n_samples:
            raise ValueError(f"T has {T.shape[0]} targets but Y has {n_samples} samples")
        T = T.reshape(n_samples, 1)
    T = float_array(T, "T", 2, Y.dtype)
    if T.shape != Y.shape:
        if T.shape[0] != n_samples:
            raise ValueError(f"T has {T.shape[0]} samples but Y has {n_samples}")
        raise ValueError(f"T must have the shape of Y {Y.shape}, got {T.shape}")
    return T


# ---- activation and loss specs ---------------------------------------------------
# The parameters of the parametrised activations and losses, with torch's defaults.
# A spec is a name (every parameter at its default) or a pair (name, {param: value}).
ACTIVATION_PARAMS: Dict[str, Dict[str, Any]] = {
    "leaky_relu": {"negative_slope": 0.01}, "elu": {"alpha": 1.0},
    "gelu": {"approximate": "none"},
    "softplus": {"beta": 1.0, "threshold": 20.0}}
LOSS_PARAMS: Dict[str, Dict[str, Any]] = {"huber": {"delta": 1.0}}
# activations whose derivative is not a function of their output: the backward pass
# needs the pre-activation U
NEEDS_PREACTIVATION = ("gelu", "silu")


def _check_param(kind, name, key, value):
    label = f"{kind} {name!r} parameter {key!r}"
    if key == "approximate":
        if value not in ("none", "tanh"):
            raise ValueError(f"{label} must be 'none' or 'tanh', got {value!r}")
        return value
    if key == "negative_slope":
        return check_float(value, label, 0.0)
    if key == "threshold":
        return check_float(value, label)
    return check_float(value, label, 0.0, low_open=True)      # alpha, beta, delta > 0


def _spec(value: Any, kind: str, choices: Sequence[str],
          defaults: Mapping[str, Dict[str, Any]]) -> Tuple[str, Dict[str, Any]]:
    if isinstance(value, str):
        name, given = value, {}
    elif (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str)
          and isinstance(value[1], dict)):
        name, given = value
    else:
        raise ValueError(f"{kind} must be a name or a pair (name, {{parameter: value}}); "
                         f"got {value!r}")
    check_name(name, kind, choices)
    params = dict(defaults.get(name, {}))
    for key, val in given.items():
        if key not in params:
            allowed = ", ".join(map(repr, params)) or "none"
            raise ValueError(f"{kind} {name!r} has no parameter {key!r} (parameters: "
                             f"{allowed})")
        params[key] = _check_param(kind, name, key, val)
    return name, params


def activation_spec(value: Any, kind: str = "activation", choices: Sequence[str] = ACTIVATIONS
                    ) -> Tuple[str, Dict[str, Any]]:
    """(name, params) of an activation spec: ``'elu'`` or ``('elu', {'alpha': 0.5})``;
    params holds every parameter of the activation (defaults filled in)."""
    return _spec(value, kind, choices, ACTIVATION_PARAMS)


def loss_spec(value: Any, kind: str = "loss", choices: Sequence[str] = LOSSES
              ) -> Tuple[str, Dict[str, Any]]:
    """(name, params) of a loss spec: ``'huber'`` or ``('huber', {'delta': 0.5})``."""
    return _spec(value, kind, choices, LOSS_PARAMS)


def spec_form(name: str, params: Mapping[str, Any],
              defaults: Mapping[str, Mapping[str, Any]]) -> Spec:
    """The short form of a checked spec: the name alone when every parameter is at its
    default, else (name, params) with the parameters that differ."""
    changed = {k: val for k, val in params.items() if defaults.get(name, {}).get(k) != val}
    return (name, changed) if changed else name


def native_params(name: str, params: Mapping[str, Any]) -> Tuple[float, float]:
    """The two float64 parameters the native kernels take for a checked spec."""
    if name == "leaky_relu":
        return params["negative_slope"], 0.0
    if name == "elu":
        return params["alpha"], 0.0
    if name == "gelu":
        return (1.0 if params["approximate"] == "tanh" else 0.0), 0.0
    if name == "softplus":
        return params["beta"], params["threshold"]
    if name == "huber":
        return params["delta"], 0.0
    return 0.0, 0.0


def check_dense_backward_activation(activation: Any) -> Tuple[str, Dict[str, Any]]:
    """The (name, params) of a dense layer's activation for a backward pass from its
    output Y: gelu and silu need the pre-activation, so they are refused."""
    name, params = activation_spec(activation)
    if name in NEEDS_PREACTIVATION:
        raise ValueError(f"activation {name!r} needs the pre-activation U for its "
                         f"derivative, not the output Y: compute D = "
                         f"activation_backward({name!r}, U, dY) and pass it as dY with "
                         f"activation='identity'")
    return name, params
