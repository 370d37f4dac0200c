"""Drop-in replacements for scikit-learn's ``MLPClassifier`` and ``MLPRegressor``::

    from gdcore.sklearn import MLPClassifier      # instead of sklearn.neural_network
    clf = MLPClassifier(hidden_layer_sizes=(15,), solver="sgd", batch_size=32).fit(X, y)

The estimators subclass scikit-learn's own, so parameters, defaults, validation,
label handling (``LabelBinarizer``), scoring, tags and fitted attributes are
scikit-learn's; the numerical work (forward, loss, backward, update) runs in a
``gdcore.MLP`` whose parameters ``coefs_`` and ``intercepts_`` are views of.

Notes
-----
.. rubric:: How scikit-learn's training maps onto gdcore

- Initial weights: scikit-learn's own ``_init_coef`` draws (Glorot uniform, factor 2
  for logistic, intercepts drawn too) from ``check_random_state(random_state)``; the
  per-epoch shuffles use ``sklearn.utils.shuffle`` on the same generator, and the
  early-stopping split ``train_test_split`` (stratified for single-output
  classifiers).  The same ``random_state`` therefore gives the same initial weights,
  batches and validation split as scikit-learn.
- Output and loss: multiclass is softmax + cross-entropy; binary (ONE logistic unit)
  and multilabel are sigmoid + binary cross-entropy; regression is identity + half
  squared error.  scikit-learn's squared loss is the mean over all elements / 2,
  gdcore's the mean over samples of the sum over outputs / 2: the gradient
  (Y - T) / n_samples is the same and the reported loss is divided by n_outputs.
- Targets: single-output multiclass labels reach the softmax cross-entropy as int64
  codes into ``classes_`` (``classes_`` is sorted, so a code is a label's position),
  binary labels as LabelBinarizer's one 0/1 column, multilabel targets as its
  indicator matrix: the classes, checks and error messages are scikit-learn's, but no
  one-hot matrix is built for the multiclass case (a copy of n_samples x n_classes).
- L2: scikit-learn adds ``alpha * W / n`` to the weight gradients and
  ``0.5 * alpha * ||W||^2 / n`` to the loss (n: the batch's size, or its sum of
  sample weights); this is gdcore's ``l2`` with ``l2 = alpha / n``, per batch.
- ``solver="sgd"``: scikit-learn's velocity form ``v = mu v - lr g`` (Nesterov:
  ``p += mu v - lr g``) equals torch's ``b = mu b + g; p -= lr b`` with
  ``v = -lr b``; when the learning rate changes (invscaling, adaptive) the buffer is
  rescaled by old_lr / new_lr so the velocity carries over as in scikit-learn.
  ``momentum=0`` is plain gradient descent (Nesterov ignored, as its formula does).
- ``solver="adam"``: scikit-learn adds ``epsilon`` to sqrt(v) before the bias
  correction; this is torch's Adam with the step-dependent
  ``eps_t = epsilon / sqrt(1 - beta_2^t)``, passed to the fused native update.
- ``solver="lbfgs"``: ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` with
  scikit-learn's options (maxiter=max_iter, maxfun=max_fun, gtol=tol) on gdcore's
  native full-batch loss and gradient.  The weights keep the network's dtype
  (scikit-learn's lbfgs returns float64 weights for float32 data).
- A ``gdcore.optim`` optimizer instance as ``solver`` trains with that optimizer's
  own (torch) rules and hyperparameters, in scikit-learn's epoch loop (like "adam":
  constant learning rate, stops after ``n_iter_no_change`` epochs without
  improvement); ``learning_rate*``, ``momentum``, ``beta_*`` and ``epsilon`` are then
  unused.  A copy is trained; the instance passed in is never modified.
- ``sample_weight``: the weighted loss sum_i w_i E_i / sum_i w_i and delta
  w_i (Y_i - T_i) / sum_i w_i of scikit-learn, computed in the native step.  A
  mini-batch whose weights sum to 0 makes no step (scikit-learn would divide by 0);
  L-BFGS needs a positive total weight.

.. rubric:: gdcore extras (further keyword arguments)

``dtype`` : None, 'float32' or 'float64'
    None follows X as scikit-learn does (float32 data trains in float32, anything
    else in float64).
``dropout`` : None, a rate or one rate per hidden layer
    Inverted dropout, stochastic solvers only (L-BFGS needs a deterministic loss and
    rejects it).
``n_threads`` : int or None
    Threads of the native kernels (None: the library setting).

.. rubric:: Compatibility

Written against scikit-learn 1.9: besides the public classes it uses their helpers
``_validate_input`` (the classifier's is followed line by line up to the label
encoding above), ``_initialize``/``_init_coef`` and ``_update_no_improvement_count``,
so that label handling, initialisation and stopping stay exactly scikit-learn's; the
epoch shuffle draws what ``sklearn.utils.shuffle`` draws (``random_state.shuffle`` of
an arange) without its input checks; the tests compare every solver with
scikit-learn's own estimators, so a change there shows up as a failing comparison.

Sparse X (CSR/CSC) is densified one mini-batch at a time (for L-BFGS and prediction,
in blocks of ``SPARSE_BLOCK_ROWS`` rows), never whole.
"""
import copy
import math
import re
import warnings
from typing import Optional, Sequence, Union
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.special
import scipy.sparse as sp
import sklearn

