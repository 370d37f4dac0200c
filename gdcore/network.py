"""A multilayer perceptron whose parameters live in one flat buffer.

::

    net = gd.MLP([784, 256, 128, 10], activation="relu", output="softmax",
                 loss="cross_entropy", dtype="float32", seed=0)
    opt = gd.optim.Adam(lr=1e-3)
    loss = net.train_step(X, T, opt)        # forward, loss, backward, update: one call

All weights and biases are views of ``net.params`` (layer by layer: W then b, W of
shape (n_in, n_out)); gradients likewise of ``net.grads``, so an optimizer step is one
kernel call over all parameters.  With ``backend="native"`` a training step is a
single call into native code that releases the GIL and allocates nothing once the
workspace for the batch size exists; ``backend="reference"`` runs the same model on
``gdcore.reference`` (the oracle in tests, the baseline in benchmarks), with the same
random numbers.
"""
import math
import numbers
from collections import namedtuple
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple, Union)

import numpy as np

from . import _backends, _openmp
from . import checkpoint as _checkpoint
from . import _validation as v
from . import kernels as _kernels
from . import optim as _optim
from . import training as _training
from .reference import network as _reference_network
from ._typing import ArrayLike, FloatArray, IntArray, Layout, NDArray, PathLike, Spec, Threads
from .gradients import numerical_gradient

if TYPE_CHECKING:
    from .callbacks import Callback
    from .schedules import Schedule
    from .training import EarlyStopping, History

__all__ = ["MLP", "Layer", "gradcheck", "GradcheckResult", "load"]

# Output activation paired with each loss, and the pairs a network accepts.  For the
# canonical pairs the loss delta (Y - T) / B is already dE/dU; for sigmoid with squared
# error it is dE/dY and the backward pass multiplies by the sigmoid's derivative.
CANONICAL_OUTPUT = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid",
                    "squared_error": "identity", "mse": "identity"}
VALID_PAIRS = {("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"),
               ("sigmoid", "squared_error"), ("identity", "squared_error"),
               ("identity", "mse")}
HIDDEN_ACTIVATIONS: Tuple[str, ...] = ("identity", "sigmoid", "tanh", "relu")
# the parametrised activations: hidden layers, and outputs of the regression losses
# (whose delta then goes back through the activation's derivative)
PARAM_ACTIVATIONS = ("leaky_relu", "elu", "gelu", "softplus", "silu")
HIDDEN_ACTIVATIONS += PARAM_ACTIVATIONS
# huber, mae and poisson pair with an identity output (poisson's is the log rate)
CANONICAL_OUTPUT.update(huber="identity", mae="identity", poisson="identity")
VALID_PAIRS |= {("identity", "huber"), ("identity", "mae"), ("identity", "poisson")}
VALID_PAIRS |= {(act, loss) for act in PARAM_ACTIVATIONS
                for loss in ("squared_error", "mse", "huber", "mae")}
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid", "identity") + PARAM_ACTIVATIONS
# Rows per block when the forward pass reads a memory-mapped X (see MLP.forward).
FORWARD_BLOCK_ROWS = 8192


def _is_one_spec(value):
    """True for one activation spec (a name or a (name, params) pair), False for a
    sequence of them."""
    return isinstance(value, str) or (isinstance(value, (tuple, list)) and len(value) == 2
                                      and isinstance(value[0], str)
                                      and isinstance(value[1], dict))


def _spec_name(spec):
    return spec if isinstance(spec, str) else spec[0]


class Layer:
    """Views of one dense layer's parameters and gradients in the network's buffers."""

    __slots__ = ("W", "b", "dW", "db", "activation", "n_in", "n_out")

    def __init__(self, W: FloatArray, b: FloatArray, dW: FloatArray, db: FloatArray,
                 activation: Spec) -> None:
        self.W, self.b, self.dW, self.db = W, b, dW, db
        self.activation = activation
        self.n_in, self.n_out = W.shape

    def __repr__(self):
        return f"Layer({self.n_in} -> {self.n_out}, {self.activation})"


# ---- the network ----------------------------------------------------------------

INITIALIZERS = ("default", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                "lecun_uniform", "lecun_normal", "zeros")


def _draw_weights(name, rng, n_in, n_out):
    """(n_in, n_out) float64 weights of the named initialiser (see ``MLP``)."""
    shape = (n_in, n_out)
    if name == "zeros":
        return np.zeros(shape)
    fan_sum, fan_in = float(n_in + n_out), float(n_in)
    if name.endswith("_uniform"):
        # U(-a, a) with a = sqrt(3 variance); the same expressions as before, bitwise
        limit = {"glorot_uniform": math.sqrt(6.0 / fan_sum),
                 "he_uniform": math.sqrt(6.0 / fan_in),
                 "lecun_uniform": math.sqrt(3.0 / fan_in)}[name]
        return rng.uniform(-limit, limit, size=shape)
    std = {"glorot_normal": math.sqrt(2.0 / fan_sum),
           "he_normal": math.sqrt(2.0 / fan_in),
           "lecun_normal": math.sqrt(1.0 / fan_in)}[name]
    return rng.normal(0.0, std, size=shape)


