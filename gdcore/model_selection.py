"""Data splits, k-fold cross-validation and grid search over training settings.

    (Xtr, Ttr), (Xva, Tva), (Xte, Tte) = train_val_test_split(X, T, seed=0, stratify=True)
    scores = cross_validate(lambda: gd.MLP([4, 16, 3], seed=0), X, T, k=5, epochs=20)
    result = grid_search({"lr": [1e-3, 1e-2], "hidden": [(16,), (32, 16)]}, X, T)
    print(result)                       # the combinations ranked by validation loss
    net = result.best_net

Models are chosen on validation data only; keep a test set aside for the final score.
"""
import itertools
import math
import numbers
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _parallel
from . import _validation as v
from . import optim as _optim
from . import schedules as _schedules
from .network import HIDDEN_ACTIVATIONS, MLP

__all__ = ["train_val_test_split", "kfold_indices", "cross_validate", "grid_search",
           "GridSearchResult"]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


OPTIMIZERS = {"sgd": _optim.SGD, "adam": _optim.Adam, "adamw": _optim.AdamW,
              "rmsprop": _optim.RMSprop, "adagrad": _optim.Adagrad,
              "adadelta": _optim.Adadelta}
_MOMENTUM_OPTIMIZERS = (_optim.SGD, _optim.RMSprop)
GRID_NAMES = ("lr", "l1", "l2", "hidden", "batch_size", "epochs", "activation", "dropout",
              "optimizer", "momentum")
_ARCHITECTURE = ("hidden", "activation", "dropout")
_FIT_NAMES = ("l1", "l2", "batch_size")
DEFAULT_HIDDEN = (100,)


# ---- splits ---------------------------------------------------------------------

def _as_array(a, name):
    if a is None:
        raise TypeError(f"{name} must be an array, got None")
    a = a if isinstance(a, np.ndarray) else np.asarray(a)
    if a.ndim == 0:
        raise ValueError(f"{name} must have a first (samples) axis, got a 0-D array")
    return a


def _check_pair(X: Any, T: Any, name_X: str = "X", name_T: str = "T"
                ) -> Tuple[np.ndarray, np.ndarray]:
    X, T = _as_array(X, name_X), _as_array(T, name_T)
    if X.shape[0] != T.shape[0]:
        raise ValueError(f"{name_X} has {X.shape[0]} samples but {name_T} has {T.shape[0]}")
    return X, T


def _rng(seed):
    if seed is not None:
        seed = v.check_int(seed, "seed", low=0)
    return np.random.default_rng(seed)


def _count(size, name, n_samples):
    """Samples for ``size``: an int count, or a fraction in [0, 1) rounded to the
    nearest count (halves up) and at least 1 when the fraction is positive."""
    if isinstance(size, (bool, np.bool_)):
        raise TypeError(f"{name} must be a fraction in [0, 1) or a count, got {size!r}")
    if isinstance(size, numbers.Integral):
        count = v.check_int(size, name, low=0)
        if count > n_samples:
            raise ValueError(f"{name}={count} is more than the {n_samples} samples")
        return count
    fraction = v.check_float(size, name, 0.0, 1.0, high_open=True)
    if fraction == 0.0:
        return 0
    return max(1, math.floor(fraction * n_samples + 0.5))


def _largest_remainder(counts, total, caps):
    """Split ``total`` over classes in proportion to ``counts`` (Hamilton's method:
    floors first, the rest one by one by largest remainder, ties to the lower class),
    never giving a class more than ``caps``."""
    quotas = counts * (total / counts.sum())
    alloc = np.minimum(np.floor(quotas).astype(np.int64), caps)
    order = sorted(range(len(counts)), key=lambda k: (-(quotas[k] - alloc[k]), k))
    missing = total - int(alloc.sum())
    while missing > 0:
        for k in order:
            if missing and alloc[k] < caps[k]:
                alloc[k] += 1
                missing -= 1
    return alloc