_SKLEARN_VERSION = re.match(r"(\d+)\.(\d+)", sklearn.__version__)
if _SKLEARN_VERSION is None or tuple(map(int, _SKLEARN_VERSION.groups())) < (1, 9):
    raise ImportError(f"gdcore.sklearn needs scikit-learn >= 1.9 (it follows that "
                      f"version's training loop exactly); found {sklearn.__version__}: "
                      f'pip install "gdcore[sklearn]"')

from sklearn.base import is_classifier  # noqa: E402
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, column_or_1d, validate_data

from . import _constants, _openmp
from . import optim as _optim
from .network import MLP

try:  # the iprint/disp option of L-BFGS-B as scikit-learn passes it
    from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
except ImportError:  # pragma: no cover
    def _get_additional_lbfgs_options_dict(key, value):
        return {}

__all__ = ["MLPClassifier", "MLPRegressor"]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


SPARSE_BLOCK_ROWS = 1024
_ACTIVATION = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh",
               "relu": "relu"}
_OUTPUT = {"softmax": ("softmax", "cross_entropy"),
           "logistic": ("sigmoid", "binary_cross_entropy"),
           "identity": ("identity", "squared_error"),
           # scikit-learn's poisson: exp output; gdcore's network outputs the log rate
           "exp": ("identity", "poisson")}

# the slots of the native Adam step's scalars
_ADAM_SLOTS = {name: i for i, name in enumerate(_constants.OPTIMIZER_SCALARS["adam"])}
_ADAM_EPS_SLOT = _ADAM_SLOTS["eps"]


class ScikitSGD(_optim.SGD):
    """scikit-learn's SGD (velocity form) as torch's SGD with a rescaled buffer::

        v = momentum * v - lr * g ;  p += v             (nesterov: p += momentum * v - lr * g)

    is ``gdcore.optim.SGD`` with ``v = -lr * b``; ``set_lr`` rescales ``b`` by
    old_lr / new_lr so that a learning-rate change keeps ``v``, as scikit-learn does.
    """

    def set_lr(self, lr):
        old = self.lr
        buf = self.state.get("momentum_buffer")
        if buf is not None and lr != old and lr > 0:
            buf *= buf.dtype.type(old / lr)
        self.lr = lr