def _as_dtype(dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in v.FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


class MLP:
    """A dense feed-forward network trained by gradient descent.

    Parameters
    ----------
    layer_sizes : sequence of int
        Units per layer, input first: [n_in, hidden..., n_out]; at least two entries.
    activation : str, (str, dict) or sequence of them
        Hidden activation(s): 'identity', 'sigmoid', 'tanh', 'relu', 'leaky_relu',
        'elu', 'gelu', 'softplus' or 'silu' (one for all hidden layers, or one per
        hidden layer).  A parametrised activation takes its parameters as a pair
        ``(name, {parameter: value})`` with torch's names and defaults:
        ``("leaky_relu", {"negative_slope": 0.2})``, ``("elu", {"alpha": 1.0})``,
        ``("gelu", {"approximate": "tanh"})`` (default 'none', the exact erf form),
        ``("softplus", {"beta": 1.0, "threshold": 20.0})``; silu has none.  The
        network keeps each spec in its short form (``activations``: the name alone
        when every parameter is at its default), which checkpoints save.
    output : str or (str, dict), optional
        Output activation: 'softmax', 'sigmoid', 'identity', or a parametrised
        activation with a regression loss (squared_error, mse, huber, mae), whose
        delta then goes back through the activation's derivative; by default the one
        that pairs with ``loss``, or 'softmax'.
    loss : str or (str, dict), optional
        'cross_entropy', 'binary_cross_entropy', 'squared_error', 'mse', 'huber'
        (``("huber", {"delta": 0.5})``, default delta 1), 'mae' or 'poisson' (log
        link: the output is the log of the Poisson rate, ``predict`` returns the
        rate exp(output)).  By default the one that pairs with ``output``.  Valid
        pairs: softmax with cross_entropy; sigmoid with binary_cross_entropy or
        squared_error; identity with squared_error, mse, huber, mae or poisson.
    dtype : {'float32', 'float64'}
    seed : int or None
        Seeds the initialisation and, separately, the training random numbers
        (shuffling, dropout, input noise).  None draws fresh entropy.
    backend : {'native', 'reference'}
    dropout : float or sequence of float, optional
        Inverted-dropout rate of the hidden layers' outputs (one rate for all, or one
        per hidden layer), applied in training only.
    init : str, callable or sequence of them, optional
        The weight initialiser, for all layers or one per layer (``len(layer_sizes)
        - 1`` entries).  Names (fan_in = n_in, fan_out = n_out of the layer):

        - 'glorot_uniform' U(+-sqrt(6 / (fan_in + fan_out))),
          'glorot_normal' N(0, 2 / (fan_in + fan_out));
        - 'he_uniform' U(+-sqrt(6 / fan_in)), 'he_normal' N(0, 2 / fan_in);
        - 'lecun_uniform' U(+-sqrt(3 / fan_in)), 'lecun_normal' N(0, 1 / fan_in);
        - 'zeros' (every unit of a layer then learns the same thing: for tests and
          linear models);
        - 'default' (or None): he_uniform for relu layers, glorot_uniform for the
          others, as gdcore always did.

        The normal variants are untruncated, as torch's ``xavier_normal_`` /
        ``kaiming_normal_(nonlinearity='relu')`` draw them (Keras truncates); no
        activation gain is applied beyond these formulas.  A callable is called as
        ``init(rng, n_in, n_out)`` with a ``numpy.random.Generator`` and returns the
        (n_in, n_out) weights as finite real numbers.

    All initialisers draw the layers in order from one generator seeded by ``seed``,
    in float64, and the values are rounded to ``dtype``, so a float32 and a float64
    network with the same seed start from the same weights.  Biases are zero.
    """

    def __init__(self, layer_sizes: Sequence[int],
                 activation: Union[Spec, Sequence[Spec]] = "relu",
                 output: Optional[Spec] = None, loss: Optional[Spec] = None,
                 dtype: Any = "float32", seed: Optional[int] = 0, backend: str = "native",
                 dropout: Union[None, float, Sequence[float]] = None,
                 init: Any = None) -> None:
        sizes = self._check_sizes(layer_sizes)
        n_hidden = len(sizes) - 2
        hidden: List[Any]
        if _is_one_spec(activation):
            hidden = [activation] * n_hidden
        else:
            hidden = list(activation)
            if len(hidden) != n_hidden:
                raise ValueError(f"activation lists {len(hidden)} names for {n_hidden} "
                                 f"hidden layers")
        hidden = [v.spec_form(*v.activation_spec(spec, "activation", HIDDEN_ACTIVATIONS),
                              v.ACTIVATION_PARAMS) for spec in hidden]
        output, loss = self._check_output_loss(output, loss, sizes[-1])
        self.layer_sizes = sizes
        self.activations = hidden + [output]
        self.output = output
        # loss_name: the loss's name; loss_spec: with its parameters (short form)
        self.loss_spec = loss
        self.loss_name = loss if isinstance(loss, str) else loss[0]
        self.dtype = _as_dtype(dtype)
        self.backend = _backends.check(backend)
        self.dropout = self._check_dropout(dropout, n_hidden)
        inits = self._check_init(init, len(sizes) - 1)
        if seed is not None:
            seed = v.check_int(seed, "seed", low=0)
        self.seed = seed
        init_seq, train_seq = np.random.SeedSequence(seed).spawn(2)
        self._rng = np.random.default_rng(train_seq)

        n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        self._params = np.zeros(n_params, dtype=self.dtype)
        self._grads = np.zeros(n_params, dtype=self.dtype)
        self._bind_layers()
        self._initialize(np.random.default_rng(init_seq), inits)
        # the last layer's delta from the loss is dE/dU for canonical pairs only
        self._output_backward = ("identity" if CANONICAL_OUTPUT[self.loss_name] == output
                                 else output)
        self._keep = [1.0 - p for p in self.dropout] + [1.0]
        self._stochastic = any(k < 1 for k in self._keep)
        self._workspace = None
        # training state, carried across fit/partial_fit calls and saved by save()
        from .training import History
        self.optimizer: Optional[_optim.Optimizer] = None
        self.epochs_trained = 0
        self.lr_schedule: Optional["Schedule"] = None
        self.history = History()

    # -- construction helpers --------------------------------------------------

    @staticmethod
    def _check_sizes(layer_sizes):
        try:
            sizes = [v.check_int(n, "layer_sizes[i]", low=1) for n in layer_sizes]
        except TypeError as err:
            if "layer_sizes" in str(err):
                raise
            raise TypeError(f"layer_sizes must be a sequence of positive integers, "
                            f"got {layer_sizes!r}") from None
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs an input and an output size, got {sizes}")
        return sizes

    @staticmethod
    def _check_output_loss(output, loss, n_out):
        """(output, loss) as short-form specs (see ``activation``)."""
        loss_params = out_params = None
        if loss is not None:
            loss, loss_params = v.loss_spec(loss)
        if output is not None:
            output, out_params = v.activation_spec(output, "output", OUTPUT_ACTIVATIONS)
        if output is None:
            output = CANONICAL_OUTPUT[loss] if loss is not None else "softmax"
        if loss is None:
            loss = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy",
                    "identity": "squared_error"}.get(output, "squared_error")
        if (output, loss) not in VALID_PAIRS:
            pairs = ", ".join(f"{o}+{l}" for o, l in sorted(VALID_PAIRS))
            raise ValueError(f"output {output!r} does not go with loss {loss!r}; "
                             f"valid pairs: {pairs}")
        if output == "softmax" and n_out < 2:
            raise ValueError("a softmax output needs at least 2 units; use a sigmoid "
                             "output with binary_cross_entropy for two classes")
        return (v.spec_form(output, out_params or {}, v.ACTIVATION_PARAMS),
                v.spec_form(loss, loss_params or {}, v.LOSS_PARAMS))

    @staticmethod
    def _check_dropout(dropout, n_hidden):
        if dropout is None:
            return [0.0] * n_hidden
        rates = [dropout] * n_hidden if isinstance(dropout, numbers.Real) else list(dropout)
        if len(rates) != n_hidden:
            raise ValueError(f"dropout lists {len(rates)} rates for {n_hidden} hidden layers")
        return [v.check_float(p, "dropout", 0.0, 1.0, high_open=True) for p in rates]

    def _bind_layers(self):
        """(Re)create ``layers``: views of ``params`` and ``grads``, layer by layer."""
        self.layers = []
        offset = 0
        sizes = self.layer_sizes
        for n_in, n_out, act in zip(sizes[:-1], sizes[1:], self.activations):
            w_end = offset + n_in * n_out
            self.layers.append(Layer(
                self.params[offset:w_end].reshape(n_in, n_out),
                self.params[w_end:w_end + n_out],
                self.grads[offset:w_end].reshape(n_in, n_out),
                self.grads[w_end:w_end + n_out], act))
            offset = w_end + n_out

    # -- pickling ----------------------------------------------------------------

    def __getstate__(self):
        """Everything but the native workspace (rebuilt on the next step) and the
        layer views (rebuilt from the flat buffers on unpickling), so a pickled or
        deep-copied network continues training bitwise like the original."""
        state = dict(self.__dict__)
        state["_workspace"] = None
        state.pop("layers", None)
        state.pop("_marks", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._bind_layers()

    @staticmethod
    def _check_init(init, n_layers):
        """One initialiser (a name or a callable) per layer."""
        if init is None or isinstance(init, str) or callable(init):
            specs = [init] * n_layers
        else:
            try:
                specs = list(init)
            except TypeError:
                raise TypeError(f"init must be a name, a callable or a sequence of them, "
                                f"got {type(init).__name__}") from None
            if len(specs) != n_layers:
                raise ValueError(f"init lists {len(specs)} initialisers for {n_layers} "
                                 f"layers")
        for spec in specs:
            if spec is not None and not callable(spec):
                if not isinstance(spec, str):
                    raise TypeError(f"init must be a name, a callable or a sequence of "
                                    f"them, got {spec!r}")
                v.check_name(spec, "init", INITIALIZERS)
        return specs

    def _initialize(self, rng, inits=None):
        for i, layer in enumerate(self.layers):
            spec = "default" if inits is None or inits[i] is None else inits[i]
            shape = layer.W.shape
            if callable(spec):
                W = spec(rng, layer.n_in, layer.n_out)
                try:
                    W = np.asarray(W, dtype=np.float64)
                except (TypeError, ValueError):
                    raise TypeError(f"init for layer {i} must return real numbers, got "
                                    f"{type(W).__name__}") from None
                if W.shape != shape:
                    raise ValueError(f"init for layer {i} returned shape {W.shape}, "
                                     f"expected {shape} (n_in, n_out)")
                if not np.isfinite(W).all():
                    raise ValueError(f"init for layer {i} returned NaN or infinity")
            else:
                if spec == "default":
                    spec = "he_uniform" if layer.activation == "relu" else "glorot_uniform"
                W = _draw_weights(spec, rng, layer.n_in, layer.n_out)
            layer.W[...] = W
            layer.b[...] = 0

    def __repr__(self):
        return (f"MLP({self.layer_sizes}, activation={self.activations[:-1]}, "
                f"output={self.output!r}, loss={self.loss_name!r}, "
                f"dtype={self.dtype.name!r}, backend={self.backend!r})")

    @property
    def params(self) -> FloatArray:
        """All weights and biases, one flat buffer (the layers' W and b are views of it).

        The attribute is read-only: the network, its layer views and its native
        workspace all hold this one buffer, so a new array cannot take its place.
        Write values into it instead: ``net.params[...] = x``."""
        return self._params

    @params.setter
    def params(self, value: Any) -> None:
        raise AttributeError("net.params is the network's own buffer and cannot be "
                             "replaced; copy values into it with net.params[...] = x")

    @property
    def grads(self) -> FloatArray:
        """The gradient of the last step, laid out like ``params`` (read-only
        attribute, as ``params``; ``net.grads[...] = g`` writes into it)."""
        return self._grads

    @grads.setter
    def grads(self, value: Any) -> None:
        raise AttributeError("net.grads is the network's own buffer and cannot be "
                             "replaced; copy values into it with net.grads[...] = g")

    @property
    def n_params(self) -> int:
        return self.params.shape[0]

    @property
    def is_classifier(self) -> bool:
        return self.loss_name in ("cross_entropy", "binary_cross_entropy")

    # -- input checks -----------------------------------------------------------

    def _check_X(self, X: Any, name: str = "X", convert: bool = False) -> FloatArray:
        """X as a C-contiguous (n_samples, n_in) array of the network's dtype.

        ``convert``: any real (bool, integer or float) array-like is converted once to
        the network's dtype (float64 data into a float32 network is rounded, as
        scikit-learn does); otherwise (``train_step``, the hot path) the dtype must
        already match and the error says how to convert."""
        if (type(X) is np.ndarray and X.dtype == self.dtype and X.ndim == 2
                and X.flags.c_contiguous and X.shape[1] == self.layer_sizes[0]):
            return X
        if not isinstance(X, np.ndarray):
            X = np.asarray(X)
        if convert and X.dtype != self.dtype:
            if X.dtype.kind not in "biuf":
                raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
            X = X.astype(self.dtype)
        if X.dtype != self.dtype:
            raise TypeError(f"{name} has dtype {X.dtype} but the network is {self.dtype}; "
                            f"pass {name}.astype(np.{self.dtype.name})")
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, {self.layer_sizes[0]}), "
                             f"got shape {X.shape}")
        if X.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"{name} has {X.shape[1]} features but the network takes "
                             f"{self.layer_sizes[0]}")
        if isinstance(X, np.memmap) and X.flags.c_contiguous:
            return X    # stays a memmap, so the forward pass reads it in blocks
        return np.ascontiguousarray(X)

    def _check_T(self, T: Any, n_samples: int, name: str = "T",
                 convert: bool = False) -> NDArray[Any]:
        """T in the form the kernels take: int64 labels (B,) for cross-entropy, or
        (B, n_out) targets of the network dtype.

        ``convert``: float labels that are whole numbers and (n, 1) label columns are
        accepted for cross-entropy, and real targets of any dtype are converted once
        to the network's dtype."""
        K = self.layer_sizes[-1]
        if convert:
            T = self._convert_T(T, K)
        if type(T) is np.ndarray:
            if (T.ndim == 1 and T.dtype == np.int64 and self.loss_name == "cross_entropy"
                    and T.shape[0] == n_samples and T.flags.c_contiguous
                    and (n_samples == 0 or (T.min() >= 0 and T.max() < K))):
                return T
            if (T.ndim == 2 and T.dtype == self.dtype and T.shape == (n_samples, K)
                    and T.flags.c_contiguous):
                return T
        T = np.asarray(T)
        if self.loss_name == "cross_entropy" and T.ndim == 1:
            if T.dtype.kind not in "iu":
                raise TypeError(f"{name} as class labels must be integers, got {T.dtype}")
            if T.shape[0] != n_samples:
                raise ValueError(f"{name} has {T.shape[0]} labels for {n_samples} samples")
            if n_samples and (T.min() < 0 or T.max() >= K):
                bad = T.min() if T.min() < 0 else T.max()
                raise ValueError(f"{name} contains label {bad}; labels must be in [0, {K})")
            return np.ascontiguousarray(T, dtype=np.int64)
        if T.ndim == 1 and K == 1:
            T = T.reshape(-1, 1)
        if T.ndim != 2 or T.shape[1] != K:
            expected = f"({n_samples},) labels or ({n_samples}, {K})" \
                if self.loss_name == "cross_entropy" else f"({n_samples}, {K})"
            raise ValueError(f"{name} must have shape {expected}, got {T.shape}")
        if T.shape[0] != n_samples:
            raise ValueError(f"{name} has {T.shape[0]} rows for {n_samples} samples")
        if T.dtype.kind in "iub":
            T = T.astype(self.dtype)
        elif T.dtype != self.dtype:
            raise TypeError(f"{name} has dtype {T.dtype} but the network is {self.dtype}; "
                            f"pass {name}.astype(np.{self.dtype.name})")
        return np.ascontiguousarray(T)

    def _convert_T(self, T, K):
        T = np.asarray(T)
        if T.dtype.kind not in "biuf":
            raise TypeError(f"T must hold numbers, got dtype {T.dtype}; map class names "
                            f"to integers (or use gdcore.sklearn.MLPClassifier)")
        if self.loss_name == "cross_entropy":
            if T.ndim == 2 and T.shape[1] == 1 and K > 1:
                T = T[:, 0]
            if T.ndim == 1 and T.dtype.kind == "f":
                if not (np.isfinite(T).all() and np.array_equal(T, np.round(T))):
                    raise ValueError("T as class labels must be whole numbers")
                T = T.astype(np.int64)
            return T
        if T.dtype.kind == "f" and T.dtype != self.dtype:
            T = T.astype(self.dtype)
        return T

    @staticmethod
    def _check_optimizer(optimizer):
        if not isinstance(optimizer, _optim.Optimizer):
            raise TypeError(f"optimizer must be a gdcore.optim optimizer (SGD, Adam, ...), "
                            f"got {type(optimizer).__name__}")
        return optimizer

    # -- inference --------------------------------------------------------------

    def forward(self, X: ArrayLike, n_threads: Threads = None) -> FloatArray:
        """The network output for X, shape (n_samples, n_out), without dropout.

        X may be any real array-like; it is converted once to the network's dtype.
        A ``np.memmap`` X is read ``FORWARD_BLOCK_ROWS`` rows at a time, so the
        hidden layers' activations never exist for the whole file at once (only the
        output does).  The result equals the in-memory one up to rounding (BLAS may
        take another code path for a short last block)."""
        if isinstance(X, np.memmap) and X.ndim == 2 and X.shape[0] > FORWARD_BLOCK_ROWS:
            blocks = range(0, X.shape[0], FORWARD_BLOCK_ROWS)
            Y = np.empty((X.shape[0], self.layer_sizes[-1]), dtype=self.dtype)
            for start in blocks:
                rows = slice(start, start + FORWARD_BLOCK_ROWS)
                Y[rows] = self.forward(np.asarray(X[rows]), n_threads)
            return Y
        X = self._check_X(X, convert=True)
        kernels = _backends.kernels_for(self.backend)
        Y = X
        for layer in self.layers:
            Y = kernels.dense_forward(Y, layer.W, layer.b, layer.activation,
                                      n_threads=n_threads)
        return Y

    def predict_proba(self, X: ArrayLike, n_threads: Threads = None) -> FloatArray:
        """Class probabilities (softmax or sigmoid outputs), shape (n_samples, n_out)."""
        if not self.is_classifier:
            raise ValueError(f"predict_proba needs a classifier; this network's loss is "
                             f"{self.loss_name!r}")
        return self.forward(X, n_threads)

    def predict(self, X: Any, n_threads: Threads = None,
                batch_size: Optional[int] = None) -> NDArray[Any]:
        """Class labels for classifiers (argmax of softmax; sigmoid outputs > 0.5, as
        (n_samples,) for one output), values for regression ((n_samples,) for one
        output).

        X may also be an iterable of batches (arrays, or (X_batch, T_batch) pairs
        whose targets are ignored, as ``fit`` takes them) or a callable returning
        one: the predictions of all batches are concatenated in order.

        ``batch_size``: forward at most this many rows at a time, so the hidden
        activations never take more memory than one batch's (the result is the same)."""
        if not isinstance(X, np.ndarray) and not hasattr(X, "__array__") and (
                callable(X) or (hasattr(X, "__iter__") and not isinstance(X, (list, tuple)))):
            batches = X() if callable(X) else X
            parts = [self.predict(b[0] if isinstance(b, tuple) else b, n_threads, batch_size)
                     for b in batches]
            if not parts:
                raise ValueError("X yielded no batches")
            return np.concatenate(parts)
        if batch_size is not None:
            batch_size = v.check_int(batch_size, "batch_size", low=1)
            X = self._check_X(X, convert=True)
            if X.shape[0] > batch_size:
                return np.concatenate([self.predict(X[i:i + batch_size], n_threads)
                                       for i in range(0, X.shape[0], batch_size)])
        Y = self.forward(X, n_threads)
        if self.loss_name == "cross_entropy":
            return Y.argmax(axis=1)
        if self.loss_name == "binary_cross_entropy":
            labels = (Y > 0.5).astype(np.int64)
            return labels[:, 0] if labels.shape[1] == 1 else labels
        if self.loss_name == "poisson":
            Y = np.exp(Y)           # the rate; the network outputs its logarithm
        return Y[:, 0] if Y.shape[1] == 1 else Y

    def loss(self, X: ArrayLike, T: ArrayLike, n_threads: Threads = None) -> float:
        """The data loss on (X, T) without dropout or regularization."""
        X = self._check_X(X, convert=True)
        T = self._check_T(T, X.shape[0], convert=True)
        kernels = _backends.kernels_for(self.backend)
        return kernels.loss(self.loss_spec, self.forward(X, n_threads), T,
                            n_threads=n_threads)

    def evaluate(self, X: ArrayLike, T: ArrayLike, n_threads: Threads = None
                 ) -> Dict[str, float]:
        """{'loss': data loss, 'accuracy': fraction correct (classifiers only)}.

        X and T are converted as in ``fit``."""
        X = self._check_X(X, convert=True)
        T = self._check_T(T, X.shape[0], convert=True)
        kernels = _backends.kernels_for(self.backend)
        Y = self.forward(X, n_threads)
        result = {"loss": kernels.loss(self.loss_spec, Y, T, n_threads=n_threads)}
        if self.loss_name == "cross_entropy":
            labels = T if T.ndim == 1 else T.argmax(axis=1)
            result["accuracy"] = float(np.mean(Y.argmax(axis=1) == labels)) if len(T) else math.nan
        elif self.loss_name == "binary_cross_entropy":
            result["accuracy"] = float(np.mean((Y > 0.5) == (T > 0.5))) if len(T) else math.nan
        return result

    # -- training -------------------------------------------------------------------

    # one definition for the function and the method: ``net.fit(X, T, ...)`` is
    # ``gdcore.training.fit(net, X, T, ...)``, whose docstring documents it
    fit = _training.fit

    def partial_fit(self, X: ArrayLike, T: ArrayLike,
                    optimizer: Optional[_optim.Optimizer] = None, l1: float = 0.0,
                    l2: float = 0.0, input_noise: float = 0.0,
                    n_threads: Threads = None) -> float:
        """One gradient step on the batch (X, T), for online learning; returns the
        batch loss.  Uses and updates the same training state as ``fit``: calling it
        over the batches ``fit(..., shuffle=False)`` would make, in order, gives the
        same parameters."""
        from .training import partial_fit
        return partial_fit(self, X, T, optimizer=optimizer, l1=l1, l2=l2,
                           input_noise=input_noise, n_threads=n_threads)

    def save(self, path: PathLike) -> None:
        """Save architecture, parameters and training state atomically (see
        ``gdcore.checkpoint``); ``gd.load(path)`` restores it."""
        _checkpoint.save(self, path)

    # -- the interface of the training loops (gdcore.training) --------------------

    @property
    def rng(self) -> np.random.Generator:
        """The network's random generator: it draws the shuffling order and the step
        seeds of dropout and input noise (``fit(seed=...)`` replaces it)."""
        return self._rng

    def reseed(self, seed: Any) -> None:
        """Replace the random generator by ``numpy.random.default_rng(seed)``."""
        self._rng = np.random.default_rng(seed)

    @property
    def stochastic(self) -> bool:
        """Whether a training step draws random numbers of its own (dropout)."""
        return self._stochastic

    @property
    def keep_probabilities(self) -> Tuple[float, ...]:
        """Per layer, the probability that dropout keeps a unit of the layer's output in
        training: 1 - the layer's dropout rate, and 1.0 for the output layer."""
        return tuple(self._keep)

    @property
    def output_backward(self) -> Spec:
        """The activation whose derivative the backward pass applies at the output:
        'identity' for the canonical pairs of output and loss (their loss delta is
        already the derivative with respect to the output layer's pre-activation), the
        output activation's spec otherwise (sigmoid with squared error, a parametrised
        activation with a regression loss)."""
        return self._output_backward

    def train_batch(self, X: FloatArray, T: NDArray[Any], optimizer: _optim.Optimizer,
                    l1: float, l2: float, input_noise: float, seed: int,
                    n_threads: Threads) -> float:
        """One training step on a checked batch with a given step ``seed``; returns the
        batch loss.  The loop body of ``fit``'s Python epochs."""
        return self._step(X, T, optimizer, True, l1, l2, input_noise, seed, n_threads)

    def native_epoch(self, X: FloatArray, T: NDArray[Any], order: Optional[IntArray],
                     batch_size: int, optimizer: _optim.Optimizer, seeds: NDArray[np.uint64],
                     l1: float, l2: float, input_noise: float, n_threads: Threads,
                     lr_at_step: Optional[Callable[[int], float]] = None) -> float:
        """One epoch of steps in one native call (native backend): batches of
        ``batch_size`` rows of the checked (X, T), gathered in ``order`` (int64 row
        indices) or taken in place when ``order`` is None, one step seed each from
        ``seeds`` (uint64, one per step).  Advances the optimizer's step count; returns
        the sum over batches of batch loss x batch size.  ``lr_at_step``: each step's
        learning rate as a function of the step index (a per-step schedule)."""
        n_steps = len(seeds)
        kind, flags, state = optimizer.native_plan(self.params)
        clip, segments, rows = optimizer.native_options(self.param_layout)
        scalars = optimizer.native_scalars(n_steps, lr_at_step, groups=rows)
        ws = self._ensure_workspace(batch_size, noise=bool(input_noise),
                                    epochs=order is not None)
        total = ws.epoch(X, T, order, batch_size, kind, flags, scalars, seeds, state, l1, l2,
                         input_noise, n_threads, clip=clip, segments=segments)
        optimizer.step_count += n_steps
        return total

    @property
    def param_layout(self) -> Layout:
        """Where each layer's parameters lie in ``params``: a tuple of (w0, w1, b0, b1)
        per layer, its weights being params[w0:w1] and its biases params[b0:b1] (the
        layout parameter groups select from)."""
        layout = self.__dict__.get("_param_layout")
        if layout is None:
            layout, offset = [], 0
            for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
                layout.append((offset, offset + n_in * n_out, offset + n_in * n_out,
                               offset + n_in * n_out + n_out))
                offset += n_in * n_out + n_out
            layout = self.__dict__["_param_layout"] = tuple(layout)
        return layout

    def _update_plan(self, optimizer):
        """(kind, flags, state, scalars, clip, segments) of the next native update."""
        kind, flags, state = optimizer._native_plan()
        clip, segments, rows = optimizer.native_options(self.param_layout)
        step = optimizer.step_count + 1
        scalars = (optimizer._native_scalars(step) if rows is None
                   else optimizer.group_scalars(step, rows))
        return kind, flags, state, scalars, clip, segments

    # -- training steps -----------------------------------------------------------

    def _ensure_workspace(self, n_samples, noise=False, epochs=False):
        ws = self._workspace
        if (ws is None or ws.capacity < n_samples or (noise and not ws.has_noise_buffer)
                or (epochs and not ws.has_epoch_buffers)):
            capacity = max(n_samples, ws.capacity if ws is not None else 0)
            ws = _kernels._native.NetworkWorkspace(
                self.params, self.grads, self.layer_sizes,
                [_kernels._ACT[_spec_name(a)] for a in self.activations],
                _kernels._LOSS[self.loss_name], capacity, self._keep,
                noise or (ws is not None and ws.has_noise_buffer),
                epochs or (ws is not None and ws.has_epoch_buffers),
                _kernels._ACT[_spec_name(self._output_backward)],
                [v.native_params(*v.activation_spec(a)) for a in self.activations],
                v.native_params(*v.loss_spec(self.loss_spec))[0])
            self._workspace = ws
        return ws

    def _step_seed(self):
        """A 64-bit seed for this step's dropout/noise, drawn only when needed."""
        return int(self._rng.bit_generator.random_raw())

    def gradient(self, X: ArrayLike, T: ArrayLike, n_threads: Threads = None
                 ) -> Tuple[float, FloatArray]:
        """(loss, gradient) of the data loss at the current parameters, without
        dropout or regularization; the gradient is a flat copy laid out like
        ``params``.  Nothing is updated."""
        X = self._check_X(X)
        T = self._check_T(T, X.shape[0])
        loss = self._step(X, T, None, False, 0.0, 0.0, 0.0, 0, n_threads)
        return loss, self.grads.copy()

    def train_step(self, X: ArrayLike, T: ArrayLike, optimizer: _optim.Optimizer, *,
                   l1: float = 0.0, l2: float = 0.0, input_noise: float = 0.0,
                   n_threads: Threads = None) -> float:
        """One gradient-descent step on the batch (X, T): forward (with dropout),
        loss, backward, optional l1/l2 penalties on the weights (not the biases) and
        Gaussian input noise, and the optimizer's update of ``params``.  Returns the
        batch loss before the update (data loss plus penalties).

        The step is all-or-nothing: X and T are checked first (an empty batch, NaN or
        infinity in X or in float targets, or a label outside [0, n_out) raises
        ValueError, with the native backend from a fused check in C that costs about
        one read of the batch), and nothing changes when it raises.  Calling it on one
        network or one optimizer from two threads at once raises RuntimeError; separate
        networks with separate optimizers train in parallel (the GIL is released)."""
        if not isinstance(optimizer, _optim.Optimizer):
            self._check_optimizer(optimizer)
        # the marks of _optim.exclusive, inlined: this is the per-step hot path
        token = object()
        marks = self.__dict__.get("_marks")
        if marks is None:
            marks = _optim.busy_marks(self)
        opt_marks = optimizer.__dict__.get("_marks")
        if opt_marks is None:
            opt_marks = _optim.busy_marks(optimizer)
        if marks.setdefault("busy", token) is not token:
            raise RuntimeError("this network is in use by another thread; use one per "
                               "thread (or serialise the calls with a lock)")
        try:
            if opt_marks.setdefault("busy", token) is not token:
                raise RuntimeError(f"this {type(optimizer).__name__} optimizer is in use "
                                   f"by another thread; use one per thread (or serialise "
                                   f"the calls with a lock)")
            try:
                return self._guarded_step(X, T, optimizer, l1, l2, input_noise, n_threads)
            finally:
                del opt_marks["busy"]
        finally:
            del marks["busy"]

    def _guarded_step(self, X, T, optimizer, l1, l2, input_noise, n_threads):
        """``_train_step``, undoing what a failed step left (the seed it drew, the
        optimizer state it allocated)."""
        fresh = not optimizer._state
        steps = optimizer._step_count
        rng_state = self._rng.bit_generator.state if self._stochastic or input_noise else None
        try:
            return self._train_step(X, T, optimizer, l1, l2, input_noise, n_threads)
        except BaseException:
            if optimizer._step_count != steps:
                raise       # the step completed (a Ctrl-C after it): keep it whole
            if rng_state is not None:
                self._rng.bit_generator.state = rng_state
            if fresh and optimizer._state and optimizer._step_count == 0:
                optimizer.reset()
            raise

    def _train_step(self, X, T, optimizer, l1, l2, input_noise, n_threads):
        if l1 or l2 or input_noise:
            l1 = v.check_float(l1, "l1", 0.0)
            l2 = v.check_float(l2, "l2", 0.0)
            input_noise = v.check_float(input_noise, "input_noise", 0.0)
        seed = self._step_seed() if (input_noise or self._stochastic) else 0
        ws = self._workspace
        if ws is not None and self.backend == "native":
            # fast path: X and T checked in C; anything unusual falls through
            optimizer._ensure_state(self.params)
            kind, flags, state, scalars, clip, segments = self._update_plan(optimizer)
            loss = ws.try_step(X, T, True, True, kind, flags, scalars, state,
                               l1, l2, input_noise, seed, _openmp.resolve(n_threads),
                               optimizer, clip=clip, segments=segments)
            if loss is not None:
                return loss
        X = self._check_X(X)
        T = self._check_T(T, X.shape[0])
        if X.shape[0] == 0:
            raise ValueError("X has no samples: a training step needs a non-empty batch")
        if self.backend == "reference":
            if not np.isfinite(X).all():
                raise ValueError("X contains NaN or infinity")
            if T.dtype.kind == "f" and not np.isfinite(T).all():
                raise ValueError("T contains NaN or infinity")
        return self._step(X, T, optimizer, True, l1, l2, input_noise, seed, n_threads)

    def _step(self, X, T, optimizer, training, l1, l2, noise, seed, n_threads,
              sample_weight=None):
        """One step on checked X, T: with ``optimizer`` None, only the gradient.
        ``sample_weight``: checked (B,) weights of the network dtype with a positive
        sum, for the weighted loss sum_i w_i E_i / sum_i w_i."""
        if self.backend == "reference":
            return self._reference_step(X, T, optimizer, training, l1, l2, noise, seed,
                                        n_threads, sample_weight)
        if sample_weight is not None:
            return self._weighted_step(X, T, optimizer, training, l1, l2, noise, seed,
                                       n_threads, sample_weight)
        ws = self._workspace
        if (ws is None or ws.capacity < X.shape[0]
                or (noise and not ws.has_noise_buffer)):
            ws = self._ensure_workspace(X.shape[0], noise=bool(noise))
        nt = _openmp.resolve(n_threads)
        if optimizer is None:
            return ws.step(X, T, training, False, 0, 0, None, None, l1, l2, noise, seed, nt)
        optimizer._ensure_state(self.params)
        kind, flags, state, scalars, clip, segments = self._update_plan(optimizer)
        # the step advances optimizer.step_count itself (see NetworkWorkspace.step)
        return ws.step(X, T, training, True, kind, flags, scalars, state, l1, l2,
                       noise, seed, nt, owner=optimizer, clip=clip, segments=segments)

    def _weighted_step(self, X, T, optimizer, training, l1, l2, noise, seed, n_threads,
                       sample_weight):
        """The native step with per-sample weights (a separate method so that the
        unweighted step stays exactly as it is)."""
        ws = self._ensure_workspace(X.shape[0], noise=bool(noise))
        nt = _openmp.resolve(n_threads)
        if optimizer is None:
            return ws.step(X, T, training, False, 0, 0, None, None, l1, l2, noise, seed, nt,
                           sample_weight=sample_weight)
        optimizer._ensure_state(self.params)
        kind, flags, state, scalars, clip, segments = self._update_plan(optimizer)
        loss = ws.step(X, T, training, True, kind, flags, scalars, state, l1, l2,
                       noise, seed, nt, sample_weight=sample_weight, owner=optimizer,
                       clip=clip, segments=segments)
        return loss

    def _reference_step(self, X, T, optimizer, training, l1, l2, noise, seed, n_threads,
                        sample_weight=None):
        """The native step, written with gdcore.reference kernels."""
        return _reference_network.network_step(self, X, T, optimizer, training, l1, l2,
                                               noise, seed, sample_weight)


