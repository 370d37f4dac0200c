"""``MLP.fit`` and ``MLP.partial_fit``: gradient descent over a data set.

batch_size=None is full-batch gradient descent (one step per epoch over all samples),
1 is stochastic gradient descent, K is mini-batch descent.  The samples are reshuffled
every epoch by the network's seeded generator.  With the native backend one epoch is
one native call: the mini-batches are gathered and stepped without returning to Python
(unless a ``step_callback`` asks to see every step).

Training state carries over between calls, as in Keras: the optimizer and its state,
the random generator (shuffling, dropout, input noise), the epoch counter and the
learning-rate schedule all live on the network, so ``fit(X, T, epochs=5)`` twice equals
``fit(X, T, epochs=10)`` once, and a checkpoint (``net.save``) resumes exactly.
"""
import copy
import math
import sys
import time
import warnings
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple, Union)

import numpy as np

from . import _openmp
from . import _validation as v
from . import optim as _optim
from . import schedules as _schedules
from ._typing import ArrayLike, Threads
from .callbacks import Callback, EarlyStopping

if TYPE_CHECKING:
    from .network import MLP

__all__ = ["History", "EarlyStopping", "METRICS", "fit", "partial_fit"]

#: the names fit's ``metrics=`` accepts
METRICS = ("accuracy", "mae", "r2")


class History:
    """Per-epoch records of a training run.

    Attributes are lists with one entry per epoch: ``epoch`` (the network's global
    epoch index), ``loss`` (mean training loss over the epoch's batches, in training
    mode: with dropout, noise and penalties), ``val_loss`` and ``val_accuracy``
    (None without validation data; accuracy only for classifiers), ``lr`` (the
    learning rate used; with a per-step schedule, that of the epoch's first step)
    and ``seconds`` (wall time of the epoch, validation and metrics included).  The
    ``metrics=`` of fit add their keys ('accuracy', 'mae', 'r2', and ``val_`` forms
    with validation data); a key first recorded in a later fit call holds None for
    the earlier epochs.  ``stopped_early`` and ``best_epoch`` describe early stopping.
    ``stop_reason`` says why a run ended before its last epoch: None (it did not),
    'callback', 'early_stopping' or 'diverged' (a non-finite training loss or
    parameters; that epoch was undone and is not recorded).  ``recorded`` lists the
    keys that get values in the fit call the History belongs to.
    """

    KEYS = ("epoch", "loss", "val_loss", "val_accuracy", "lr", "seconds")
    # the lists of KEYS (set per instance), for type checkers
    epoch: List[int]
    loss: List[float]
    val_loss: List[Optional[float]]
    val_accuracy: List[Optional[float]]
    lr: List[float]
    seconds: List[float]
    #: keys that ``metrics=`` may add
    METRIC_KEYS = METRICS + tuple(f"val_{m}" for m in METRICS if m != "accuracy")

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = list(self.KEYS)
        for key in self.KEYS:
            setattr(self, key, [])
        for key in keys:
            self._add_key(key)
        self.recorded = tuple(self._keys)
        self.stopped_early = False
        self.best_epoch: Optional[int] = None
        self.stop_reason: Optional[str] = None

    def _add_key(self, key):
        if key in self._keys:
            return
        if key not in self.METRIC_KEYS:
            raise ValueError(f"unknown History key {key!r}; known: "
                             f"{', '.join(self.KEYS + self.METRIC_KEYS)}")
        self._keys.append(key)
        setattr(self, key, [None] * len(self.epoch))

    def keys(self) -> Tuple[str, ...]:
        """All keys, the base ``KEYS`` first."""
        return tuple(self._keys)

    def _append(self, **record):
        for key in record:
            self._add_key(key)
        for key in self._keys:
            getattr(self, key).append(record.get(key))

    def _truncate(self, n):
        for key in self._keys:
            del getattr(self, key)[n:]

    def __len__(self) -> int:
        return len(self.epoch)

    def __getitem__(self, key: str) -> List[Any]:
        if key not in self._keys:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def as_dict(self) -> Dict[str, List[Any]]:
        return {key: list(getattr(self, key)) for key in self._keys}

    def extend(self, other: "History") -> None:
        n = len(self)
        for key in other.keys():
            self._add_key(key)
        for key in self._keys:
            values = getattr(other, key) if key in other else [None] * len(other)
            getattr(self, key).extend(values)
        assert len(self) == n + len(other)

    def __repr__(self) -> str:
        if not len(self):
            return "History(no epochs)"
        last = {k: getattr(self, k)[-1] for k in ("loss", "val_loss", "val_accuracy")}
        shown = ", ".join(f"{k}={val:.4g}" for k, val in last.items() if val is not None)
        return f"History({len(self)} epochs, last: {shown})"