def _split_indices(n_samples, n_val, n_test, shuffle, rng, labels=None):
    """(train, val, test) index arrays.  Unshuffled, the order is train, val, test;
    with ``labels`` each class is split so on its own (proportional counts)."""
    if labels is None:
        order = rng.permutation(n_samples) if shuffle else np.arange(n_samples)
        n_train = n_samples - n_val - n_test
        parts = [order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]]
    else:
        classes, inverse = np.unique(labels, return_inverse=True)
        counts = np.bincount(inverse, minlength=len(classes)).astype(np.int64)
        val_k = _largest_remainder(counts, n_val, counts)
        test_k = _largest_remainder(counts, n_test, counts - val_k)
        parts = [[], [], []]
        for k in range(len(classes)):
            members = np.flatnonzero(inverse == k)
            if shuffle:
                members = rng.permutation(members)
            n_train_k = counts[k] - val_k[k] - test_k[k]
            parts[0].append(members[:n_train_k])
            parts[1].append(members[n_train_k:n_train_k + val_k[k]])
            parts[2].append(members[n_train_k + val_k[k]:])
        parts = [np.concatenate(p) for p in parts]
        parts = [rng.permutation(p) if shuffle else np.sort(p) for p in parts]
    return [np.asarray(p, dtype=np.int64) for p in parts]


def _check_labels(T, name="T"):
    if T.ndim != 1 or T.dtype.kind not in "iu":
        raise ValueError(f"stratify=True needs {name} as 1-D integer class labels, got a "
                         f"{T.ndim}-D array of dtype {T.dtype}")
    return T


def train_val_test_split(X: ArrayLike, T: ArrayLike, val_size: Union[float, int] = 0.15,
                         test_size: Union[float, int] = 0.15, shuffle: bool = True,
                         seed: Optional[int] = None, stratify: bool = False
                         ) -> Tuple[Tuple[np.ndarray, np.ndarray], ...]:
    """Split (X, T) into training, validation and test parts.

    Parameters
    ----------
    X, T : array_like
        Samples along the first axis; the same number in both.
    val_size, test_size : float in [0, 1) or int >= 0
        A fraction of the samples (rounded to the nearest count, halves up, and at
        least one sample when positive; the two fractions must sum to less than 1) or
        a count.  The training part gets the rest and must not be empty.
    shuffle : bool
        Shuffle before splitting.  Without shuffling the parts are consecutive:
        training first, then validation, then test (per class when stratified).
    seed : int >= 0 or None
        Seeds the shuffling: the same seed gives the same split.
    stratify : bool
        Keep the class proportions of ``T`` (1-D integer labels) in every part.  The
        validation and then the test count are split over the classes in proportion
        to their sizes by largest-remainder rounding, so each class's share of them is
        its exact share rounded down or up (unless a class has a single sample); the
        training part takes the rest of every class.

    Returns
    -------
    ((X_train, T_train), (X_val, T_val), (X_test, T_test))
        Copies, in shuffled order (shuffle=True) or in the original order.
    """
    X, T = _check_pair(X, T)
    n_samples = X.shape[0]
    if n_samples == 0:
        raise ValueError("X has no samples to split")
    n_val = _count(val_size, "val_size", n_samples)
    n_test = _count(test_size, "test_size", n_samples)
    if (not isinstance(val_size, numbers.Integral) and not isinstance(test_size, numbers.Integral)
            and float(val_size) + float(test_size) >= 1.0):
        raise ValueError(f"val_size + test_size must be < 1, got {val_size} + {test_size} "
                         f"= {float(val_size) + float(test_size)}")
    if n_val + n_test >= n_samples:
        raise ValueError(f"val_size={val_size!r} and test_size={test_size!r} take {n_val} + "
                         f"{n_test} of the {n_samples} samples, leaving none for training")
    labels = _check_labels(T) if stratify else None
    train, val, test = _split_indices(n_samples, n_val, n_test, bool(shuffle), _rng(seed),
                                      labels)
    return (X[train], T[train]), (X[val], T[val]), (X[test], T[test])


