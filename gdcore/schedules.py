"""Learning-rate schedules, applied per epoch or per step by ``MLP.fit``::

    sched = gd.schedules.CosineAnnealing(T_max=50)
    net.fit(X, T, epochs=50, optimizer=gd.optim.SGD(lr=0.1), lr_schedule=sched)

    warm_cos = gd.schedules.Sequential(
        [gd.schedules.LinearWarmup(500, unit="step"),
         gd.schedules.CosineAnnealing(T_max=9500, unit="step")], milestones=[500])

What ``fit`` calls, in order::

    schedule.start(base_lr)              # every fit call; only the first one counts
    lr = schedule.lr_at(t)               # unit 'epoch': before epoch t (0-based, counted
                                         # over all fit calls of the network);
                                         # unit 'step': before every step, t = the
                                         # optimizer's step count before the step
    schedule.epoch_end(epoch, metrics)   # after each epoch; metrics: {'loss', ...}

A schedule's ``unit`` says what ``t`` counts.  A per-step schedule is indexed by the
optimizer's step count, which checkpoints save and the divergence rollback restores,
so it needs no state of its own.  In the native epoch loop the per-step rates are
computed before the epoch into the loop's per-step scalars: the epoch stays one
native call.

``state_dict()`` returns plain JSON values (type name, constructor parameters, state);
``from_state_dict(d)`` rebuilds an equal schedule that continues identically, so a
checkpoint resumes with the same learning rates bit for bit.

The decay schedules are closed-form functions of the epoch (PyTorch's "closed form",
not its chained per-step multiplications, which round differently), so ``lr_at`` can be
asked for any epoch in any order.  ``ReduceLROnPlateau`` is driven by ``epoch_end``.
"""
import bisect
import math
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, TypeVar
from typing import Mapping as _MappingType

import numpy as np

from . import _validation as v

__all__ = [
    "Schedule",
    "StepDecay",
    "ExponentialDecay",
    "InverseTimeDecay",
    "CosineAnnealing",
    "ReduceLROnPlateau",
    "LinearWarmup",
    "OneCycle",
    "CosineWarmRestarts",
    "Sequential",
    "register",
    "from_state_dict",
]