def _check_data(net, X, T, name_X="X", name_T="T"):
    X = net._check_X(X, name_X, convert=True)
    if X.shape[0] == 0:
        raise ValueError(f"{name_X} has no samples")
    n_T = len(T) if hasattr(T, "__len__") else None
    if n_T is not None and n_T != X.shape[0]:
        raise ValueError(f"{name_X} has {X.shape[0]} samples but {name_T} has {n_T}")
    T = net._check_T(T, X.shape[0], name_T, convert=True)
    if not all_finite(X):
        raise ValueError(f"{name_X} contains NaN or infinity")
    if T.dtype.kind == "f" and not all_finite(T):
        raise ValueError(f"{name_T} contains NaN or infinity")
    return X, T


FINITE_CHUNK_BYTES = 1 << 22


def all_finite(A, chunk_bytes=FINITE_CHUNK_BYTES):
    """Whether every element of A is finite, checked a block of rows at a time.

    ``np.isfinite(A).all()`` makes a boolean temporary as large as A (a quarter of a
    float32 array): for a memory-mapped training set that is anonymous memory growing
    with the data.  Blocks of about ``chunk_bytes`` keep the check's memory bounded
    and read a mapped file sequentially, once.
    """
    if A.ndim == 0 or A.shape[0] == 0:
        return bool(np.isfinite(A).all())
    row_bytes = max(A[:1].nbytes, 1)
    step = max(1, chunk_bytes // row_bytes)
    return all(bool(np.isfinite(A[i:i + step]).all()) for i in range(0, A.shape[0], step))


def _split_validation(net, X, T, validation_split, validation_data):
    if validation_data is not None and validation_split is not None:
        raise ValueError("pass validation_split or validation_data, not both")
    if validation_data is not None:
        try:
            Xv, Tv = validation_data
        except (TypeError, ValueError):
            raise TypeError("validation_data must be a pair (X_val, T_val)") from None
        Xv, Tv = _check_data(net, Xv, Tv, "validation_data[0]", "validation_data[1]")
        return X, T, Xv, Tv
    if validation_split is None:
        return X, T, None, None
    split = v.check_float(validation_split, "validation_split", 0.0, 1.0,
                          low_open=True, high_open=True)
    n_val = int(round(split * X.shape[0]))
    if n_val < 1 or n_val >= X.shape[0]:
        raise ValueError(f"validation_split={split} leaves {X.shape[0] - n_val} training "
                         f"and {n_val} validation samples of {X.shape[0]}; both need >= 1")
    # the last samples, as Keras does: deterministic and independent of the seed
    n_train = X.shape[0] - n_val
    return X[:n_train], T[:n_train], X[n_train:], T[n_train:]


def _resolve_optimizer(net, optimizer):
    if optimizer is None:
        if net.optimizer is None:
            net.optimizer = _optim.Adam()
        return net.optimizer
    net._check_optimizer(optimizer)
    net.optimizer = optimizer
    return optimizer


def _lr_at_step(optimizer, step_schedule):
    """The per-step rate function for ``Optimizer.native_scalars`` (None without a
    per-step schedule); checks once per epoch that the schedule was started."""
    if step_schedule is None:
        return None
    step_schedule.lr_at(optimizer.step_count)
    return lambda step: float(step_schedule._rate(step))


def _set_step_lr(optimizer, step_schedule):
    if step_schedule is not None:
        optimizer.lr = step_schedule.lr_at(optimizer.step_count)


def _check_metrics(net, metrics):
    """The tuple of metric names, checked against the network's loss."""
    if metrics is None:
        return ()
    if isinstance(metrics, str):
        metrics = (metrics,)
    try:
        names = tuple(metrics)
    except TypeError:
        raise TypeError(f"metrics must be a sequence of names from {METRICS}, got "
                        f"{metrics!r}") from None
    for name in names:
        v.check_name(name, "metrics", METRICS)
    if len(set(names)) != len(names):
        raise ValueError(f"metrics lists a name twice: {list(names)}")
    if "accuracy" in names and not net.is_classifier:
        raise ValueError(f"metrics 'accuracy' needs a classifier; this network's loss is "
                         f"{net.loss_name!r}")
    real = [m for m in names if m != "accuracy"]
    if real and net.loss_name == "cross_entropy":
        raise ValueError(f"metrics {real} need real-valued targets; this network's loss "
                         f"is 'cross_entropy' (class labels)")
    return names


METRIC_BLOCK_ROWS = 8192


def metric_values(net, X, T, names, n_threads=None):
    """The metrics ``names`` of the network's inference output on (X, T).

    accuracy: the fraction of samples whose predicted class (argmax, or sigmoid
    output > 0.5 per output) equals the target's; mae: mean absolute error over all
    outputs; r2: the coefficient of determination of each output, averaged over the
    outputs (scikit-learn's ``r2_score`` with ``multioutput='uniform_average'``: an
    output with constant targets scores 1 if predicted exactly, else 0).  The forward
    pass runs ``METRIC_BLOCK_ROWS`` rows at a time, accumulated in float64.
    """
    n = X.shape[0]
    sums = {"correct": 0.0, "abs": 0.0}
    if "r2" in names:
        T2 = T.reshape(n, -1)
        mean = np.zeros(T2.shape[1])
        for a in range(0, n, METRIC_BLOCK_ROWS):
            mean += T2[a:a + METRIC_BLOCK_ROWS].sum(axis=0, dtype=np.float64)
        mean /= n
        ss_res = np.zeros_like(mean)
        ss_tot = np.zeros_like(mean)
    for a in range(0, n, METRIC_BLOCK_ROWS):
        Y = net.forward(X[a:a + METRIC_BLOCK_ROWS], n_threads).astype(np.float64)
        Tb = np.asarray(T[a:a + METRIC_BLOCK_ROWS])
        if "accuracy" in names:
            if net.loss_name == "cross_entropy":
                labels = Tb if Tb.ndim == 1 else Tb.argmax(axis=1)
                sums["correct"] += float(np.sum(Y.argmax(axis=1) == labels))
            else:
                sums["correct"] += float(np.mean((Y > 0.5) == (Tb.reshape(Y.shape) > 0.5),
                                                 axis=1).sum())
        if "mae" in names or "r2" in names:
            D = Y - Tb.reshape(Y.shape).astype(np.float64)
            sums["abs"] += float(np.abs(D).sum())
            if "r2" in names:
                ss_res += (D * D).sum(axis=0)
                C = Tb.reshape(Y.shape).astype(np.float64) - mean
                ss_tot += (C * C).sum(axis=0)
    values = {}
    if "accuracy" in names:
        values["accuracy"] = sums["correct"] / n
    if "mae" in names:
        values["mae"] = sums["abs"] / (n * net.layer_sizes[-1])
    if "r2" in names:
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot,
                              np.where(ss_res == 0, 1.0, 0.0))
        values["r2"] = float(scores.mean())
    return values