def kfold_indices(n_samples: int, k: int = 5, shuffle: bool = True, seed: Optional[int] = None
                  ) -> List[Tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """Index arrays of k-fold cross-validation.

    Parameters
    ----------
    n_samples : int >= k
    k : int >= 2
        Number of folds.  The first ``n_samples % k`` folds have one sample more.
    shuffle : bool
        Assign shuffled samples to the folds (otherwise consecutive blocks).
    seed : int >= 0 or None

    Returns
    -------
    list of (train_idx, val_idx)
        ``k`` pairs of sorted int64 arrays; every sample is in exactly one ``val_idx``
        and its fold's ``train_idx`` holds all the others.
    """
    n_samples = v.check_int(n_samples, "n_samples", low=1)
    k = v.check_int(k, "k", low=2)
    if k > n_samples:
        raise ValueError(f"k={k} folds need at least {k} samples, got n_samples={n_samples}")
    order = _rng(seed).permutation(n_samples) if shuffle else np.arange(n_samples)
    sizes = np.full(k, n_samples // k)
    sizes[:n_samples % k] += 1
    folds = []
    start = 0
    for size in sizes:
        val = np.sort(order[start:start + size]).astype(np.int64)
        in_train = np.ones(n_samples, dtype=bool)
        in_train[val] = False
        folds.append((np.flatnonzero(in_train).astype(np.int64), val))
        start += size
    return folds


# ---- fresh training objects per model ---------------------------------------------

def _fresh_optimizer(optimizer, **overrides):
    """A new optimizer of ``optimizer``'s class and hyperparameters, without state."""
    hyper = dict(optimizer.hyperparameters, **overrides)
    return type(optimizer)(backend=optimizer.backend, **hyper)


def _fresh_fit_kwargs(fit_kwargs):
    """``fit_kwargs`` with a new optimizer and schedule, so that models trained one
    after the other share no training state (fit keeps both on the network)."""
    kwargs = dict(fit_kwargs)
    if isinstance(kwargs.get("optimizer"), _optim.Optimizer):
        kwargs["optimizer"] = _fresh_optimizer(kwargs["optimizer"])
    if isinstance(kwargs.get("lr_schedule"), _schedules.Schedule):
        kwargs["lr_schedule"] = kwargs["lr_schedule"]._fresh_copy()
    return kwargs


def _check_net(net, what):
    if not isinstance(net, MLP):
        raise TypeError(f"{what} must return a gdcore.MLP, got {type(net).__name__}")
    return net


def _mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std())


# ---- cross-validation -------------------------------------------------------------

def cross_validate(build: Callable[[], MLP], X: ArrayLike, T: ArrayLike, k: int = 5,
                   seed: Optional[int] = 0, n_jobs: Optional[int] = 1,
                   worker_threads: Optional[int] = None, **fit_kwargs: Any) -> Dict[str, Any]:
    """k-fold cross-validation of a network.

    For each fold, ``build()`` makes a fresh network, ``net.fit(X_train, T_train,
    progress=False, **fit_kwargs)`` trains it on the other folds and
    ``net.evaluate(X_val, T_val)`` scores it on the held-out fold.

    Parameters
    ----------
    build : callable
        ``build() -> gdcore.MLP``, a new untrained network at each call.
    X, T : ndarray
        Samples along the first axis.
    k : int >= 2
        Number of folds (``kfold_indices`` with shuffling).
    seed : int >= 0 or None
        Seeds the fold assignment.
    n_jobs : int, default 1
        Folds trained at once on joblib (-1: all cores; any joblib backend, e.g.
        Dask, through ``joblib.parallel_config``).  1 runs them here, one after the
        other, without joblib.  The scores are the same bits either way when each
        fit runs on as many threads as a serial one (``worker_threads``); with fewer,
        GEMM rounding may differ in the last bits.
    worker_threads : int, optional
        Threads per fold with ``n_jobs != 1``; by default the cores divided among the
        workers (see ``gdcore._parallel``).
    **fit_kwargs
        Passed to ``fit`` (``progress`` may override the default False).  An
        ``optimizer`` or ``lr_schedule`` is copied fresh (same settings, no state)
        for every fold, since ``fit`` keeps and advances them.

    Returns
    -------
    dict
        'val_loss': the per-fold losses, 'val_loss_mean', 'val_loss_std' (population
        standard deviation, ddof=0, as scikit-learn reports); for classifiers also
        'val_accuracy', 'val_accuracy_mean', 'val_accuracy_std'.
    """
    if not callable(build):
        raise TypeError(f"build must be a callable returning a gdcore.MLP, got "
                        f"{type(build).__name__}")
    X, T = _check_pair(X, T)
    n_jobs = _parallel.check_n_jobs(n_jobs)
    folds = kfold_indices(X.shape[0], k, shuffle=True, seed=seed)
    if n_jobs == 1:
        fold_scores = [_fit_fold(build, X[train], T[train], X[val], T[val],
                                 _fresh_fit_kwargs(fit_kwargs)) for train, val in folds]
    else:
        tasks = [(build, X[train], T[train], X[val], T[val],
                  _parallel.portable(_fresh_fit_kwargs(fit_kwargs))) for train, val in folds]
        fold_scores = _parallel.run(_fit_fold, tasks, n_jobs, worker_threads)
    losses, accuracies = [], []
    for scores in fold_scores:
        losses.append(float(scores["loss"]))
        if "accuracy" in scores:
            accuracies.append(float(scores["accuracy"]))
    result = {"val_loss": losses}
    result["val_loss_mean"], result["val_loss_std"] = _mean_std(losses)
    if accuracies:
        result["val_accuracy"] = accuracies
        result["val_accuracy_mean"], result["val_accuracy_std"] = _mean_std(accuracies)
    return result


def _fit_fold(build, X_train, T_train, X_val, T_val, fit_kwargs):
    """Train ``build()`` on one fold; its validation scores (plain data)."""
    net = _check_net(build(), "build()")
    net.fit(X_train, T_train, **{"progress": False, **_parallel.local(fit_kwargs)})
    return net.evaluate(X_val, T_val)


# ---- grid search ----------------------------------------------------------------

def _grid_list(param_grid):
    grids = [param_grid] if isinstance(param_grid, dict) else param_grid
    if not isinstance(grids, list) or not grids or not all(isinstance(g, dict) for g in grids):
        raise TypeError(f"param_grid must be a dict of name -> list of values, or a "
                        f"non-empty list of such dicts, got {param_grid!r}")
    return grids


def _check_grid_value(name, value, build):
    where = f"param_grid[{name!r}] value {value!r}"
    if name == "lr":
        return v.check_float(value, where, 0.0, low_open=True)
    if name in ("l1", "l2", "momentum"):
        return v.check_float(value, where, 0.0)
    if name == "batch_size":
        return None if value is None else v.check_int(value, where, low=1)
    if name == "epochs":
        return v.check_int(value, where, low=1)
    if name == "optimizer":
        return v.check_name(value, "param_grid['optimizer'] value", tuple(OPTIMIZERS))
    if name == "hidden":
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"{where} must be a tuple of hidden layer sizes, e.g. (64, 32)")
        return tuple(v.check_int(n, "param_grid['hidden'] layer size", low=1) for n in value)
    if name == "activation":
        if build is None and isinstance(value, str):
            v.check_name(value, "param_grid['activation'] value", HIDDEN_ACTIVATIONS)
        return value
    if name == "dropout":
        if isinstance(value, numbers.Real):
            return v.check_float(value, where, 0.0, 1.0, high_open=True)
        return tuple(v.check_float(p, "param_grid['dropout'] rate", 0.0, 1.0,
                                   high_open=True) for p in value)
    raise AssertionError(name)