UNITS = ("epoch", "step")


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
    unit = "epoch"     # what lr_at's argument counts: 'epoch' or 'step'

    def __init__(self) -> None:
        self.base_lr: Optional[float] = None

    # -- what fit calls -------------------------------------------------------

    def start(self, base_lr: float) -> None:
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

    def lr_at(self, epoch: int) -> float:
        """The learning rate for epoch ``epoch``.

        Parameters
        ----------
        epoch : int >= 0
            0-based, counted over all fit calls of the network; with
            ``unit='step'``, the optimizer's step count before the step.

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

    def epoch_end(self, epoch: int, metrics: Dict[str, Any]) -> None:
        """Called after each epoch with its metrics ('loss' and, with validation
        data, 'val_loss' and 'val_accuracy'); the decay schedules ignore it."""

    # -- state ----------------------------------------------------------------

    @property
    def params(self) -> Dict[str, Any]:
        """The constructor parameters, as a dict."""
        return {name: getattr(self, name) for name in self._param_names}

    def state_dict(self) -> Dict[str, Any]:
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
    def from_state_dict(d: _MappingType[str, Any]) -> "Schedule":
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


def _check_unit(unit):
    return v.check_name(unit, "unit", UNITS)


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
    unit : {'epoch', 'step'}
        What the schedule counts (the other parameters count in this unit).
    """

    _param_names = ("step_size", "gamma", "unit")

    def __init__(self, step_size: int, gamma: float = 0.1, unit: str = "epoch") -> None:
        super().__init__()
        self.unit = _check_unit(unit)
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
    unit : {'epoch', 'step'}
        What the schedule counts (the other parameters count in this unit).
    """

    _param_names = ("gamma", "unit")

    def __init__(self, gamma: float, unit: str = "epoch") -> None:
        super().__init__()
        self.unit = _check_unit(unit)
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
    unit : {'epoch', 'step'}
        What the schedule counts (the other parameters count in this unit).
    """

    _param_names = ("decay_rate", "decay_steps", "unit")

    def __init__(self, decay_rate: float, decay_steps: int = 1, unit: str = "epoch") -> None:
        super().__init__()
        self.unit = _check_unit(unit)
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
    unit : {'epoch', 'step'}
        What the schedule counts (the other parameters count in this unit).
    """

    _param_names = ("T_max", "eta_min", "unit")

    def __init__(self, T_max: int, eta_min: float = 0.0, unit: str = "epoch") -> None:
        super().__init__()
        self.unit = _check_unit(unit)
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

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__()
        self.monitor = v.check_name(monitor, "monitor", ("val_loss", "loss"))
        self.factor = v.check_float(factor, "factor", 0.0, 1.0, high_open=True)
        self.patience = v.check_int(patience, "patience", low=0)
        self.min_delta = v.check_float(min_delta, "min_delta", 0.0)
        self.cooldown = v.check_int(cooldown, "cooldown", low=0)
        self.min_lr = v.check_float(min_lr, "min_lr", 0.0)
        self.lr: Any = None                 # a float once started
        self.best: Optional[float] = None
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

    def epoch_end(self, epoch: int, metrics: Dict[str, Any]) -> None:
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


class LinearWarmup(Schedule):
    """Linear change of the rate's factor over ``total_iters`` (torch ``LinearLR``)::

        lr(t) = base_lr * (start_factor
                           + (end_factor - start_factor) * min(t, total_iters) / total_iters)

    The closed form of torch.optim.lr_scheduler.LinearLR (same parameters, defaults
    and bounds).  As a warm-up it goes first in a ``Sequential``.

    Parameters
    ----------
    total_iters : int >= 1
        Epochs or steps of the change; the rate stays at ``base_lr * end_factor`` after.
    start_factor : float in (0, 1]
        Factor of the first epoch or step (torch's default 1/3; it must be > 0, so the
        first step is never wasted at rate 0).
    end_factor : float in [0, 1]
    unit : {'epoch', 'step'}
        What the schedule counts; 'step' by default (warm-ups are usually per step).
    """

    _param_names = ("total_iters", "start_factor", "end_factor", "unit")

    def __init__(self, total_iters: int, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, unit: str = "step") -> None:
        super().__init__()
        self.total_iters = v.check_int(total_iters, "total_iters", low=1)
        self.start_factor = v.check_float(start_factor, "start_factor", 0.0, 1.0,
                                          low_open=True)
        self.end_factor = v.check_float(end_factor, "end_factor", 0.0, 1.0)
        self.unit = _check_unit(unit)

    def _rate(self, epoch):
        done = min(epoch, self.total_iters) / self.total_iters
        return self.base_lr * (self.start_factor
                               + (self.end_factor - self.start_factor) * done)


def _anneal(start, end, pct, strategy):
    # torch.optim.lr_scheduler.OneCycleLR._annealing_cos / _annealing_linear
    if strategy == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


class OneCycle(Schedule):
    """The one-cycle policy (Smith and Topin 2017) as torch ``OneCycleLR`` computes it.

    The rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start * total_steps - 1`` steps, then falls to
    ``max_lr / (div_factor * final_div_factor)`` at step ``total_steps - 1``; with
    ``three_phase`` it falls back to the initial rate symmetrically first and anneals
    to the minimum in the last phase.  Each phase interpolates by cosine or linearly
    (``anneal_strategy``), with torch's phase boundaries and formulas.  Differences
    from torch: momentum is not cycled (gdcore's optimizers fix their betas at
    construction), and steps past ``total_steps - 1`` keep the final rate where torch
    raises.

    Parameters
    ----------
    total_steps : int >= 2
        Length of the cycle, in the schedule's unit.
    max_lr : float > 0 or None
        The peak rate; None takes the optimizer's lr when training starts (base_lr).
    pct_start : float in (0, 1)
    anneal_strategy : {'cos', 'linear'}
    div_factor : float > 0
        initial rate = max_lr / div_factor.
    final_div_factor : float > 0
        minimum rate = initial rate / final_div_factor.
    three_phase : bool
    unit : {'step', 'epoch'}
    """

    _param_names = ("total_steps", "max_lr", "pct_start", "anneal_strategy", "div_factor",
                    "final_div_factor", "three_phase", "unit")

    def __init__(self, total_steps: int, max_lr: Optional[float] = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, unit: str = "step") -> None:
        super().__init__()
        self.total_steps = v.check_int(total_steps, "total_steps", low=2)
        self.max_lr = (None if max_lr is None
                       else v.check_float(max_lr, "max_lr", 0.0, low_open=True))
        self.pct_start = v.check_float(pct_start, "pct_start", 0.0, 1.0, low_open=True,
                                       high_open=True)
        self.anneal_strategy = v.check_name(anneal_strategy, "anneal_strategy",
                                            ("cos", "linear"))
        self.div_factor = v.check_float(div_factor, "div_factor", 0.0, low_open=True)
        self.final_div_factor = v.check_float(final_div_factor, "final_div_factor", 0.0,
                                              low_open=True)
        if not isinstance(three_phase, (bool, np.bool_)):
            raise TypeError(f"three_phase must be a bool, got {three_phase!r}")
        self.three_phase = bool(three_phase)
        self.unit = _check_unit(unit)

    def _phases(self):
        peak = self.base_lr if self.max_lr is None else self.max_lr
        initial = peak / self.div_factor
        minimum = initial / self.final_div_factor
        up = float(self.pct_start * self.total_steps) - 1
        last = self.total_steps - 1
        if self.three_phase:
            return [(up, initial, peak), (2 * up, peak, initial), (last, initial, minimum)]
        return [(up, initial, peak), (last, peak, minimum)]

    def _rate(self, epoch):
        step = min(epoch, self.total_steps - 1)
        start_step = 0.0
        phases = self._phases()
        for i, (end_step, start_lr, end_lr) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                return _anneal(start_lr, end_lr, pct, self.anneal_strategy)
            start_step = end_step
        raise AssertionError("unreachable")


class CosineWarmRestarts(Schedule):
    """Cosine annealing with warm restarts, SGDR (torch ``CosineAnnealingWarmRestarts``)::

        lr(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2

    where the i-th cycle lasts ``T_i = T_0 * T_mult**i`` and ``T_cur`` is the position
    in it.  torch finds the cycle with a floating-point logarithm, which can land in the
    wrong cycle at a boundary; here it is found with integers, exactly.

    Parameters
    ----------
    T_0 : int >= 1
        Length of the first cycle.
    T_mult : int >= 1
        Growth factor of the cycle length.
    eta_min : float >= 0
    unit : {'epoch', 'step'}
    """

    _param_names = ("T_0", "T_mult", "eta_min", "unit")

    def __init__(self, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 unit: str = "epoch") -> None:
        super().__init__()
        self.T_0 = v.check_int(T_0, "T_0", low=1)
        self.T_mult = v.check_int(T_mult, "T_mult", low=1)
        self.eta_min = v.check_float(eta_min, "eta_min", 0.0)
        self.unit = _check_unit(unit)

    def _cycle(self, epoch):
        """(T_cur, T_i) of epoch ``epoch``."""
        if self.T_mult == 1:
            return epoch % self.T_0, self.T_0
        t_cur, t_i = epoch, self.T_0
        while t_cur >= t_i:
            t_cur -= t_i
            t_i *= self.T_mult
        return t_cur, t_i

    def _rate(self, epoch):
        t_cur, t_i = self._cycle(epoch)
        return (self.eta_min + (self.base_lr - self.eta_min)
                * (1.0 + math.cos(math.pi * t_cur / t_i)) / 2.0)


class Sequential(Schedule):
    """Schedules one after the other, switching at ``milestones`` (torch
    ``SequentialLR``, closed form).

    Schedule ``i`` runs from ``milestones[i-1]`` (0 for the first) and counts from 0
    there::

        i = number of milestones <= t
        lr(t) = schedules[i].lr_at(t - milestones[i-1])

    All schedules share the base rate and must share one ``unit``.  ``epoch_end`` goes
    to the schedule running in that epoch (so a ``ReduceLROnPlateau`` can follow a
    warm-up, with per-epoch units).

    Parameters
    ----------
    schedules : sequence of Schedule (or their state_dicts)
        At least one; each is used by this schedule alone (pass fresh ones).
    milestones : sequence of int
        Strictly increasing, >= 1; one fewer than ``schedules``.
    """

    _param_names = ("schedules", "milestones")

    def __init__(self, schedules: Sequence["Schedule"], milestones: Sequence[int]) -> None:
        super().__init__()
        if isinstance(schedules, (Schedule, Mapping, str)) or not hasattr(schedules,
                                                                         "__iter__"):
            raise TypeError(f"schedules must be a sequence of schedules, got "
                            f"{type(schedules).__name__}")
        children = [s if isinstance(s, Schedule) else from_state_dict(s) for s in schedules]
        if not children:
            raise ValueError("schedules must hold at least one schedule")
        units = {c.unit for c in children}
        if len(units) != 1:
            raise ValueError(f"schedules must share one unit, got {sorted(units)}")
        if len({id(c) for c in children}) != len(children):
            raise ValueError("schedules holds the same schedule twice; pass separate ones")
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"milestones must be a sequence of int, got "
                            f"{type(milestones).__name__}")
        marks = [v.check_int(m, "milestones[i]", low=1) for m in milestones]
        if len(marks) != len(children) - 1:
            raise ValueError(f"milestones must hold {len(children) - 1} values (one fewer "
                             f"than schedules), got {len(marks)}")
        if any(b <= a for a, b in zip(marks, marks[1:])):
            raise ValueError(f"milestones must increase strictly, got {marks}")
        self._children = children
        self.milestones = marks
        self.unit = children[0].unit

    @property
    def schedules(self) -> List["Schedule"]:
        """The schedules, as a list (a copy)."""
        return list(self._children)

    @property
    def params(self) -> Dict[str, Any]:
        return {"schedules": [c.state_dict() for c in self._children],
                "milestones": list(self.milestones)}

    def _fresh_copy(self):
        return Sequential([c._fresh_copy() for c in self._children], self.milestones)

    def __repr__(self):
        return f"Sequential({self._children!r}, milestones={self.milestones!r})"

    def _on_start(self):
        for c in self._children:
            c.start(self.base_lr)

    def _active(self, epoch):
        i = bisect.bisect_right(self.milestones, epoch)
        return self._children[i], epoch - (self.milestones[i - 1] if i else 0)

    def _rate(self, epoch):
        child, local = self._active(epoch)
        return child._rate(local)

    def epoch_end(self, epoch: int, metrics: Dict[str, Any]) -> None:
        """Passes the metrics to the schedule running in epoch ``epoch`` (per-epoch
        units only: per-step schedules have no use for them)."""
        epoch = v.check_int(epoch, "epoch", low=0)
        self._check_started("epoch_end")
        if self.unit == "step":
            return
        child, local = self._active(epoch)
        child.epoch_end(local, metrics)


_SCHEDULES: Dict[str, Type[Schedule]] = {
    cls.__name__: cls for cls in (StepDecay, ExponentialDecay, InverseTimeDecay,
                                  CosineAnnealing, ReduceLROnPlateau, LinearWarmup, OneCycle,
                                  CosineWarmRestarts, Sequential)}
_BUILTIN = frozenset(_SCHEDULES)


_S = TypeVar("_S", bound=Schedule)


def register(cls: Type[_S]) -> Type[_S]:
    """Class decorator: make a ``Schedule`` subclass loadable by ``from_state_dict``
    (and so by ``gd.load``)::

        @gd.schedules.register
        class Halving(gd.schedules.Schedule):
            _param_names = ("every",)
            def __init__(self, every):
                super().__init__()
                self.every = every
            def _rate(self, epoch):
                return self.base_lr * 0.5 ** (epoch // self.every)

    A checkpoint stores the class name, the constructor parameters and the state as
    JSON values (never code), so loading needs the class registered under the same
    name in the loading process: import the module that defines it before
    ``gd.load``.  Parameters must be JSON values (str, int, float, bool, None, lists
    and dicts of them); a stateful subclass lists its state attributes in
    ``_state_names`` and checks them in ``_load_state``.

    Parameters
    ----------
    cls : type
        A subclass of ``Schedule``.

    Returns
    -------
    cls, unchanged (so it works as a decorator).

    Raises
    ------
    TypeError
        If ``cls`` is not a ``Schedule`` subclass.
    ValueError
        If the name is a built-in schedule's or is registered to another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Schedule)) or cls is Schedule:
        raise TypeError(f"register needs a subclass of gdcore.schedules.Schedule, got "
                        f"{cls!r}")
    name = cls.__name__
    known = _SCHEDULES.get(name)
    if known is not None and known is not cls:
        what = "a built-in schedule" if name in _BUILTIN else f"{known!r}"
        raise ValueError(f"schedule name {name!r} is already taken by {what}; rename the "
                         f"class")
    _SCHEDULES[name] = cls
    return cls


def from_state_dict(d: _MappingType[str, Any]) -> Schedule:
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
        raise ValueError(f"unknown schedule type {name!r}; known: {', '.join(_SCHEDULES)} "
                         f"(a subclass of Schedule loads once decorated with "
                         f"gdcore.schedules.register)")
    params, state = d["params"], d["state"]
    if isinstance(params, Mapping) and "unit" in cls._param_names and "unit" not in params:
        params = dict(params, unit="epoch")   # saved before schedules had a unit
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