def _progress_bar(progress, epochs, start_epoch):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress or epochs == 0:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=epochs, desc=f"epochs {start_epoch + 1}-{start_epoch + epochs}",
                unit="epoch", leave=True)


class _Snapshot:
    """Everything one epoch changes: parameters, optimizer state, step and epoch
    counters, learning rate, the network's History, its random generator and the
    schedule's attributes (a deep copy: a ``Sequential``'s inner schedules come back
    as copies).  Taken before each epoch; put back when the epoch diverges or is
    interrupted, so training state always stands at the end of a whole epoch."""

    __slots__ = ("params", "state", "steps", "lr", "epochs", "n_history", "rng",
                 "schedule")

    def __init__(self, net, optimizer):
        self.params = net.params.copy()
        self.state = optimizer.snapshot()
        self.lr = optimizer.lr
        self.epochs = net.epochs_trained
        self.n_history = len(net.history)
        self.rng = net.rng.bit_generator.state
        schedule = net.lr_schedule
        self.schedule = copy.deepcopy(vars(schedule)) if schedule is not None else None

    def restore(self, net, optimizer, history, n_local):
        net.params[...] = self.params
        optimizer.restore(self.state)
        if optimizer.lr != self.lr:
            optimizer.lr = self.lr
        net.epochs_trained = self.epochs
        net.history._truncate(self.n_history)
        history._truncate(n_local)
        net.rng.bit_generator.state = self.rng
        if self.schedule is not None:
            vars(net.lr_schedule).clear()
            vars(net.lr_schedule).update(self.schedule)