def _combinations(param_grid, build):
    """The parameter dicts of the grid(s), in grid order, values checked."""
    combinations = []
    for grid in _grid_list(param_grid):
        names = list(grid)
        unknown = [n for n in names if n not in GRID_NAMES]
        if unknown:
            raise ValueError(f"param_grid has unknown names {unknown}; supported: "
                             f"{', '.join(GRID_NAMES)}")
        values = []
        for name in names:
            options = grid[name]
            if isinstance(options, np.ndarray) and options.ndim == 1:
                options = options.tolist()
            if not isinstance(options, (list, range)):
                raise TypeError(f"param_grid[{name!r}] must be a list of values to try, got "
                                f"{type(options).__name__} {options!r}")
            if len(options) == 0:
                raise ValueError(f"param_grid[{name!r}] is an empty list")
            values.append([_check_grid_value(name, x, build) for x in options])
        combinations.extend(dict(zip(names, combo)) for combo in itertools.product(*values))
    return combinations


def _make_optimizer(params, template):
    """The optimizer of one combination: None (fit's default) when the grid sets no
    optimizer parameter, else a new one of the named class (or the template's, or
    Adam as ``fit`` defaults to) with the grid's lr and momentum."""
    if not {"optimizer", "lr", "momentum"} & set(params):
        return None if template is None else _fresh_optimizer(template)
    if "optimizer" in params:
        cls, hyper, backend = OPTIMIZERS[params["optimizer"]], {}, "native"
    elif template is not None:
        cls, hyper, backend = type(template), template.hyperparameters, template.backend
    else:
        cls, hyper, backend = _optim.Adam, {}, "native"
    if "momentum" in params and not issubclass(cls, _MOMENTUM_OPTIMIZERS):
        raise ValueError(f"momentum applies to the 'sgd' and 'rmsprop' optimizers, not "
                         f"{cls.__name__}; put the momentum values in a separate grid "
                         f"(param_grid may be a list of dicts)")
    for name in ("lr", "momentum"):
        if name in params:
            hyper[name] = params[name]
    return cls(backend=backend, **hyper)


