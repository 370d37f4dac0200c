"""Optimizers over flat parameter buffers, with ``torch.optim``'s rules and defaults.

::

    opt = gd.optim.Adam(lr=1e-3)
    opt.step(params, grads)          # in place; state allocated on the first step
    opt.lr = 1e-4                    # settable between steps (schedules)
    saved = opt.state_dict()         # state arrays, step count, hyperparameters
    opt.load_state_dict(saved)

``params`` is a 1-D C-contiguous float32/float64 buffer updated in place (an
``MLP``'s ``net.params``); ``grads`` the matching gradient, never modified.  The
state buffers take the parameters' dtype.  Each step is one fused kernel call
(``gdcore.kernels.<name>_update``, or the NumPy twin with ``backend="reference"``);
the class only counts steps and keeps the state.  Invalid hyperparameters are
rejected at construction, as PyTorch rejects them, except that ``eps`` must be > 0
(PyTorch allows 0, which turns a zero gradient into 0/0 = NaN).
"""
import types
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from . import _backends, _constants
from . import _validation as v
from . import reference as _reference
from ._typing import ArrayLike, FloatArray, NDArray, Threads
from .reference.optimizers import adam_step_scalars

__all__ = ["Optimizer", "SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW"]


class Optimizer:
    """Base class: hyperparameters, step count and state of one flat buffer.

    Subclasses define ``kernel`` (the update's name in gdcore.kernels), ``_native``
    (its native update loop, a name of ``gdcore._constants.OPTIMIZERS``, whose scalar
    and state layouts the native train step reads), ``_defaults`` (ordered
    hyperparameter names and torch's defaults), ``_check`` (validation) and
    ``_kernel_kwargs`` / ``_native_scalars`` (the per-step arguments).
    """

    kernel: str = None      # type: ignore[assignment]  # set by every subclass
    _native: str = None     # type: ignore[assignment]  # set by every subclass
    _defaults: Dict[str, Any] = {}
    _state_options: Tuple[str, ...] = ()   # hyperparameters that shape the state

    def __init__(self, backend: str = "native", **hyperparameters: Any) -> None:
        self.backend = _backends.check(backend)
        self._hyper = self._check(dict(self._defaults, **hyperparameters))
        self._state: Dict[str, FloatArray] = {}
        self._step_count = 0
        self._state_params = None    # the buffer the state was last checked against
        self._plan = None            # cached _native_plan() of the current state
        self._scalars = None         # cached step-independent scalars (reset with lr)

    # -- hyperparameters ------------------------------------------------------

    def __getattr__(self, name):
        hyper = self.__dict__.get("_hyper")
        if hyper is not None and name in hyper:
            return hyper[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    @property
    def lr(self) -> float:
        return self._hyper["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self._hyper["lr"] = v.check_float(value, "lr", 0.0)
        self._scalars = None

    def __setattr__(self, name, value):
        hyper = self.__dict__.get("_hyper")
        if hyper is not None and name in hyper and name != "lr":
            raise AttributeError(f"{name} is fixed at construction; only lr can change "
                                 f"between steps")
        object.__setattr__(self, name, value)

    @property
    def hyperparameters(self) -> Dict[str, Any]:
        """A copy of the hyperparameters."""
        return dict(self._hyper)

    def __repr__(self):
        args = ", ".join(f"{k}={val!r}" for k, val in self._hyper.items())
        return f"{type(self).__name__}({args})"

    # -- state ----------------------------------------------------------------

    @property
    def state(self) -> Mapping[str, FloatArray]:
        """The state buffers by name, as a read-only mapping.

        The arrays are the live buffers the next step updates: their values may be read
        (and written, for surgery), but the mapping cannot be changed, so a buffer of
        another length or dtype can never reach the native update.  Replace the state
        through ``load_state_dict``, which checks and copies it.  Each native use also
        checks every buffer's length, dtype, contiguity and writability."""
        return types.MappingProxyType(self._state)

    @property
    def step_count(self) -> int:
        """Updates made so far (the ``t`` of bias corrections and rate decays)."""
        return self._step_count

    @step_count.setter
    def step_count(self, value: int) -> None:
        self._step_count = v.check_int(value, "step_count", low=0, high=v.MAX_STEP)

    # -- pickling -------------------------------------------------------------

    def __getstate__(self):
        """Hyperparameters, step count and state buffers; the caches tied to one
        parameter buffer are dropped and rebuilt on the next step."""
        state = dict(self.__dict__)
        state.pop("_busy", None)
        state.update(_state_params=None, _plan=None, _scalars=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    # -- stepping -------------------------------------------------------------

    def _ensure_state(self, params):
        """Allocate the state on the first step; check it fits ``params`` afterwards."""
        if params is self._state_params:
            return
        if not self._state and self._step_count == 0:
            state_options = {k: self._hyper[k] for k in self._state_options}
            self._state = _reference.optimizer_state(self.kernel[: -len("_update")], params,
                                                    **state_options)
        for buf in self._state.values():
            if buf.shape != params.shape or buf.dtype != params.dtype:
                raise ValueError(
                    f"params has shape {params.shape} and dtype {params.dtype}, but this "
                    f"optimizer's state was made for shape {buf.shape} and dtype "
                    f"{buf.dtype}; use one optimizer per parameter buffer")
        self._state_params = params
        self._plan = None

    def prepare(self, params: FloatArray) -> Mapping[str, FloatArray]:
        """Allocate the state for ``params`` (before the first step), or check that the
        state fits them (length and dtype); returns the ``state`` mapping.

        For code that runs the update itself rather than through ``step`` (the
        network's training step, its NumPy twin, the distributed loop).  Raises
        ValueError when the state was made for a buffer of another length or dtype."""
        self._ensure_state(params)
        return self.state

    def kernel_arguments(self, step: int) -> Dict[str, Any]:
        """The keyword arguments of the update kernel ``kernel`` for update number
        ``step`` (1-based): the hyperparameters it takes, and ``step`` where it uses
        one.  The state buffers and ``n_threads`` are not included."""
        return self._kernel_kwargs(step)

    def step(self, params: FloatArray, grads: ArrayLike,
             n_threads: Threads = None) -> FloatArray:
        """One update of ``params`` in place from ``grads``; returns ``params``."""
        params = v.param_vector(params, "params")
        with self._using():
            fresh = not self._state
            try:
                self._ensure_state(params)
                update = getattr(_backends.kernels_for(self.backend), self.kernel)
                kwargs = self._kernel_kwargs(self._step_count + 1)
                update(params, grads, **self._state, **kwargs, n_threads=n_threads)
            except BaseException:
                # the kernels check everything before writing: only a state allocated
                # for this step can be left behind
                if fresh and self._state and self._step_count == 0:
                    self.reset()
                raise
            self._step_count += 1
        return params

    def _using(self):
        """The optimizer's lock, taken without waiting: an optimizer driven from two
        threads at once raises RuntimeError instead of corrupting its state."""
        return exclusive(self, f"this {type(self).__name__} optimizer")

    def _kernel_kwargs(self, step):
        kwargs = dict(self._hyper)
        for name in self._state_only:
            kwargs.pop(name, None)
        if self._uses_step:
            kwargs["step"] = step
        return kwargs

    _state_only: Tuple[str, ...] = ()
    _uses_step = True

    # -- state dict -----------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """The optimizer's full state: {'optimizer', 'hyperparameters', 'step', 'state'}.

        Arrays are copies; the dict holds only names, numbers and NumPy arrays, so it can
        be stored with ``numpy.savez`` and loaded without pickle."""
        return {
            "optimizer": type(self).__name__,
            "hyperparameters": dict(self._hyper),
            "step": self.step_count,
            "state": {name: buf.copy() for name, buf in self._state.items()},
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a ``state_dict``: hyperparameters, step count and state buffers."""
        try:
            name = state_dict["optimizer"]
            hyper = dict(state_dict["hyperparameters"])
            step = state_dict["step"]
            state = dict(state_dict["state"])
        except (KeyError, TypeError) as err:
            raise ValueError(f"not an optimizer state_dict: missing {err}") from None
        if name != type(self).__name__:
            raise ValueError(f"state_dict is for {name}, not {type(self).__name__}")
        unknown = set(hyper) - set(self._defaults)
        if unknown:
            raise ValueError(f"state_dict has unknown hyperparameters {sorted(unknown)}")
        hyper = self._check(dict(self._defaults, **hyper))
        step = v.check_int(step, "step", low=0, high=v.MAX_STEP)
        arrays = {}
        for key, buf in state.items():
            buf = np.asarray(buf)
            if buf.ndim != 1 or buf.dtype not in v.FLOAT_DTYPES:
                raise ValueError(f"state buffer {key!r} must be a 1-D float array, got "
                                 f"{buf.dtype} of shape {buf.shape}")
            arrays[key] = np.array(buf, copy=True, order="C")
        expected = set(_reference.optimizer_state(
            self.kernel[: -len("_update")], np.zeros(0),
            **{k: hyper[k] for k in self._state_options}))
        if step > 0 and expected and not arrays:
            raise ValueError("state_dict has steps but no state buffers")
        if arrays and set(arrays) != expected:
            raise ValueError(f"state_dict buffers {sorted(arrays)} do not match "
                             f"{type(self).__name__}'s {sorted(expected)}")
        self._hyper, self._step_count, self._state = hyper, step, arrays
        self._state_params = None
        self._plan = None
        self._scalars = None

    def reset(self) -> None:
        """Forget the state and the step count (the hyperparameters stay)."""
        self._state = {}
        self._step_count = 0
        self._state_params = None
        self._plan = None

    # -- native train step ----------------------------------------------------

    # -- the interface of the training loops (gdcore.training) ----------------------

    def snapshot(self) -> Tuple[Dict[str, FloatArray], int]:
        """Copies of the state buffers and the step count, for ``restore``."""
        return {k: buf.copy() for k, buf in self._state.items()}, self._step_count

    def restore(self, snapshot: Tuple[Dict[str, FloatArray], int]) -> None:
        """Put back the state and step count a ``snapshot()`` copied (in place, into the
        same buffers; no state in the snapshot resets the optimizer's)."""
        state, steps = snapshot
        if state:
            for k, buf in state.items():
                self._state[k][...] = buf
        elif self._state:
            self.reset()
        self._step_count = steps

    def native_plan(self, params: FloatArray
                    ) -> Tuple[int, int, List[Optional[FloatArray]]]:
        """(kind code, flags, state buffers) of the native train step for ``params``,
        allocating or checking the state first."""
        self._ensure_state(params)
        return self._native_plan()

    def native_scalars(self, n_steps: int, lr_at_step: Optional[Callable[[int], float]] = None
                       ) -> NDArray[np.float64]:
        """The float64 scalars of the next ``n_steps`` steps, (n_steps, N_SCALARS).

        ``lr_at_step``: a function of the step index (the number of updates before the
        step) giving that step's learning rate, for per-step schedules; ``lr`` is set
        to each in turn, so it ends at the last step's rate."""
        first = self._step_count + 1
        rows = []
        for step in range(first, first + n_steps):
            if lr_at_step is not None:
                self.lr = lr_at_step(step - 1)
            rows.append(self._native_scalars(step))
        return np.array(rows, dtype=np.float64).reshape(n_steps, _constants.N_SCALARS)

    def _native_plan(self):
        """(kind code, flags, state buffers in kernel order) for the native train step,
        computed once per state."""
        if self._plan is None:
            self._plan = self._make_plan()
        return self._plan

    def _make_plan(self):
        # the state buffers in the slot order of gdcore._constants.OPTIMIZER_STATE; a
        # missing one is None (the native step checks that the update does not need it)
        return (_constants.OPTIMIZERS.index(self._native), self._native_flags(),
                [self._state.get(k) for k in _constants.OPTIMIZER_STATE[self._native]])

    def _native_flags(self):
        """The integer option flags of the native update loop (0 unless overridden)."""
        return 0

    def _native_scalars(self, step):
        """The float64 scalars of step ``step`` for the native train step, in the slot
        order of ``gdcore._constants.OPTIMIZER_SCALARS[self._native]`` (padded with
        ``_padded`` to ``N_SCALARS`` values)."""
        raise NotImplementedError

    @staticmethod
    def _padded(values):
        return tuple(values) + (0.0,) * (_constants.N_SCALARS - len(values))


class exclusive:
    """Context manager marking ``obj`` busy for one thread, without waiting: a second
    thread entering while the first is inside raises RuntimeError.

    The mark is a key of ``obj.__dict__`` set with ``dict.setdefault``, which is atomic
    under the GIL; it exists only while a call runs, so an idle object pickles and
    copies as before.  It stays held while native code runs without the GIL."""

    __slots__ = ("obj", "what", "token")

    def __init__(self, obj, what):
        self.obj, self.what, self.token = obj, what, object()

    def __enter__(self):
        if self.obj.__dict__.setdefault("_busy", self.token) is not self.token:
            raise RuntimeError(f"{self.what} is in use by another thread; use one per "
                               f"thread (or serialise the calls with a lock)")
        return self

    def __exit__(self, *exc):
        del self.obj.__dict__["_busy"]
        return False


def _check_common(h, names):
    for name, low, low_open in names:
        h[name] = v.check_float(h[name], name, low, low_open=low_open)
    return h


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    ::

        g = grad + weight_decay * p
        if momentum != 0:
            b = g  (first step);   b = momentum * b + (1 - dampening) * g  (after)
            g = g + momentum * b  if nesterov  else  b
        p = p - lr * g

    Defaults of torch.optim.SGD: lr=1e-3, momentum=0, dampening=0, weight_decay=0,
    nesterov=False.
    """

    kernel = "sgd_update"
    _native = "sgd"
    _defaults = {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                 "nesterov": False}
    _state_options = ("momentum",)

    def __init__(self, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False,
                 backend: str = "native") -> None:
        super().__init__(backend, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)

    def _check(self, h):
        _check_common(h, [("lr", 0.0, False), ("momentum", 0.0, False),
                          ("weight_decay", 0.0, False)])
        h["dampening"] = v.check_float(h["dampening"], "dampening")
        h["nesterov"] = bool(h["nesterov"])
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        return h

    def _native_flags(self):
        return int(self._hyper["nesterov"])

    def _native_scalars(self, step):
        # (first step, later steps): only the buffer's initialisation depends on the step
        if self._scalars is None:
            h = self._hyper
            common = (h["lr"], h["momentum"], h["dampening"], h["weight_decay"])
            self._scalars = (self._padded(common + (1.0,)), self._padded(common + (0.0,)))
        return self._scalars[0] if step == 1 else self._scalars[1]


class Adagrad(Optimizer):
    """Adagrad.

    ::

        g = grad + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g^2        (s starts at initial_accumulator_value)
        p = p - clr * g / (sqrt(s) + eps)

    Defaults of torch.optim.Adagrad: lr=1e-2, lr_decay=0, weight_decay=0,
    initial_accumulator_value=0, eps=1e-10.
    """

    kernel = "adagrad_update"
    _native = "adagrad"
    _defaults = {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0,
                 "initial_accumulator_value": 0.0, "eps": 1e-10}
    _state_options = ("initial_accumulator_value",)
    _state_only = ("initial_accumulator_value",)

    def __init__(self, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10,
                 backend: str = "native") -> None:
        super().__init__(backend, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps)

    def _check(self, h):
        _check_common(h, [("lr", 0.0, False), ("lr_decay", 0.0, False),
                          ("weight_decay", 0.0, False),
                          ("initial_accumulator_value", 0.0, False), ("eps", 0.0, True)])
        return h

    def _native_scalars(self, step):
        h = self._hyper
        clr = h["lr"] / (1 + (step - 1) * h["lr_decay"])
        return self._padded((clr, h["eps"], h["weight_decay"]))


class Adadelta(Optimizer):
    """Adadelta (eps inside both square roots).

    ::

        g = grad + weight_decay * p
        v = rho * v + (1 - rho) * g^2
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta^2
        p = p - lr * delta

    Defaults of torch.optim.Adadelta: lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.
    """

    kernel = "adadelta_update"
    _native = "adadelta"
    _defaults = {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0}
    _uses_step = False

    def __init__(self, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, backend: str = "native") -> None:
        super().__init__(backend, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)

    def _check(self, h):
        _check_common(h, [("lr", 0.0, False), ("eps", 0.0, True), ("weight_decay", 0.0, False)])
        h["rho"] = v.check_float(h["rho"], "rho", 0.0, 1.0)
        return h

    def _native_scalars(self, step):
        if self._scalars is None:
            h = self._hyper
            self._scalars = self._padded((h["lr"], h["rho"], h["eps"], h["weight_decay"]))
        return self._scalars


class RMSprop(Optimizer):
    """RMSprop (eps outside the square root).

    ::

        g = grad + weight_decay * p
        v = alpha * v + (1 - alpha) * g^2
        centered:  m = m + (1 - alpha) (g - m);  avg = sqrt(v - m^2) + eps
        else:      avg = sqrt(v) + eps
        momentum > 0:  b = momentum * b + g / avg;  p = p - lr * b
        else:          p = p - lr * g / avg

    Defaults of torch.optim.RMSprop: lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0,
    momentum=0, centered=False.
    """

    kernel = "rmsprop_update"
    _native = "rmsprop"
    _defaults = {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0,
                 "momentum": 0.0, "centered": False}
    _state_options = ("momentum", "centered")
    _uses_step = False

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 backend: str = "native") -> None:
        super().__init__(backend, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered)

    def _check(self, h):
        _check_common(h, [("lr", 0.0, False), ("alpha", 0.0, False), ("eps", 0.0, True),
                          ("weight_decay", 0.0, False), ("momentum", 0.0, False)])
        h["centered"] = bool(h["centered"])
        return h

    def _native_scalars(self, step):
        if self._scalars is None:
            h = self._hyper
            self._scalars = self._padded((h["lr"], h["alpha"], h["eps"], h["weight_decay"],
                                          h["momentum"]))
        return self._scalars


class Adam(Optimizer):
    """Adam, with L2 weight decay coupled into the gradient.

    ::

        g = grad + weight_decay * p
        m = m + (1 - beta1) (g - m)
        v = beta2 * v + (1 - beta2) * g^2
        amsgrad: vmax = max(vmax, v), used in place of v below
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Defaults of torch.optim.Adam: lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
    weight_decay=0, amsgrad=False.
    """

    kernel = "adam_update"
    _native = "adam"
    _defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                 "amsgrad": False}
    _state_options = ("amsgrad",)
    _decoupled = False

    def __init__(self, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 backend: str = "native") -> None:
        super().__init__(backend, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)

    def _check(self, h):
        _check_common(h, [("lr", 0.0, False), ("eps", 0.0, True), ("weight_decay", 0.0, False)])
        h["betas"] = v.check_betas(h["betas"])
        h["amsgrad"] = bool(h["amsgrad"])
        return h

    def _native_flags(self):
        return int(self._decoupled)

    def _native_scalars(self, step):
        # the scalars of torch.optim.Adam's single-tensor step, in float64
        h = self._hyper
        beta1, beta2 = h["betas"]
        step_size, bias_correction2_sqrt = adam_step_scalars(h["lr"], beta1, beta2, step)
        decay_factor = 1 - h["lr"] * h["weight_decay"]
        return self._padded((beta1, beta2, h["eps"], h["weight_decay"], decay_factor,
                             step_size, bias_correction2_sqrt))


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay, applied before the moments.

    ::

        p = p * (1 - lr * weight_decay)
        then the Adam step with weight_decay = 0

    Defaults of torch.optim.AdamW: lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
    weight_decay=1e-2, amsgrad=False.
    """

    kernel = "adamw_update"
    _defaults = dict(Adam._defaults, weight_decay=1e-2)
    _decoupled = True

    def __init__(self, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 backend: str = "native") -> None:
        Optimizer.__init__(self, backend, lr=lr, betas=betas, eps=eps,
                           weight_decay=weight_decay, amsgrad=amsgrad)