def fit(net: "MLP", X: Any, T: Optional[ArrayLike] = None, epochs: int = 10,
        batch_size: Optional[int] = 32, optimizer: Optional[_optim.Optimizer] = None,
        shuffle: bool = True, seed: Optional[int] = None,
        validation_split: Optional[float] = None,
        validation_data: Optional[Tuple[ArrayLike, ArrayLike]] = None,
        early_stopping: Union[None, bool, EarlyStopping] = None, l1: float = 0.0,
        l2: float = 0.0, input_noise: float = 0.0,
        lr_schedule: Optional[_schedules.Schedule] = None,
        callbacks: Iterable[Union[Callback, Callable[..., Any]]] = (),
        progress: Optional[bool] = None, n_threads: Threads = None,
        step_callback: Optional[Callable[..., Any]] = None,
        metrics: Optional[Sequence[str]] = None, clip_norm: Optional[float] = None,
        clip_value: Optional[float] = None, norm_type: float = 2.0,
        param_groups: Optional[Sequence[Dict[str, Any]]] = None) -> History:
    """Train by gradient descent; returns a ``History`` of this call's epochs.

    Parameters
    ----------
    X : array-like (n_samples, n_in) of real numbers, np.memmap, or batches
        Converted once to the network's dtype (float64 data into a float32
        network is rounded to float32, as scikit-learn does; a memmap of another
        dtype is converted whole, so store it in the network's dtype).
        A memory-mapped X (and T) trains in the native epoch loop, which gathers
        each shuffled mini-batch straight from the mapped file; checks run a
        block of rows at a time, so memory does not grow with the file.
        Without T, X is a source of (X_batch, T_batch) pairs: a callable that
        returns a fresh iterable per epoch, a list of pairs, or a one-pass
        iterator (a generator: ``epochs=1`` only).  Batches are stepped in the
        order given (``batch_size``, ``shuffle`` and ``validation_split`` do not
        apply), each validated as it arrives; an epoch that fails part way is
        undone (parameters, optimizer state, generator) before the error is
        raised.  On the same batches this equals array training bit for bit.
    T : targets: int labels (n_samples,) (or an (n_samples, 1) column, or floats
        that are whole numbers) or one-hot rows for cross_entropy,
        (n_samples, n_out) (or (n_samples,) for one output) otherwise; real
        targets are converted to the network's dtype; None when X is a source
        of batches
    epochs : int >= 0
    batch_size : int >= 1 or None
        None: full-batch gradient descent (one step per epoch; no shuffling);
        1: stochastic gradient descent; K: mini-batches of K (the last may be
        smaller), reshuffled every epoch when ``shuffle``.
    optimizer : gdcore.optim optimizer, optional
        Default: the one from an earlier fit, else ``Adam()``.  Its state carries
        over between calls.
    seed : int, optional
        Re-seeds the training generator (shuffling, dropout, noise); by default
        the network's generator continues.
    validation_split : float in (0, 1), optional
        The last fraction of the samples is held out for validation.
    validation_data : (X_val, T_val), optional
    early_stopping : EarlyStopping or True, optional
        Stop when the monitored History key (by default the validation loss, the
        training loss without validation data) has not improved for ``patience``
        epochs, restoring the best weights (see ``gdcore.callbacks``).
    l1, l2 : float >= 0
        Penalties ``l1 * sum(abs(w))`` and ``l2 / 2 * sum(w**2)`` on the weights
        (not the biases).
    input_noise : float >= 0
        Standard deviation of Gaussian noise added to the inputs in training.
    lr_schedule : gdcore.schedules.Schedule, optional
        Sets the optimizer's lr before every epoch (``unit='epoch'``) or every
        step (``unit='step'``, also inside the native epoch loop); kept for later
        fit calls.
    callbacks : sequence
        Callables (or objects with ``on_epoch_end``, and optionally
        ``on_train_begin`` / ``on_train_end``: ``gdcore.callbacks``) called with
        the History after every epoch; a true return value stops training.
    progress : bool or None
        A tqdm bar over the epochs (loss and validation metrics in it); None shows
        it when stderr is a terminal.
    n_threads : int, optional
    step_callback : callable, optional
        ``step_callback(step, loss)`` after every step; this makes the epoch loop
        return to Python between steps (otherwise one epoch is one native call).
    metrics : sequence of {'accuracy', 'mae', 'r2'}, optional
        Recorded in the History after every epoch: on the training set (an
        inference pass over it after the epoch, without dropout or noise; not
        with batch sources) and, with validation data, as 'val_mae' / 'val_r2'
        ('val_accuracy' is always recorded for classifiers).  'accuracy' needs
        a classifier; 'mae' and 'r2' need real targets (not cross_entropy).
    clip_norm, clip_value : float > 0, optional
        Clip the gradient before every update by its norm (of order
        ``norm_type``) or by value, as ``torch.nn.utils.clip_grad_norm_`` /
        ``clip_grad_value_``; at most one.  Given, they are set on the optimizer
        (``Optimizer.set_clipping``), which keeps them for later calls, as it
        keeps its state; None leaves the optimizer's setting as it is.
    norm_type : float > 0 or inf
        The order of the norm of ``clip_norm``.
    param_groups : list of dicts, optional
        Per-layer learning-rate factors, weight decays and frozen layers (see
        ``Optimizer.set_param_groups``), e.g. ``[{'layers': [0],
        'frozen': True}, {'params': 'biases', 'weight_decay': 0.0}]``; set on the
        optimizer (kept for later calls); None leaves its groups as they are,
        ``[]`` removes them.

    Training stops early (``history.stopped_early``, with ``history.stop_reason``
    'callback', 'early_stopping' or 'diverged') when a callback asks, when early
    stopping triggers, or when the training loss or the parameters become NaN or
    infinite: that epoch is undone (parameters, optimizer state, step and epoch
    counters, History and random generator as at the end of the last finite epoch)
    and a RuntimeWarning names the learning rate.

    Every argument is checked before anything changes.  An exception inside an
    epoch, Ctrl-C included (the native epoch loop runs the signal handlers every
    5 ms between steps, so it stops within milliseconds), puts back the state of
    the epoch's start and propagates: a later ``fit`` continues bitwise as if the
    run had not been interrupted.  A network (and its optimizer) used by another
    thread raises RuntimeError.

    ``MLP.fit`` is this function, ``net`` being the network.
    """
    if not isinstance(optimizer, (_optim.Optimizer, type(None))):
        net._check_optimizer(optimizer)
    owner = optimizer if optimizer is not None else net.optimizer
    if owner is None:
        with _optim.exclusive(net, "this network"):
            return _fit(net, X, T, epochs, batch_size, optimizer, shuffle, seed,
                        validation_split, validation_data, early_stopping, l1, l2,
                        input_noise, lr_schedule, callbacks, progress, n_threads,
                        step_callback, metrics, clip_norm, clip_value, norm_type,
                        param_groups)
    with _optim.exclusive(net, "this network"), owner._using():
        return _fit(net, X, T, epochs, batch_size, optimizer, shuffle, seed,
                    validation_split, validation_data, early_stopping, l1, l2,
                    input_noise, lr_schedule, callbacks, progress, n_threads, step_callback,
                    metrics, clip_norm, clip_value, norm_type, param_groups)