def _infer_task(X, T, T_val):
    """(loss, n_out, T, T_val) of the default network for these targets."""
    if T.ndim == 1 and T.dtype.kind in "iu":
        low = min(T.min(), T_val.min()) if T_val.size else T.min()
        if low < 0:
            raise ValueError(f"class labels must be >= 0, got {low}")
        high = max(T.max(), T_val.max()) if T_val.size else T.max()
        return "cross_entropy", max(int(high) + 1, 2), T, T_val
    if T.dtype.kind == "f" and T.ndim in (1, 2):
        n_out = 1 if T.ndim == 1 else T.shape[1]
        return "squared_error", n_out, T.astype(X.dtype, copy=False), \
            T_val.astype(X.dtype, copy=False)
    raise TypeError(f"T must be 1-D integer class labels or float regression targets "
                    f"(1-D or 2-D) for the default network, got a {T.ndim}-D array of "
                    f"dtype {T.dtype}; pass build= for other targets")


def _sort_key(row):
    loss = row["val_loss"]
    return (True, 0.0) if math.isnan(loss) else (False, loss)


class GridSearchResult:
    """The outcome of ``grid_search``.

    Attributes
    ----------
    table : list of dict
        One row per combination, sorted by validation loss (ascending, NaN last; ties
        in grid order): the combination's parameters, 'val_loss', 'val_accuracy'
        (classifiers), 'train_loss' and 'seconds' (training time).
    best_params : dict
        The parameters of the first row.
    best_net : gdcore.MLP
        The network trained with ``best_params``.
    param_names : list of str
        The grid's parameter names, in grid order.
    """

    def __init__(self, table: List[Dict[str, Any]], best_params: Dict[str, Any],
                 best_net: MLP, param_names: List[str]) -> None:
        self.table = table
        self.best_params = best_params
        self.best_net = best_net
        self.param_names = param_names

    def format_table(self) -> str:
        """The table as aligned text, best combination first; '-' marks a parameter
        that the combination's grid does not set (the default applies)."""
        metrics = [m for m in ("val_loss", "val_accuracy", "train_loss", "seconds")
                   if any(m in row for row in self.table)]
        columns = ["rank"] + self.param_names + metrics
        cells = [[str(i + 1)] + [_format_cell(row.get(name, "-"), name)
                                 for name in self.param_names + metrics]
                 for i, row in enumerate(self.table)]
        widths = [max(len(c), *(len(r[j]) for r in cells)) for j, c in enumerate(columns)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths)),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
        return "\n".join(lines)

    def __str__(self):
        return self.format_table()

    def __repr__(self):
        return (f"GridSearchResult({len(self.table)} combinations, best_params="
                f"{self.best_params!r}, val_loss={self.table[0]['val_loss']:.4g})")


def _format_cell(value, name):
    if name == "seconds":
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(str, value)) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def _fit_combination(make, X_train, T_train, X_val, T_val, kwargs):
    """Train ``make()`` with one combination's fit arguments: (scores, network)."""
    net = _check_net(make(), "build(**params)")
    started = time.perf_counter()
    net.fit(X_train, T_train, validation_data=(X_val, T_val), **_parallel.local(kwargs))
    seconds = time.perf_counter() - started
    val_scores = net.evaluate(X_val, T_val)
    scores = {"val_loss": float(val_scores["loss"])}
    if "accuracy" in val_scores:
        scores["val_accuracy"] = float(val_scores["accuracy"])
    scores["train_loss"] = float(net.evaluate(X_train, T_train)["loss"])
    scores["seconds"] = seconds
    return scores, net


