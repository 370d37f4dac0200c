"""Learning-rate schedules, applied once per epoch by ``MLP.fit``::

    sched = gd.schedules.CosineAnnealing(T_max=50)
    net.fit(X, T, epochs=50, optimizer=gd.optim.SGD(lr=0.1), lr_schedule=sched)

What ``fit`` calls, in order::

    schedule.start(base_lr)              # every fit call; only the first one counts
    lr = schedule.lr_at(epoch)           # before epoch ``epoch`` (0-based, counted
                                         # over all fit calls of the network)
    schedule.epoch_end(epoch, metrics)   # after it; metrics: {'loss', 'val_loss', ...}

``state_dict()`` returns plain JSON values (type name, constructor parameters, state);
``from_state_dict(d)`` rebuilds an equal schedule that continues identically, so a
checkpoint resumes with the same learning rates bit for bit.

The decay schedules are closed-form functions of the epoch (PyTorch's "closed form",
not its chained per-step multiplications, which round differently), so ``lr_at`` can be
asked for any epoch in any order.  ``ReduceLROnPlateau`` is driven by ``epoch_end``.
"""
import math
from collections.abc import Mapping
from typing import Tuple

from . import _validation as v

__all__ = [
    "Schedule",
    "StepDecay",
    "ExponentialDecay",
    "InverseTimeDecay",
    "CosineAnnealing",
    "ReduceLROnPlateau",
    "from_state_dict",
]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