def _check_optimizer_options(net, optimizer, clip_norm, clip_value, norm_type, param_groups):
    """fit's clipping and parameter groups, checked against the network and the
    optimizer fit will use before anything changes: (clipping or None, groups or None),
    None where the optimizer's own setting stays."""
    clip = None
    if clip_norm is None and not (isinstance(norm_type, (int, float)) and norm_type == 2):
        raise ValueError(f"norm_type={norm_type!r} applies to clip_norm, which is not set")
    if clip_norm is not None or clip_value is not None:
        clip = dict(clip_norm=clip_norm, clip_value=clip_value, norm_type=norm_type)
        _optim.check_clipping(**clip)
    if param_groups is not None:
        groups = _optim.check_param_groups(param_groups)
        _optim._segments(groups, net.param_layout)
        cls = type(optimizer if optimizer is not None else net.optimizer or _optim.Adam())
        if any("weight_decay" in g for g in groups) and "weight_decay" not in cls._defaults:
            raise ValueError(f"param_groups set weight_decay, which {cls.__name__} does "
                             f"not have")
    return clip, param_groups


def _set_optimizer_options(optimizer, clip, param_groups):
    # fit holds the optimizer's lock, which the public setters take
    if clip is not None:
        optimizer._set_clipping(**clip)
    if param_groups is not None:
        optimizer._set_param_groups(param_groups)