def load(path: PathLike) -> MLP:
    """Rebuild the network saved at ``path`` (by ``MLP.save``), with its optimizer,
    schedule, generator, epoch count and history, ready to continue training exactly
    where it stopped.  A missing file raises FileNotFoundError; a corrupt, truncated or
    foreign one ValueError naming the file (see ``gdcore.checkpoint``)."""
    from .training import History
    return _checkpoint.restore(path, MLP, History)


GradcheckResult = namedtuple("GradcheckResult", "max_rel_error max_abs_error passed")


def gradcheck(net: MLP, X: ArrayLike, T: ArrayLike, h: float = 1e-6,
              rtol: float = 1e-6) -> "GradcheckResult":
    """Compare ``net.gradient`` with central differences of ``net.loss``.

    The check runs on a float64 copy of the network (central differences need the
    precision), so it also checks float32 networks' formulas.  The relative error is
    ``max |analytic - numerical| / max(max |numerical|, max |analytic|)``, over all
    parameters.

    Returns
    -------
    GradcheckResult(max_rel_error, max_abs_error, passed)
        ``passed`` is ``max_rel_error <= rtol``.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a gdcore.MLP, got {type(net).__name__}")
    h = v.check_float(h, "h", 0.0, low_open=True)
    rtol = v.check_float(rtol, "rtol", 0.0)
    twin = MLP(net.layer_sizes, activation=net.activations[:-1], output=net.output,
               loss=net.loss_spec, dtype="float64", seed=0, backend=net.backend)
    twin.params[...] = net.params
    X = np.asarray(X, dtype=np.float64)
    T = np.asarray(T)
    if T.dtype.kind == "f":
        T = T.astype(np.float64)
    _, analytic = twin.gradient(X, T)
    saved = twin.params.copy()

    def loss_at(p):
        twin.params[...] = p
        return twin.loss(X, T)

    numeric = numerical_gradient(loss_at, saved, h=h)
    twin.params[...] = saved
    abs_err = float(np.max(np.abs(analytic - numeric))) if analytic.size else 0.0
    scale = max(float(np.max(np.abs(numeric))), float(np.max(np.abs(analytic))),
                np.finfo(np.float64).tiny) if analytic.size else 1.0
    rel = abs_err / scale
    return GradcheckResult(rel, abs_err, rel <= rtol)