class Schedule:
    """Base class of the learning-rate schedules.

    A subclass lists its constructor parameters in ``_param_names`` (stored as
    attributes of the same names) and computes the rate in ``_rate(epoch)``; a stateful
    one also lists its state attributes in ``_state_names`` and overrides
    ``epoch_end`` and ``_load_state``.

    Attributes
    ----------
    base_lr : float or None
        The learning rate given to the first ``start`` call; None before it.
    """

    _param_names: Tuple[str, ...] = ()
    _state_names: Tuple[str, ...] = ("base_lr",)

    def __init__(self):
        self.base_lr = None

    # -- what fit calls -------------------------------------------------------

    def start(self, base_lr):
        """Remember ``base_lr`` (the optimizer's lr when training starts).

        Only the first call counts: ``fit`` calls it at every fit call, and a resumed
        run must keep the schedule it started with.

        Parameters
        ----------
        base_lr : float >= 0
        """
        base_lr = v.check_float(base_lr, "base_lr", 0.0)
        if self.base_lr is None:
            self.base_lr = base_lr
            self._on_start()

    def lr_at(self, epoch):
        """The learning rate for epoch ``epoch``.

        Parameters
        ----------
        epoch : int >= 0
            0-based, counted over all fit calls of the network.

        Returns
        -------
        float

        Raises
        ------
        RuntimeError
            If ``start`` was never called (the base rate is unknown).
        """
        epoch = v.check_int(epoch, "epoch", low=0)
        self._check_started("lr_at")
        return float(self._rate(epoch))

    def epoch_end(self, epoch, metrics):
        """Called after each epoch with its metrics ('loss' and, with validation
        data, 'val_loss' and 'val_accuracy'); the decay schedules ignore it."""

    # -- state ----------------------------------------------------------------

    @property
    def params(self):
        """The constructor parameters, as a dict."""
        return {name: getattr(self, name) for name in self._param_names}

    def state_dict(self):
        """The schedule as plain JSON values.

        Returns
        -------
        dict
            ``{'type': class name, 'params': constructor parameters, 'state': {...}}``
            holding only str, int, float, bool and None; ``from_state_dict`` rebuilds
            an equal schedule from it (also after ``json.dumps`` / ``json.loads``).
        """
        return {"type": type(self).__name__, "params": self.params, "state": self._state()}

    @staticmethod
    def from_state_dict(d):
        """Rebuild a schedule from ``state_dict()``; see the module-level
        ``from_state_dict``."""
        return from_state_dict(d)

    def _state(self):
        return {name: getattr(self, name) for name in self._state_names}

    def _load_state(self, state):
        base_lr = state["base_lr"]
        self.base_lr = None if base_lr is None else v.check_float(base_lr, "base_lr", 0.0)

    def _fresh_copy(self):
        """An unstarted schedule with the same parameters."""
        return type(self)(**self.params)

    # -- helpers --------------------------------------------------------------

    def _on_start(self):
        pass

    def _check_started(self, what):
        if self.base_lr is None:
            raise RuntimeError(f"{type(self).__name__}.{what} needs the base learning rate: "
                               f"call start(base_lr) first (MLP.fit does)")

    def _rate(self, epoch):
        raise NotImplementedError(f"{type(self).__name__} does not define a learning rate")

    def __repr__(self):
        args = ", ".join(f"{k}={val!r}" for k, val in self.params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self.state_dict() == other.state_dict()

    __hash__ = None  # type: ignore[assignment]  # equal by value, mutable: unhashable


def _check_factor(value, name):
    """A multiplicative decay factor in (0, 1]."""
    return v.check_float(value, name, 0.0, 1.0, low_open=True)


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs (torch ``StepLR``).

        lr(epoch) = base_lr * gamma ** (epoch // step_size)

    Parameters
    ----------
    step_size : int >= 1
        Epochs between decays.
    gamma : float in (0, 1]
        Decay factor.
    """

    _param_names = ("step_size", "gamma")

    def __init__(self, step_size, gamma=0.1):
        super().__init__()
        self.step_size = v.check_int(step_size, "step_size", low=1)
        self.gamma = _check_factor(gamma, "gamma")

    def _rate(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialDecay(Schedule):
    """Multiply the rate by ``gamma`` every epoch (torch ``ExponentialLR``).

        lr(epoch) = base_lr * gamma ** epoch

    Parameters
    ----------
    gamma : float in (0, 1]
        Decay factor per epoch.
    """

    _param_names = ("gamma",)

    def __init__(self, gamma):
        super().__init__()
        self.gamma = _check_factor(gamma, "gamma")

    def _rate(self, epoch):
        return self.base_lr * self.gamma ** epoch


class InverseTimeDecay(Schedule):
    """Inverse-time decay (Keras ``InverseTimeDecay`` with ``staircase=False``).

        lr(epoch) = base_lr / (1 + decay_rate * epoch / decay_steps)

    Parameters
    ----------
    decay_rate : float >= 0
        0 keeps the rate constant.
    decay_steps : float > 0
        Epochs over which the denominator grows by ``decay_rate``.
    """

    _param_names = ("decay_rate", "decay_steps")

    def __init__(self, decay_rate, decay_steps=1):
        super().__init__()
        self.decay_rate = v.check_float(decay_rate, "decay_rate", 0.0)
        self.decay_steps = v.check_float(decay_steps, "decay_steps", 0.0, low_open=True)

    def _rate(self, epoch):
        return self.base_lr / (1.0 + self.decay_rate * epoch / self.decay_steps)


class CosineAnnealing(Schedule):
    """Cosine annealing from the base rate to ``eta_min`` over ``T_max`` epochs::

        lr(epoch) = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2
                                                              for epoch <= T_max
        lr(epoch) = eta_min                                   for epoch >  T_max

    Up to ``T_max`` this is the closed form of torch ``CosineAnnealingLR`` (SGDR
    without restarts).  After ``T_max`` the rate stays at ``eta_min``, where torch's
    formula would climb back up along the cosine: a run longer than planned keeps
    the final rate instead of warming up again.

    Parameters
    ----------
    T_max : int >= 1
        Epochs of the annealing.
    eta_min : float >= 0
        Final learning rate.
    """

    _param_names = ("T_max", "eta_min")

    def __init__(self, T_max, eta_min=0.0):
        super().__init__()
        self.T_max = v.check_int(T_max, "T_max", low=1)
        self.eta_min = v.check_float(eta_min, "eta_min", 0.0)

    def _rate(self, epoch):
        if epoch >= self.T_max:
            return self.eta_min
        return (self.eta_min + (self.base_lr - self.eta_min)
                * (1.0 + math.cos(math.pi * epoch / self.T_max)) / 2.0)


class ReduceLROnPlateau(Schedule):
    """Reduce the rate when a monitored loss stops improving (Keras semantics).

    After each epoch the monitored value ``m`` is compared with the best so far:

    - ``m < best - min_delta`` (an absolute threshold) is an improvement: ``best = m``
      and the count of bad epochs restarts at 0;
    - otherwise the epoch is bad.  At the ``patience``-th consecutive bad epoch the
      rate becomes ``max(lr * factor, min_lr)`` (a rate already at or below ``min_lr``
      is left alone), the count restarts, and the next ``cooldown`` epochs are not
      counted as bad (improvements during them still update ``best``).

    The first epoch always improves (``best`` starts as +infinity).  So if the loss
    never improves after epoch 0, the rate is reduced at the end of epoch
    ``patience``, then every ``cooldown + patience`` epochs.  (torch reduces one epoch
    later: its ``patience`` bad epochs are tolerated, the next one reduces.)
    ``patience=0`` acts as 1, as in Keras.  A NaN or
    infinite value never improves.  If ``monitor`` is 'val_loss' but the metrics have
    no validation loss (``fit`` without validation data), the training 'loss' is
    used instead; ``best`` is then compared across whichever of the two each epoch
    had.  ``lr_at`` returns the current rate whatever the epoch.

    Parameters
    ----------
    monitor : {'val_loss', 'loss'}
        The loss to watch; lower is better.
    factor : float in [0, 1)
        Multiplier of the rate at each reduction.
    patience : int >= 0
        Bad epochs before a reduction.
    min_delta : float >= 0
        Smallest decrease that counts as an improvement.
    cooldown : int >= 0
        Epochs after a reduction whose lack of improvement is not counted.
    min_lr : float >= 0
        Lower bound of the rate.

    Attributes
    ----------
    lr : float or None
        The current rate (the base rate until the first reduction).
    best : float or None
        The best monitored value so far (None before the first epoch).
    bad_epochs, cooldown_counter : int
        Bad epochs counted so far, and cooldown epochs left.
    """

    _param_names = ("monitor", "factor", "patience", "min_delta", "cooldown", "min_lr")
    _state_names = ("base_lr", "lr", "best", "bad_epochs", "cooldown_counter")

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__()
        self.monitor = v.check_name(monitor, "monitor", ("val_loss", "loss"))
        self.factor = v.check_float(factor, "factor", 0.0, 1.0, high_open=True)
        self.patience = v.check_int(patience, "patience", low=0)
        self.min_delta = v.check_float(min_delta, "min_delta", 0.0)
        self.cooldown = v.check_int(cooldown, "cooldown", low=0)
        self.min_lr = v.check_float(min_lr, "min_lr", 0.0)
        self.lr = None
        self.best = None
        self.bad_epochs = 0
        self.cooldown_counter = 0

    def _on_start(self):
        self.lr = self.base_lr

    def _rate(self, epoch):
        return self.lr

    def _monitored(self, metrics):
        if not isinstance(metrics, Mapping):
            raise TypeError(f"metrics must be a dict of metric values, got "
                            f"{type(metrics).__name__}")
        value = metrics.get(self.monitor)
        if value is None:
            value = metrics.get("loss")
            if value is None:
                raise ValueError(f"metrics has neither {self.monitor!r} nor 'loss'; got "
                                 f"keys {sorted(metrics)}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metrics[{self.monitor!r}] must be a real number, got "
                            f"{value!r}") from None

    def epoch_end(self, epoch, metrics):
        """Update the plateau state with the metrics of epoch ``epoch``.

        Parameters
        ----------
        epoch : int >= 0
        metrics : dict
            Must hold ``monitor`` or at least 'loss'.
        """
        v.check_int(epoch, "epoch", low=0)
        self._check_started("epoch_end")
        value = self._monitored(metrics)
        in_cooldown = self.cooldown_counter > 0
        if in_cooldown:
            self.cooldown_counter -= 1
        reference = math.inf if self.best is None else self.best
        if math.isfinite(value) and value < reference - self.min_delta:
            self.best = value
            self.bad_epochs = 0
        elif not in_cooldown:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                if self.lr > self.min_lr:
                    self.lr = max(self.lr * self.factor, self.min_lr)
                self.bad_epochs = 0
                self.cooldown_counter = self.cooldown

    def _load_state(self, state):
        super()._load_state(state)
        lr, best = state["lr"], state["best"]
        if (lr is None) != (self.base_lr is None):
            raise ValueError(f"lr and base_lr must both be set or both be None, got "
                             f"lr={lr!r}, base_lr={self.base_lr!r}")
        self.lr = None if lr is None else v.check_float(lr, "lr", 0.0)
        self.best = None if best is None else v.check_float(best, "best")
        bad = v.check_int(state["bad_epochs"], "bad_epochs", low=0)
        if bad >= max(self.patience, 1):
            raise ValueError(f"bad_epochs must be < patience = {max(self.patience, 1)}, "
                             f"got {bad}")
        counter = v.check_int(state["cooldown_counter"], "cooldown_counter", low=0)
        if counter > self.cooldown:
            raise ValueError(f"cooldown_counter must be <= cooldown = {self.cooldown}, "
                             f"got {counter}")
        self.bad_epochs, self.cooldown_counter = bad, counter


_SCHEDULES = {cls.__name__: cls for cls in
              (StepDecay, ExponentialDecay, InverseTimeDecay, CosineAnnealing,
               ReduceLROnPlateau)}


def from_state_dict(d):
    """Rebuild a schedule from ``Schedule.state_dict()``.

    Parameters
    ----------
    d : dict
        ``{'type': ..., 'params': {...}, 'state': {...}}``, possibly after a JSON
        round trip.

    Returns
    -------
    Schedule
        Equal to the saved one: same parameters and state, so the same future rates.

    Raises
    ------
    TypeError
        If ``d`` is not a dict.
    ValueError
        For an unknown type, or missing, extra or invalid fields.
    """
    if not isinstance(d, Mapping):
        raise TypeError(f"d must be a schedule state_dict (a dict), got {type(d).__name__}")
    if set(d) != {"type", "params", "state"}:
        raise ValueError(f"a schedule state_dict has the keys 'params', 'state', 'type'; "
                         f"got {sorted(map(str, d))}")
    name = d["type"]
    cls = _SCHEDULES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown schedule type {name!r}; known: {', '.join(_SCHEDULES)}")
    params, state = d["params"], d["state"]
    if not isinstance(params, Mapping) or set(params) != set(cls._param_names):
        got = sorted(map(str, params)) if isinstance(params, Mapping) else repr(params)
        raise ValueError(f"{name} state_dict params must have the keys "
                         f"{sorted(cls._param_names)}, got {got}")
    expected_state = set(cls._state_names)
    if not isinstance(state, Mapping) or set(state) != expected_state:
        got = sorted(map(str, state)) if isinstance(state, Mapping) else repr(state)
        raise ValueError(f"{name} state_dict state must have the keys "
                         f"{sorted(expected_state)}, got {got}")
    try:
        schedule = cls(**params)
        schedule._load_state(state)
    except (TypeError, ValueError) as err:
        raise ValueError(f"invalid {name} state_dict: {err}") from None
    return schedule