def _fit_combination_remote(*args):
    """``_fit_combination`` in a joblib worker: the network goes back as plain data."""
    scores, net = _fit_combination(*args)
    return scores, _parallel.net_state(net)


def grid_search(param_grid: Union[Mapping[str, Sequence[Any]], Sequence[Mapping[str, Sequence[Any]]]],
                X: ArrayLike, T: ArrayLike,
                validation_data: Optional[Tuple[ArrayLike, ArrayLike]] = None,
                validation_split: float = 0.2,
                build: Optional[Callable[..., MLP]] = None, seed: Optional[int] = 0,
                epochs: int = 10, n_jobs: Optional[int] = 1,
                worker_threads: Optional[int] = None, **fit_kwargs: Any) -> GridSearchResult:
    """Train one network per combination of settings; rank them on validation data.

    Parameters
    ----------
    param_grid : dict or list of dict
        Maps names to lists of values to try; every combination is trained (a list of
        dicts: the union of their combinations).  Names:

        - 'lr', 'optimizer' (one of 'sgd', 'adam', 'adamw', 'rmsprop', 'adagrad',
          'adadelta'), 'momentum' ('sgd' and 'rmsprop' only): the optimizer, new for
          each combination with the defaults of its class otherwise.  Without
          'optimizer' the class is that of ``optimizer=`` in ``fit_kwargs``, else
          Adam (``fit``'s default);
        - 'l1', 'l2', 'batch_size', 'epochs': passed to ``fit`` ('epochs' overrides
          the ``epochs`` argument);
        - 'hidden' (tuple of hidden layer sizes; an int is one layer), 'activation',
          'dropout': the architecture.
    X, T : ndarray
        Training data.  Without ``build``, X must be float32 or float64 (the network's
        dtype), and T 1-D integer class labels (a softmax classifier with
        ``max label + 1`` outputs and cross-entropy) or float targets (a linear output
        with squared error, ``T.shape[1]`` outputs or 1 for 1-D T; cast to X's dtype).
    validation_data : (X_val, T_val), optional
        Data the combinations are ranked on.  By default a ``validation_split`` of
        (X, T) is held out: the validation part of ``train_val_test_split(X, T,
        val_size=validation_split, test_size=0, seed=seed, stratify=<T is 1-D integer
        labels>)``.
    validation_split : float in (0, 1)
        Used without ``validation_data``.
    build : callable, optional
        ``build(**architecture) -> gdcore.MLP``, called with the grid's 'hidden',
        'activation' and 'dropout' values (those in the grid only).  By default
        ``gd.MLP([n_in, *hidden, n_out], activation, dtype=X.dtype, seed=seed,
        dropout=dropout)`` with hidden=(100,) and activation='relu' unless in the grid.
    seed : int >= 0
        Seeds the default network (every combination starts from the same
        initialisation for the same architecture) and the validation split.
    epochs : int >= 1
        Epochs per combination unless the grid has 'epochs'.
    n_jobs : int, default 1
        Combinations trained at once on joblib (-1: all cores; any joblib backend,
        e.g. a Dask cluster through ``joblib.parallel_config(backend="dask")``).  1
        trains them here, one after the other, without joblib.  The workers return
        scores and the trained state as plain data; the parent rebuilds the best
        network from it (with ``build`` or the default constructor), so ``build``
        must be picklable (a module-level function, or anything cloudpickle takes
        for joblib's default backend).  The table and the best network are the
        same bits as with ``n_jobs=1`` (only 'seconds' differ) when each fit runs on
        as many threads as a serial one; with fewer (the default share), GEMM
        rounding may differ in the last bits.
    worker_threads : int, optional
        Threads per combination with ``n_jobs != 1``; by default the cores divided
        among the workers, so the processes do not oversubscribe the machine.
    **fit_kwargs
        Passed to every ``fit`` call (an ``optimizer`` or ``lr_schedule`` is copied
        fresh for each combination); names in the grid may not also be given here.
        Validation data are passed to ``fit`` too, so ``early_stopping`` and a
        'val_loss' plateau schedule watch them.

    Returns
    -------
    GridSearchResult
        Rows ranked by 'val_loss' from ``net.evaluate`` on the validation data after
        training; 'train_loss' is ``net.evaluate`` on the training part (the data loss,
        without dropout or penalties).
    """
    if build is not None and not callable(build):
        raise TypeError(f"build must be a callable returning a gdcore.MLP, got "
                        f"{type(build).__name__}")
    epochs = v.check_int(epochs, "epochs", low=1)
    seed = v.check_int(seed, "seed", low=0)
    combinations = _combinations(param_grid, build)
    param_names = list(dict.fromkeys(name for c in combinations for name in c))
    clash = sorted(set(param_names) & set(fit_kwargs))
    if clash:
        raise ValueError(f"{clash} given both in param_grid and as keyword arguments")
    template = fit_kwargs.pop("optimizer", None)
    if template is not None:
        if not isinstance(template, _optim.Optimizer):
            raise TypeError(f"optimizer must be a gdcore.optim optimizer, got "
                            f"{type(template).__name__}")
        if "optimizer" in param_names:
            raise ValueError("optimizer given both in param_grid and as keyword argument")
    optimizers = [_make_optimizer(c, template) for c in combinations]

    X, T = _check_pair(X, T)
    if validation_data is not None:
        try:
            X_val, T_val = validation_data
        except (TypeError, ValueError):
            raise TypeError("validation_data must be a pair (X_val, T_val)") from None
        X_val, T_val = _check_pair(X_val, T_val, "validation_data[0]", "validation_data[1]")
        X_train, T_train = X, T
    else:
        fraction = v.check_float(validation_split, "validation_split", 0.0, 1.0,
                                 low_open=True, high_open=True)
        n_val = _count(fraction, "validation_split", X.shape[0])
        if n_val >= X.shape[0]:
            raise ValueError(f"validation_split={fraction} of {X.shape[0]} samples leaves "
                             f"none for training")
        labels = T if T.ndim == 1 and T.dtype.kind in "iu" else None
        train, val, _ = _split_indices(X.shape[0], n_val, 0, True, _rng(seed), labels)
        X_train, T_train, X_val, T_val = X[train], T[train], X[val], T[val]
    if build is None:
        if X.dtype not in v.FLOAT_DTYPES or X.ndim != 2:
            raise TypeError(f"X must be a 2-D float32 or float64 array for the default "
                            f"network (its dtype is X's), got a {X.ndim}-D array of dtype "
                            f"{X.dtype}")
        loss, n_out, T_train, T_val = _infer_task(X, T_train, T_val)

    n_jobs = _parallel.check_n_jobs(n_jobs)
    makers, all_kwargs = [], []
    for params, optimizer in zip(combinations, optimizers):
        architecture = {k: params[k] for k in _ARCHITECTURE if k in params}
        if build is None:
            makers.append(_parallel.partial(
                MLP, [X.shape[1], *architecture.get("hidden", DEFAULT_HIDDEN), n_out],
                activation=architecture.get("activation", "relu"), loss=loss,
                dtype=X.dtype, seed=seed, dropout=architecture.get("dropout")))
        else:
            makers.append(_parallel.partial(build, **architecture))
        kwargs = {"progress": False, **_fresh_fit_kwargs(fit_kwargs),
                  "epochs": params.get("epochs", epochs)}
        kwargs.update({k: params[k] for k in _FIT_NAMES if k in params})
        if optimizer is not None:
            kwargs["optimizer"] = optimizer
        all_kwargs.append(kwargs)
    if n_jobs == 1:
        outcomes = [_fit_combination(make, X_train, T_train, X_val, T_val, kwargs)
                    for make, kwargs in zip(makers, all_kwargs)]
    else:
        tasks = [(make, X_train, T_train, X_val, T_val, _parallel.portable(kwargs))
                 for make, kwargs in zip(makers, all_kwargs)]
        outcomes = _parallel.run(_fit_combination_remote, tasks, n_jobs, worker_threads)

    table, best_row = [], None
    best: Any = None   # (make, trained) of the best row so far
    for params, make, (scores, trained) in zip(combinations, makers, outcomes):
        row = dict(params, **scores)
        table.append(row)
        if best_row is None or _sort_key(row) < _sort_key(best_row):
            best_row, best = row, (make, trained)
    table.sort(key=_sort_key)
    make, trained = best
    best_net = (trained if n_jobs == 1 else
                _parallel.restore_net(_check_net(make(), "build(**params)"), trained))
    best_params = {k: val for k, val in table[0].items() if k in param_names}
    return GridSearchResult(table, best_params, best_net, param_names)