class ScikitAdam(_optim.Adam):
    """scikit-learn's Adam: epsilon is added to sqrt(v) before the bias correction::

        p -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)

    which is torch's Adam with eps_t = eps / sqrt(1 - beta2^t) at step t.
    """

    def _eps(self, step):
        return self._hyper["eps"] / math.sqrt(1.0 - self._hyper["betas"][1] ** step)

    def _native_scalars(self, step):
        scalars = list(super()._native_scalars(step))
        scalars[_ADAM_EPS_SLOT] = self._eps(step)
        return tuple(scalars)

    def _kernel_kwargs(self, step):
        kwargs = super()._kernel_kwargs(step)
        kwargs["eps"] = self._eps(step)
        return kwargs

    def native_scalars(self, n_steps, lr_at_step=None):
        """The rows of ``_native_scalars`` for the next ``n_steps`` steps, built a
        column at a time (the same float64 expressions, so the same bits): an epoch of
        small batches needs one row per step."""
        if lr_at_step is not None:
            return super().native_scalars(n_steps, lr_at_step)
        h = self._hyper
        lr, (beta1, beta2), eps = h["lr"], h["betas"], h["eps"]
        steps = range(self.step_count + 1, self.step_count + 1 + n_steps)
        correction2 = [1 - beta2 ** step for step in steps]
        out = np.zeros((n_steps, _constants.N_SCALARS), dtype=np.float64)
        column = {"beta1": beta1, "beta2": beta2, "weight_decay": h["weight_decay"],
                  "decay_factor": 1 - lr * h["weight_decay"],
                  # adam_step_scalars and _eps below, per step
                  "step_size": [lr / (1 - beta1 ** step) for step in steps],
                  "bias_correction2_sqrt": [c ** 0.5 for c in correction2],
                  "eps": [eps / math.sqrt(1.0 - beta2 ** step) for step in steps]}
        for name, value in column.items():
            out[:, _ADAM_SLOTS[name]] = value
        return out


def _extra_constraints():
    return {
        "solver": [StrOptions({"lbfgs", "sgd", "adam"}), _optim.Optimizer],
        "dtype": [None, StrOptions({"float32", "float64"}), type, np.dtype],
        "dropout": [None, Interval(Real, 0, 1, closed="left"), "array-like"],
        "n_threads": [None, Interval(Integral, 1, None, closed="left")],
    }