def check_fit_options(epochs, batch_size, l1, l2, input_noise, early_stopping,
                      lr_schedule, callbacks
                      ) -> "Tuple[int, Optional[int], float, float, float, Optional[EarlyStopping], list]":
    """The options every training loop (``fit``, ``gdcore.distributed.fit``) checks
    before any change of state: returns (epochs, batch_size, l1, l2, input_noise,
    early_stopping, callbacks), with ``early_stopping=True`` made an ``EarlyStopping``
    and ``callbacks`` a list."""
    epochs = v.check_int(epochs, "epochs", low=0)
    if batch_size is not None:
        batch_size = v.check_int(batch_size, "batch_size", low=1)
    l1 = v.check_float(l1, "l1", 0.0)
    l2 = v.check_float(l2, "l2", 0.0)
    input_noise = v.check_float(input_noise, "input_noise", 0.0)
    if early_stopping is True:
        early_stopping = EarlyStopping()
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(f"early_stopping must be an EarlyStopping, True or None, got "
                        f"{early_stopping!r}")
    if lr_schedule is not None and not isinstance(lr_schedule, _schedules.Schedule):
        raise TypeError(f"lr_schedule must be a gdcore.schedules schedule, got "
                        f"{type(lr_schedule).__name__}")
    callbacks = list(callbacks) if callbacks is not None else []
    for cb in callbacks:
        if not (callable(cb) or hasattr(cb, "on_epoch_end")):
            raise TypeError(f"callbacks must be callables or have on_epoch_end, got {cb!r}")
    return epochs, batch_size, l1, l2, input_noise, early_stopping, callbacks


def _fit(net, X, T, epochs, batch_size, optimizer, shuffle, seed, validation_split,
         validation_data, early_stopping, l1, l2, input_noise, lr_schedule, callbacks,
         progress, n_threads, step_callback, metrics, clip_norm=None, clip_value=None,
         norm_type=2.0, param_groups=None):
    (epochs, batch_size, l1, l2, input_noise, early_stopping,
     callbacks) = check_fit_options(epochs, batch_size, l1, l2, input_noise, early_stopping,
                                    lr_schedule, callbacks)
    if early_stopping is not None:
        callbacks.insert(0, early_stopping)
    metric_names = _check_metrics(net, metrics)
    if step_callback is not None and not callable(step_callback):
        raise TypeError("step_callback must be callable")
    source = batch_source(X, T, epochs)
    if source is None:
        X, T = _check_data(net, X, T)
        X, T, Xv, Tv = _split_validation(net, X, T, validation_split, validation_data)
    elif validation_split is not None:
        raise ValueError("validation_split needs array X and T; with batches from an "
                         "iterable pass validation_data=(X_val, T_val)")
    else:
        _, _, Xv, Tv = _split_validation(net, None, None, None, validation_data)
    # every check before the first change of state
    nt = _openmp.resolve(n_threads)
    if seed is not None:
        seed = v.check_seed(seed)
    N = X.shape[0] if source is None else 0
    B = N if batch_size is None or source is not None else min(batch_size, N)
    n_steps = math.ceil(N / B) if source is None else 0
    steps_so_far = (optimizer if optimizer is not None else net.optimizer or _optim.SGD()).step_count
    if steps_so_far + epochs * n_steps > v.MAX_STEP:
        raise ValueError(f"epochs={epochs} would take the optimizer's step count past "
                         f"{v.MAX_STEP}")
    options = _check_optimizer_options(net, optimizer, clip_norm, clip_value, norm_type,
                                       param_groups)
    train_metrics = metric_names if source is None else ()
    val_metrics = tuple(m for m in metric_names if m != "accuracy") if Xv is not None else ()
    history = History([*train_metrics, *(f"val_{m}" for m in val_metrics)])
    absent = {"val_loss", "val_accuracy"} if Xv is None else (
        set() if net.is_classifier else {"val_accuracy"})
    history.recorded = tuple(k for k in history.keys() if k not in absent)
    schedule = lr_schedule if lr_schedule is not None else net.lr_schedule
    for cb in callbacks:
        if hasattr(cb, "on_train_begin"):
            cb.on_train_begin(net, history)
    optimizer = _resolve_optimizer(net, optimizer)
    _set_optimizer_options(optimizer, *options)
    if seed is not None:
        net.reseed(seed)
    if lr_schedule is not None:
        net.lr_schedule = lr_schedule
    if schedule is not None:
        schedule.start(optimizer.lr)
    step_schedule = schedule if schedule is not None and schedule.unit == "step" else None

    stochastic = bool(input_noise) or net.stochastic
    bar = _progress_bar(progress, epochs, net.epochs_trained)
    try:
        for _ in range(epochs):
            snapshot = _Snapshot(net, optimizer)
            n_local = len(history)
            try:
                epoch = net.epochs_trained
                started = time.perf_counter()
                if step_schedule is not None:
                    _set_step_lr(optimizer, step_schedule)
                elif schedule is not None:
                    optimizer.lr = schedule.lr_at(epoch)
                lr = optimizer.lr
                order = (net.rng.permutation(N).astype(np.int64)
                         if shuffle and batch_size is not None and n_steps > 0 else None)
                seeds = (net.rng.bit_generator.random_raw(n_steps).astype(np.uint64)
                         if stochastic else np.zeros(n_steps, dtype=np.uint64))
                if source is not None:
                    total, N = _stream_epoch(net, source, optimizer, l1, l2, input_noise,
                                             stochastic, n_threads, step_callback,
                                             step_schedule)
                elif net.backend == "native" and step_callback is None:
                    total = _native_epoch(net, X, T, order, B, optimizer, seeds, l1, l2,
                                          input_noise, nt, n_steps, step_schedule)
                else:
                    total = _python_epoch(net, X, T, order, B, optimizer, seeds, l1, l2,
                                          input_noise, n_threads, step_callback,
                                          step_schedule)
                metrics = {"loss": total / N}
                if not (math.isfinite(metrics["loss"]) and np.isfinite(net.params).all()):
                    snapshot.restore(net, optimizer, history, n_local)
                    history.stopped_early, history.stop_reason = True, "diverged"
                    warnings.warn(
                        f"training diverged in epoch {epoch} (training loss "
                        f"{metrics['loss']}) with learning rate lr={lr:g}; the parameters, "
                        f"optimizer state and counters of the end of the previous epoch "
                        f"were restored; try a smaller learning rate", RuntimeWarning,
                        stacklevel=3)
                    break
                if Xv is not None:
                    metrics.update({f"val_{k}": val for k, val in
                                    net.evaluate(Xv, Tv, n_threads=n_threads).items()})
                    if val_metrics:
                        metrics.update({f"val_{k}": val for k, val in metric_values(
                            net, Xv, Tv, val_metrics, n_threads).items()})
                if train_metrics:
                    metrics.update(metric_values(net, X, T, train_metrics, n_threads))
                metrics["lr"] = lr
                history._append(epoch=epoch, seconds=time.perf_counter() - started,
                                **{k: metrics.get(k) for k in history.keys()
                                   if k not in ("epoch", "seconds")})
                net.history._append(**{k: history[k][-1] for k in history.keys()})
                net.epochs_trained += 1
                if schedule is not None:
                    schedule.epoch_end(epoch, metrics)
            except BaseException:
                # an error or Ctrl-C inside the epoch: back to its start, all of it
                snapshot.restore(net, optimizer, history, n_local)
                raise
            if bar is not None:
                bar.set_postfix({k: f"{val:.4g}" for k, val in metrics.items() if k != "lr"})
                bar.update(1)
            stop = False
            for cb in callbacks:
                hook = cb.on_epoch_end if hasattr(cb, "on_epoch_end") else cb
                if hook(history):
                    stop = True
                    history.stop_reason = history.stop_reason or "callback"
            if stop:
                history.stopped_early = True
                break
    finally:
        if bar is not None:
            bar.close()
    for cb in callbacks:
        if hasattr(cb, "on_train_end"):
            cb.on_train_end(history)
    return history


def _native_epoch(net, X, T, order, B, optimizer, seeds, l1, l2, noise, nt, n_steps,
                  step_schedule=None):
    return net.native_epoch(X, T, order, B, optimizer, seeds[:n_steps], l1, l2, noise, nt,
                            lr_at_step=_lr_at_step(optimizer, step_schedule))


def _python_epoch(net, X, T, order, B, optimizer, seeds, l1, l2, noise, n_threads,
                  step_callback, step_schedule=None):
    """The epoch as a Python loop over steps (reference backend, or step callbacks):
    the same batches, seeds and arithmetic as the native epoch."""
    N = X.shape[0]
    total = 0.0
    for k, start in enumerate(range(0, N, B)):
        rows = order[start:start + B] if order is not None else slice(start, start + B)
        Xb, Tb = np.ascontiguousarray(X[rows]), np.ascontiguousarray(T[rows])
        _set_step_lr(optimizer, step_schedule)
        value = net.train_batch(Xb, Tb, optimizer, l1, l2, noise, int(seeds[k]), n_threads)
        total += value * Xb.shape[0]
        if step_callback is not None:
            step_callback(optimizer.step_count, value)
    return total