class _GDCoreMLP:
    """The parts shared by both estimators: training and prediction on a gd.MLP."""

    # -- construction of the network ------------------------------------------

    def _net_dtype(self, X):
        if self.dtype is None:
            return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be None, 'float32' or 'float64', got {self.dtype!r}")
        return dtype

    def _initialize(self, y, layer_units, dtype):
        # scikit-learn's own initialisation (attributes and weight draws), then the
        # weights move into a gdcore network whose buffers coefs_/intercepts_ view;
        # scikit-learn reads only y's number of columns (y may be integer labels here)
        super()._initialize(np.empty((0, layer_units[-1])), layer_units, dtype)
        if isinstance(self.solver, _optim.Optimizer):
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        dropout = self.dropout
        if dropout is not None and self.solver == "lbfgs":
            raise ValueError("dropout needs a stochastic solver ('sgd', 'adam' or a "
                             "gdcore.optim optimizer); L-BFGS needs a deterministic loss")
        seed = int(self._random_state.randint(np.iinfo(np.int32).max)) if dropout else 0
        output, loss = _OUTPUT[self.out_activation_]
        net = MLP(layer_units, activation=_ACTIVATION[self.activation], output=output,
                  loss=loss, dtype=dtype, seed=seed, dropout=dropout)
        for layer, coef, intercept in zip(net.layers, self.coefs_, self.intercepts_):
            layer.W[...] = coef
            layer.b[...] = intercept
        self._net = net
        self._bind_coefs()
        self.__dict__.pop("_optimizer", None)

    def _bind_coefs(self):
        self.coefs_ = [layer.W for layer in self._net.layers]
        self.intercepts_ = [layer.b for layer in self._net.layers]

    def __getstate__(self):
        state = dict(super().__getstate__())
        if "_net" in state:
            # views of the network's buffer: rebuilt from it on unpickling
            state.pop("coefs_", None)
            state.pop("intercepts_", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_net" in self.__dict__:
            self._bind_coefs()

    def _check_solver(self):
        if isinstance(self.solver, _optim.Optimizer) or self.solver in ("sgd", "adam"):
            return True
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                             f"{self.solver} is not stochastic.")

    def _targets(self, y, dtype):
        """Targets as the native step takes them: int64 labels for softmax, else
        (n, n_outputs) rows of the network dtype."""
        if self._net.loss_name == "cross_entropy":
            if y.ndim == 2:          # one-hot rows
                y = np.argmax(y, axis=1)
            return np.ascontiguousarray(y, dtype=np.int64)
        return np.ascontiguousarray(y, dtype=dtype)

    def _validate_input(self, X, y, incremental, reset):
        """scikit-learn's validation and label handling, except that single-output
        classes are encoded as integer labels (multiclass: int64 codes into
        ``classes_``, which the softmax cross-entropy takes directly) or as the one
        bool column of LabelBinarizer (binary), instead of through
        ``LabelBinarizer.transform``'s one-hot matrix; multilabel targets keep it."""
        if not is_classifier(self):
            return super()._validate_input(X, y, incremental, reset)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # scikit-learn 1.9's MLPClassifier._validate_input from here on
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as "
                        f"in the previous call to fit. Previously got {self.classes_}, "
                        f"`y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError("`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        return X, self._encode_labels(y)

    def _encode_labels(self, y):
        binarizer = self._label_binarizer
        classes = binarizer.classes_
        if (y.ndim == 1 and binarizer.y_type_ in ("binary", "multiclass")
                and len(classes) >= 2):
            # classes_ is sorted (np.unique), so its position is the label's code
            codes = np.searchsorted(classes, y)
            if binarizer.y_type_ == "binary":
                return (codes == 1).reshape(-1, 1)
            return codes.astype(np.int64, copy=False)
        # this downcast to bool is to prevent upcasting when working with float32 data
        return binarizer.transform(y).astype(bool)

    def _decode_labels(self, y):
        """The labels of targets from ``_encode_labels`` (early stopping's scores)."""
        if y.ndim == 1:
            return self.classes_[y]
        return self._label_binarizer.inverse_transform(y)

    # -- fit --------------------------------------------------------------------

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden_layer_sizes)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1 and not is_classifier(self):
            y = y.reshape((-1, 1))
        # integer labels of a multiclass problem: one output per class
        n_outputs = len(self.classes_) if y.ndim == 1 else y.shape[1]
        if not first_pass and n_outputs != self._net.layer_sizes[-1]:
            raise ValueError(f"y has {n_outputs} outputs but the fitted network has "
                             f"{self._net.layer_sizes[-1]}")
        self.n_outputs_ = n_outputs
        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, self._net_dtype(X))
        dtype = self._net.dtype
        # converted once to the network's dtype; sparse stays sparse (CSR rows)
        if sp.issparse(X):
            X = X.tocsr().astype(dtype)
        else:
            X = np.ascontiguousarray(X, dtype=dtype)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=dtype)
        # scikit-learn's squared loss averages over outputs as well (see the module doc)
        self._loss_scale = 1.0 if is_classifier(self) else 1.0 / self.n_outputs_
        if getattr(self, "loss", None) == "poisson":
            self._check_poisson_targets(y)
            self._loss_scale = 1.0

        if self.solver == "lbfgs":
            self._fit_lbfgs_native(X, y, sample_weight)
        else:
            self._fit_stochastic_native(X, y, sample_weight, incremental)

        if not np.isfinite(self._net.params).all():
            raise ValueError("Solver produced non-finite parameter weights. The input "
                             "data may contain large values and need to be preprocessed.")
        return self

    def _make_optimizer(self):
        if isinstance(self.solver, _optim.Optimizer):
            optimizer = copy.deepcopy(self.solver)
            optimizer.reset()
            return optimizer
        if self.solver == "sgd":
            return ScikitSGD(lr=self.learning_rate_init, momentum=self.momentum,
                             nesterov=bool(self.nesterovs_momentum) and self.momentum > 0)
        return ScikitAdam(lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2),
                          eps=self.epsilon)

    def _fit_stochastic_native(self, X, y, sample_weight, incremental):
        """scikit-learn's ``_fit_stochastic`` loop, with gdcore's native epochs."""
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            should_stratify = is_classifier(self) and self.n_outputs_ == 1
            stratify = y if should_stratify else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X, y, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify)
                sw_train = sw_val = None
            else:
                X_train, X_val, y_train, y_val, sw_train, sw_val = train_test_split(
                    X, y, sample_weight, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            if is_classifier(self):
                y_val = self._decode_labels(y_val)
        else:
            X_train, y_train, sw_train = X, y, sample_weight
            X_val = y_val = sw_val = None
        if not sp.issparse(X_train):
            X_train = np.ascontiguousarray(X_train)
        T_train = self._targets(y_train, self._net.dtype)

        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=np.int64)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                              "It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_idx = _shuffled(sample_idx, self._random_state)
                accumulated_loss = self._epoch(X_train, T_train, sw_train,
                                               sample_idx if self.shuffle else None,
                                               batch_size)
                self.n_iter_ += 1
                self.loss_ = accumulated_loss / X_train.shape[0]
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                self._update_no_improvement_count(early_stopping, X_val, y_val, sw_val)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    self._optimizer.set_lr(
                        float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t)
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = ("Validation score did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    else:
                        msg = ("Training loss did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    if self._trigger_stopping(msg):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached "
                                  "and the optimization hasn't converged yet."
                                  % self.max_iter, ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if early_stopping:
            for coef, best in zip(self.coefs_, self._best_coefs):
                coef[...] = best
            for intercept, best in zip(self.intercepts_, self._best_intercepts):
                intercept[...] = best

    def _trigger_stopping(self, msg):
        """scikit-learn's ``trigger_stopping``: 'adaptive' sgd divides the learning
        rate by 5 until it is <= 1e-6; everything else stops."""
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        lr = self._optimizer.lr
        if lr <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._optimizer.set_lr(lr / 5.0)
        if self.verbose:
            print(msg + " Setting learning rate to %f" % self._optimizer.lr)
        return False

    def _epoch(self, X, T, sample_weight, order, batch_size):
        """One pass over the mini-batches; the sum of (batch loss x batch size).

        Dense unweighted data runs the full batches in one native epoch call (their
        L2 coefficient alpha / batch_size is the same); the last, smaller batch and
        weighted or sparse batches are single native steps."""
        net, optimizer = self._net, self._optimizer
        n_samples = X.shape[0]
        n_full = n_samples // batch_size
        start, total = 0, 0.0
        if (n_full and sample_weight is None and not sp.issparse(X)
                and self._loss_scale == 1.0):
            order64 = order.astype(np.int64, copy=False) if order is not None else None
            kind, flags, state = optimizer.native_plan(net.params)
            ws = net._ensure_workspace(batch_size, epochs=order is not None)
            seeds = (net._rng.bit_generator.random_raw(n_full).astype(np.uint64)
                     if net._stochastic else np.zeros(n_full, dtype=np.uint64))
            total = ws.epoch(X, T, order64, batch_size, kind, flags,
                             optimizer.native_scalars(n_full), seeds, state, 0.0,
                             self.alpha / batch_size, 0.0,
                             _openmp.resolve(self.n_threads), n_full * batch_size)
            rows = order[:n_full * batch_size] if order is not None else slice(0, n_full * batch_size)
            total += self._loss_offset(T[rows], None) * (n_full * batch_size)
            optimizer.step_count += n_full
            start = n_full * batch_size
        # the remaining batches of gen_batches(n_samples, batch_size), from ``start``
        for begin in range(start, n_samples, batch_size):
            batch = slice(begin, min(begin + batch_size, n_samples))
            rows = order[batch] if order is not None else batch
            total += self._batch_step(X[rows], T[rows],
                                      sample_weight[rows] if sample_weight is not None
                                      else None) * (batch.stop - batch.start)
        return total

    def _batch_step(self, Xb, Tb, swb):
        net = self._net
        if sp.issparse(Xb):
            Xb = Xb.toarray()
        Xb = np.ascontiguousarray(Xb, dtype=net.dtype)
        Tb = np.ascontiguousarray(Tb)
        n = Xb.shape[0] if swb is None else float(np.sum(swb, dtype=np.float64))
        if n <= 0:
            return 0.0          # a batch without weight: no step (see the module doc)
        l2 = self.alpha / n
        penalty = self._penalty(l2) if self._loss_scale != 1.0 else 0.0
        seed = int(net._rng.bit_generator.random_raw()) if net._stochastic else 0
        loss = net._step(Xb, Tb, self._optimizer, True, 0.0, l2, 0.0, seed, self.n_threads,
                         sample_weight=None if swb is None else np.ascontiguousarray(swb))
        return (loss - penalty) * self._loss_scale + penalty + self._loss_offset(Tb, swb)

    def _check_poisson_targets(self, y):
        if self.n_outputs_ != 1:
            raise ValueError(f"loss='poisson' supports one output, got {self.n_outputs_}: "
                             f"gdcore's poisson loss averages over outputs, scikit-learn's "
                             f"sums them")
        if np.any(np.asarray(y) < 0):
            raise ValueError("loss='poisson' requires y >= 0")

    def _loss_offset(self, T, sw):
        """What scikit-learn's half Poisson deviance adds to gdcore's poisson loss
        exp(u) - t u: the mean (weighted by ``sw``) of xlogy(t, t) - t; 0 otherwise."""
        if getattr(self, "loss", None) != "poisson" or len(T) == 0:
            return 0.0
        T64 = np.asarray(T, dtype=np.float64).reshape(len(T), -1)
        rows = np.sum(scipy.special.xlogy(T64, T64) - T64, axis=1)
        return float(np.average(rows, weights=sw))

    def _penalty(self, l2):
        return 0.5 * l2 * sum(float(np.sum(np.square(W, dtype=np.float64)))
                              for W in self.coefs_)

    # -- L-BFGS -----------------------------------------------------------------

    def _fit_lbfgs_native(self, X, y, sample_weight):
        net = self._net
        T = self._targets(y, net.dtype)
        n_samples = X.shape[0]
        sw_sum = n_samples if sample_weight is None else float(np.sum(sample_weight,
                                                                     dtype=np.float64))
        if sw_sum <= 0:
            raise ValueError("sample_weight must have a positive sum")
        l2 = self.alpha / sw_sum
        weight_mask = np.zeros(net.n_params, dtype=bool)
        for layer in net.layers:
            weight_mask[_span(net.params, layer.W)] = True
        block = n_samples if not sp.issparse(X) else SPARSE_BLOCK_ROWS
        offset = self._loss_offset(T, sample_weight)

        def loss_grad(x):
            net.params[...] = x
            loss, grad = 0.0, np.zeros(net.n_params, dtype=np.float64)
            for start in range(0, n_samples, block):
                rows = slice(start, start + block)
                Xb = X[rows]
                if sp.issparse(Xb):
                    Xb = Xb.toarray()
                Xb = np.ascontiguousarray(Xb, dtype=net.dtype)
                swb = None if sample_weight is None else np.ascontiguousarray(
                    sample_weight[rows])
                share = (Xb.shape[0] if swb is None
                         else float(np.sum(swb, dtype=np.float64))) / sw_sum
                if share <= 0:
                    continue
                value = net._step(Xb, T[rows], None, False, 0.0, 0.0, 0.0, 0,
                                  self.n_threads, sample_weight=swb)
                loss += share * value
                grad += share * net.grads
            params = net.params.astype(np.float64)
            weights = params[weight_mask]
            loss = (loss * self._loss_scale + 0.5 * l2 * float(np.dot(weights, weights))
                    + offset)
            grad[weight_mask] += l2 * weights
            return loss, grad

        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1
        result = scipy.optimize.minimize(
            loss_grad, net.params.astype(np.float64), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                     **_get_additional_lbfgs_options_dict("iprint", iprint)})
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = result.fun
        net.params[...] = result.x

    # -- prediction -------------------------------------------------------------

    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        net = self._net
        if sp.issparse(X):
            X = X.tocsr()
            out = np.empty((X.shape[0], net.layer_sizes[-1]), dtype=net.dtype)
            for start in range(0, X.shape[0], SPARSE_BLOCK_ROWS):
                rows = slice(start, start + SPARSE_BLOCK_ROWS)
                out[rows] = net.forward(X[rows].toarray(), n_threads=self.n_threads)
        else:
            out = net.forward(X, n_threads=self.n_threads)
        if self.out_activation_ == "exp":
            np.exp(out, out=out)      # the network outputs the log rate
        return out


def _shuffled(index, random_state):
    """``sklearn.utils.shuffle(index, random_state=random_state)`` for one 1-D array,
    without its input checks: the same draw (``random_state.shuffle`` of an arange, as
    ``sklearn.utils.resample`` makes it), so the same order."""
    perm = np.arange(index.shape[0])
    random_state.shuffle(perm)
    return index[perm]


def _span(buffer, view):
    """The slice of the 1-D ``buffer`` that the contiguous ``view`` covers."""
    start = (view.__array_interface__["data"][0]
             - buffer.__array_interface__["data"][0]) // buffer.itemsize
    return slice(start, start + view.size)


class MLPClassifier(_GDCoreMLP, _SkMLPClassifier):
    """scikit-learn's ``MLPClassifier`` trained by gdcore's native kernels.

    Same parameters, defaults, attributes and methods as
    ``sklearn.neural_network.MLPClassifier`` (see the module docstring for how its
    solvers map onto gdcore), plus ``dtype``, ``dropout`` and ``n_threads``, and a
    ``gdcore.optim`` optimizer instance accepted as ``solver``.
    """

    _parameter_constraints = {**_SkMLPClassifier._parameter_constraints,
                              **_extra_constraints()}

    def __init__(self, hidden_layer_sizes: Union[int, Sequence[int]] = (100,),
                 activation: str = "relu", *, solver: Union[str, _optim.Optimizer] = "adam", alpha: float = 0.0001,
                 batch_size: Union[int, str] = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5,
                 max_iter: int = 200, shuffle: bool = True,
                 random_state: Union[int, np.random.RandomState, None] = None,
                 tol: float = 1e-4, verbose: bool = False, warm_start: bool = False,
                 momentum: float = 0.9, nesterovs_momentum: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 n_iter_no_change: int = 10, max_fun: int = 15000,
                 dtype: Union[str, type, np.dtype, None] = None,
                 dropout: Union[float, Sequence[float], None] = None,
                 n_threads: Optional[int] = None) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun)
        self.dtype = dtype
        self.dropout = dropout
        self.n_threads = n_threads


class MLPRegressor(_GDCoreMLP, _SkMLPRegressor):
    """scikit-learn's ``MLPRegressor`` trained by gdcore's native kernels.

    Same parameters, defaults, attributes and methods as
    ``sklearn.neural_network.MLPRegressor`` (see the module docstring), plus ``dtype``,
    ``dropout`` and ``n_threads``, and a ``gdcore.optim`` optimizer instance accepted
    as ``solver``.  ``loss='poisson'`` is scikit-learn's half Poisson deviance with
    its exp output: the gdcore network outputs the log rate (gdcore's 'poisson' loss,
    whose delta exp(u) - t is scikit-learn's) and ``predict`` returns exp of it; it
    takes one output (gdcore's poisson loss averages over outputs where
    scikit-learn's sums them) and y >= 0.
    """

    _parameter_constraints = {**_SkMLPRegressor._parameter_constraints,
                              **_extra_constraints(),
                              "loss": [StrOptions({"squared_error", "poisson"})]}

    def __init__(self, loss: str = "squared_error",
                 hidden_layer_sizes: Union[int, Sequence[int]] = (100,),
                 activation: str = "relu", *, solver: Union[str, _optim.Optimizer] = "adam", alpha: float = 0.0001,
                 batch_size: Union[int, str] = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5,
                 max_iter: int = 200, shuffle: bool = True,
                 random_state: Union[int, np.random.RandomState, None] = None,
                 tol: float = 1e-4, verbose: bool = False, warm_start: bool = False,
                 momentum: float = 0.9, nesterovs_momentum: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 n_iter_no_change: int = 10, max_fun: int = 15000,
                 dtype: Union[str, type, np.dtype, None] = None,
                 dropout: Union[float, Sequence[float], None] = None,
                 n_threads: Optional[int] = None) -> None:
        super().__init__(
            loss=loss, hidden_layer_sizes=hidden_layer_sizes, activation=activation,
            solver=solver, alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun)
        self.dtype = dtype
        self.dropout = dropout
        self.n_threads = n_threads