def batch_source(X, T, epochs):
    """None for array input (X, T); for batches, a callable that returns an iterable
    of (X_batch, T_batch) pairs for one epoch.

    Without T, X is a source of mini-batches: a callable returning a fresh iterable
    each epoch (``lambda: read_batches(path)``: any number of epochs), a re-iterable
    collection of pairs (a list), or a one-pass iterator such as a generator, which is
    exhausted after one epoch and so is accepted for ``epochs=1`` only (a
    ``ValueError`` before any update otherwise).
    """
    if T is not None:
        return None
    if isinstance(X, np.ndarray) or hasattr(X, "__array__"):
        raise TypeError("T is required with array X; without T, X must be an iterable of "
                        "(X_batch, T_batch) pairs or a callable returning one per epoch")
    if callable(X):
        return X
    if not hasattr(X, "__iter__"):
        raise TypeError(f"X must be an array (with T), an iterable of (X_batch, T_batch) "
                        f"pairs or a callable returning one, got {type(X).__name__}")
    if iter(X) is X and epochs > 1:
        raise ValueError(f"X is a one-pass iterator (a generator?) but epochs={epochs}; "
                         f"pass a callable that returns a fresh iterator per epoch, e.g. "
                         f"lambda: batches(path)")
    return lambda: X


def _stream_epoch(net, source, optimizer, l1, l2, noise, stochastic, n_threads,
                  step_callback, step_schedule=None):
    """One epoch over the batches ``source()`` yields, one native step per batch, in
    the order given (``shuffle`` does not apply: the source decides the order).

    Each batch is validated as it arrives.  The epoch is all-or-nothing: a malformed
    batch, an exception from the source or a Ctrl-C puts the parameters, the optimizer
    state and the generator back as they were when the epoch began, then re-raises.
    Returns (sum of batch loss x batch size, number of samples).
    """
    params = net.params.copy()
    opt_state = optimizer.state_dict()
    rng_state = net.rng.bit_generator.state
    total, n_samples = 0.0, 0
    try:
        for i, item in enumerate(source()):
            try:
                Xb, Tb = item
            except (TypeError, ValueError):
                raise TypeError(f"batch {i} must be a pair (X_batch, T_batch), got "
                                f"{type(item).__name__}") from None
            Xb, Tb = _check_data(net, Xb, Tb, f"batch {i} X", f"batch {i} T")
            seed = int(net.rng.bit_generator.random_raw()) if stochastic else 0
            _set_step_lr(optimizer, step_schedule)
            value = net.train_batch(Xb, Tb, optimizer, l1, l2, noise, seed, n_threads)
            total += value * Xb.shape[0]
            n_samples += Xb.shape[0]
            if step_callback is not None:
                step_callback(optimizer.step_count, value)
        if n_samples == 0:
            raise ValueError("the batch source yielded no batches (an exhausted "
                             "iterator? pass a callable that returns a fresh one)")
    except BaseException:
        net.params[...] = params
        if opt_state["step"] == 0 and not opt_state["state"]:
            optimizer.reset()
        else:
            optimizer.load_state_dict(opt_state)
        net.rng.bit_generator.state = rng_state
        raise
    return total, n_samples


def partial_fit(net: "MLP", X: ArrayLike, T: ArrayLike,
                optimizer: Optional[_optim.Optimizer] = None, l1: float = 0.0, l2: float = 0.0,
                input_noise: float = 0.0, n_threads: Threads = None) -> float:
    """One gradient step on the batch (X, T) with the network's training state (the
    implementation of ``MLP.partial_fit``)."""
    l1 = v.check_float(l1, "l1", 0.0)
    l2 = v.check_float(l2, "l2", 0.0)
    input_noise = v.check_float(input_noise, "input_noise", 0.0)
    X, T = _check_data(net, X, T)
    if optimizer is None:
        optimizer = net.optimizer if net.optimizer is not None else _optim.Adam()
    net._check_optimizer(optimizer)
    # train_step is all-or-nothing; the optimizer is kept for later calls once it ran
    loss = net.train_step(X, T, optimizer, l1=l1, l2=l2, input_noise=input_noise,
                          n_threads=n_threads)
    net.optimizer = optimizer
    return loss
