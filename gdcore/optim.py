"""Optimizers over flat parameter buffers, with ``torch.optim``'s rules and defaults.

::

    opt = gd.optim.Adam(lr=1e-3)
    opt.step(params, grads)          # in place; state allocated on the first step
    opt.lr = 1e-4                    # settable between steps (schedules)
    saved = opt.state_dict()         # state arrays, step count, hyperparameters
    opt.load_state_dict(saved)

``params`` is a 1-D C-contiguous float32/float64 buffer updated in place (an
``MLP``'s ``net.params``); ``grads`` the matching gradient, never modified unless
gradient clipping is set (``set_clipping``: clipped in place, as torch does).
Parameter groups (``set_param_groups``: per-layer rates, weight decay, frozen layers)
apply in a network's training step.  The
state buffers take the parameters' dtype.  Each step is one fused kernel call
(``gdcore.kernels.<name>_update``, or the NumPy twin with ``backend="reference"``);
the class only counts steps and keeps the state.  Invalid hyperparameters are
rejected at construction, as PyTorch rejects them, except that ``eps`` must be > 0
(PyTorch allows 0, which turns a zero gradient into 0/0 = NaN).
"""
import contextlib
import math
import types
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import _backends, _constants
from . import _validation as v
from . import reference as _reference
from ._typing import ArrayLike, Clip, FloatArray, GroupRow, IntArray, Layout, NDArray, Threads
from .reference.optimizers import (adam_step_scalars, nadam_mu_product, nadam_step_scalars,
                                   radam_step_scalars, rprop_options)

__all__ = ["Optimizer", "SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "NAdam",
           "Adamax", "RAdam", "Rprop"]


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
    _clip: Optional[Tuple[int, float, float]] = None   # (CLIP_ code, value, norm_type)
    _groups: Tuple[Any, ...] = ()     # parameter groups, as check_param_groups returns them
    _options_cache: Optional[Tuple[Any, Any]] = None   # (layout, native_options(layout))

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
        state.pop("_marks", None)
        state.update(_state_params=None, _plan=None, _scalars=None)
        state.pop("_options_cache", None)
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
        """One update of ``params`` in place from ``grads``; returns ``params``.

        With gradient clipping set (``set_clipping``), ``grads`` is first clipped in
        place, as ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_`` do (so it
        must then be a writable C-contiguous buffer of params' dtype), in a pass of its
        own; the training step of an MLP fuses it into the update.  Parameter groups
        select layers of a network, so they apply in ``MLP.train_step``,
        ``partial_fit`` and ``fit``: with groups set this raises ValueError."""
        params = v.param_vector(params, "params")
        if self._groups:
            raise ValueError("this optimizer has param_groups, which select layers of a "
                             "network: they apply in MLP.train_step, partial_fit and fit; "
                             "set_param_groups(None) to step a flat buffer")
        if self._clip is not None:
            grads = v.param_vector(grads, "grads")
            v.check_shape(grads, "grads", params.shape, "params.shape")
            if grads.dtype != params.dtype:
                raise TypeError(f"grads must have dtype {params.dtype} (params'), got "
                                f"{grads.dtype}")
        with self._using():
            fresh = not self._state
            try:
                self._ensure_state(params)
                kernels = _backends.kernels_for(self.backend)
                update = getattr(kernels, self.kernel)
                kwargs = self._kernel_kwargs(self._step_count + 1)
                if self._clip is not None:
                    v.check_no_overlap([("params", params), ("grads", grads)]
                                       + list(self._state.items()))
                    self._clip_grads(kernels, grads, n_threads)
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

    def _clip_grads(self, kernels, grads, n_threads):
        mode, value, norm_type = self._clip
        if mode == _CLIP_NORM:
            kernels.clip_grad_norm(grads, value, norm_type=norm_type, n_threads=n_threads)
        else:
            kernels.clip_grad_value(grads, value, n_threads=n_threads)

    # -- gradient clipping and parameter groups ---------------------------------------

    def set_clipping(self, clip_norm: Optional[float] = None, clip_value: Optional[float] = None,
                     norm_type: float = 2.0) -> None:
        """Clip the gradient before every update (``None, None``: no clipping).

        Parameters
        ----------
        clip_norm : float > 0, optional
            Scale the gradient by min(clip_norm / (total + 1e-6), 1), where total is
            its norm of order ``norm_type`` over all parameters that are updated (not
            frozen ones), as ``torch.nn.utils.clip_grad_norm_`` does (a NaN norm makes
            the gradient NaN, an infinite one makes it 0 or NaN:
            ``error_if_nonfinite=False``).
        clip_value : float > 0, optional
            Clamp every gradient element to [-clip_value, clip_value], as
            ``torch.nn.utils.clip_grad_value_``.  At most one of the two.
        norm_type : float > 0 or inf
            The order of the norm (2: Euclidean, inf: largest magnitude).

        In a network's training step the clipping is fused into the optimizer's one
        pass over the flat buffer (the norm is one read of the gradient before it), and
        ``net.grads`` holds the clipped gradient afterwards, as with torch.  The
        setting is saved by ``state_dict`` and checkpoints.  Changing it while another
        thread steps or fits with this optimizer raises RuntimeError.
        """
        with self._using():
            self._set_clipping(clip_norm, clip_value, norm_type)

    def _set_clipping(self, clip_norm, clip_value, norm_type):
        # without the lock: for fit, which holds it
        self._clip = check_clipping(clip_norm, clip_value, norm_type)
        self._options_cache = None

    @property
    def clipping(self) -> Dict[str, Optional[float]]:
        """{'clip_norm', 'clip_value', 'norm_type'} as set by ``set_clipping``."""
        if self._clip is None:
            return {"clip_norm": None, "clip_value": None, "norm_type": 2.0}
        mode, value, norm_type = self._clip
        return {"clip_norm": value if mode == _CLIP_NORM else None,
                "clip_value": value if mode == _CLIP_VALUE else None,
                "norm_type": norm_type}

    def set_param_groups(self, groups: Optional[Sequence[Mapping[str, Any]]]) -> None:
        """Per-layer settings of a network's parameters (None or []: none).

        ``groups`` is a list of dicts, each selecting parameters by
        ``'layers'`` (an int or a list of layer indices; default every layer) and
        ``'params'`` (``'all'``, ``'weights'`` or ``'biases'``; default ``'all'``) and
        setting any of

        * ``'lr_factor'`` (float >= 0): the rate of these parameters is lr_factor x
          the optimizer's ``lr`` (so a schedule, which sets ``lr``, scales every
          group's rate alike, as torch's schedulers scale every group's);
        * ``'weight_decay'`` (float >= 0): their weight decay instead of the
          optimizer's (torch's default decays every parameter, biases included;
          ``{'params': 'biases', 'weight_decay': 0.0}`` excludes the biases);
        * ``'frozen'`` (bool): no update at all, their state untouched and their
          gradient left out of the clipping norm.

        A later group overrides an earlier one's settings where they overlap, key by
        key.  The groups apply inside the one fused update of the flat buffer (each
        contiguous run of parameters with the same settings is one segment with its
        own row of step scalars).  The step count is the optimizer's, one for all
        groups: a layer unfrozen later continues with it (torch counts per tensor).
        The groups are saved by ``state_dict`` and checkpoints.  Changing them while
        another thread steps or fits with this optimizer raises RuntimeError.
        """
        with self._using():
            self._set_param_groups(groups)

    def _set_param_groups(self, groups):
        # without the lock: for fit, which holds it
        groups = check_param_groups(groups)
        for i, group in enumerate(groups):
            if "weight_decay" in group and "weight_decay" not in self._defaults:
                raise ValueError(f"param_groups[{i}] sets weight_decay, which "
                                 f"{type(self).__name__} does not have")
        self._groups = groups
        self._options_cache = None

    @property
    def param_groups(self) -> List[Dict[str, Any]]:
        """The parameter groups set by ``set_param_groups``, as a list of dicts."""
        return [dict(g, layers=list(g["layers"])) if "layers" in g else dict(g)
                for g in self._groups]

    def native_options(self, layout: Layout
                       ) -> Tuple[Clip, Optional[IntArray], Optional[List[GroupRow]]]:
        """(clip, segments, rows) of the native train step for a network whose layer
        l has weights params[w0:w1] and biases params[b0:b1], ``layout`` being the
        tuple of (w0, w1, b0, b1): ``clip`` None or (``CLIP_`` code, value, norm_type);
        without groups ``segments`` and ``rows`` are None, else ``segments`` is the
        (n, 3) int64 array of (start, stop, frozen) and ``rows`` the (lr_factor,
        weight_decay or None) of each segment (for ``native_scalars``)."""
        cache = self._options_cache
        if cache is not None and cache[0] == layout:
            return cache[1]
        segments = rows = None
        if self._groups:
            segments, rows = _segments(self._groups, layout)
        result = (self._clip, segments, rows)
        self._options_cache = (layout, result)
        return result

    @contextlib.contextmanager
    def _group_setting(self, row):
        """The hyperparameters of one group (lr x lr_factor, its weight decay) while
        inside; the optimizer's own afterwards."""
        lr_factor, weight_decay = row
        hyper, cache = self._hyper, self._scalars
        h = dict(hyper, lr=hyper["lr"] * lr_factor)
        if weight_decay is not None:
            h["weight_decay"] = weight_decay
        self.__dict__.update(_hyper=h, _scalars=None)
        try:
            yield
        finally:
            self.__dict__.update(_hyper=hyper, _scalars=cache)

    def group_scalars(self, step: int, rows: Sequence[GroupRow]) -> NDArray[np.float64]:
        """The float64 scalars of step ``step`` for each group row, concatenated."""
        out = []
        for row in rows:
            with self._group_setting(row):
                out.extend(self._native_scalars(step))
        return np.array(out, dtype=np.float64)

    def group_kwargs(self, step: int, row: GroupRow) -> Dict[str, Any]:
        """The reference update's keyword arguments of step ``step`` for one group row."""
        with self._group_setting(row):
            return self._kernel_kwargs(step)

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
            "clipping": self.clipping,
            "param_groups": self.param_groups,
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
        clipping = state_dict.get("clipping") or {}
        if not isinstance(clipping, dict):
            raise ValueError(f"state_dict's clipping must be a dict, got {clipping!r}")
        clip = check_clipping(clipping.get("clip_norm"), clipping.get("clip_value"),
                              clipping.get("norm_type", 2.0))
        groups = check_param_groups(state_dict.get("param_groups"))
        self._clip, self._groups, self._options_cache = clip, groups, None
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

    def native_scalars(self, n_steps: int,
                       lr_at_step: Optional[Callable[[int], float]] = None,
                       groups: Optional[Sequence[Any]] = None) -> NDArray[np.float64]:
        """The float64 scalars of the next ``n_steps`` steps, (n_steps, N_SCALARS).

        ``lr_at_step``: a function of the step index (the number of updates before the
        step) giving that step's learning rate, for per-step schedules; ``lr`` is set
        to each in turn, so it ends at the last step's rate.  ``groups``: the rows of
        ``native_options``; then each step has one row per group,
        (n_steps, len(groups) * N_SCALARS)."""
        first = self._step_count + 1
        rows = []
        for step in range(first, first + n_steps):
            if lr_at_step is not None:
                self.lr = lr_at_step(step - 1)
            rows.append(self._native_scalars(step) if groups is None
                        else self.group_scalars(step, groups))
        width = _constants.N_SCALARS * (1 if groups is None else len(groups))
        return np.array(rows, dtype=np.float64).reshape(n_steps, width)

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


_CLIP_NORM = _constants.CLIP_MODES.index("norm")
_CLIP_VALUE = _constants.CLIP_MODES.index("value")
_GROUP_KEYS = ("layers", "params", "lr_factor", "weight_decay", "frozen")


def check_clipping(clip_norm: Any = None, clip_value: Any = None, norm_type: Any = 2.0) -> Clip:
    """The checked clipping options as (``CLIP_`` code, value, norm_type), or None for no
    clipping; ValueError/TypeError naming the argument otherwise."""
    if isinstance(norm_type, (int, float, np.floating)) and norm_type == math.inf:
        norm_type = math.inf
    else:
        norm_type = v.check_float(norm_type, "norm_type", 0.0, low_open=True)
    for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be a real number > 0 or None, got {value!r}")
    if clip_norm is not None and clip_value is not None:
        raise ValueError(f"clip_norm and clip_value cannot both be set (got clip_norm="
                         f"{clip_norm!r}, clip_value={clip_value!r}); choose one")
    if clip_norm is not None:
        return (_CLIP_NORM, v.check_float(clip_norm, "clip_norm", 0.0, low_open=True),
                norm_type)
    if clip_value is not None:
        return (_CLIP_VALUE, v.check_float(clip_value, "clip_value", 0.0, low_open=True),
                norm_type)
    return None


def check_param_groups(groups: Any) -> Tuple[Dict[str, Any], ...]:
    """The checked parameter groups (see ``Optimizer.set_param_groups``) as a tuple of
    dicts; None gives ()."""
    if groups is None:
        return ()
    if isinstance(groups, (dict, str)) or not hasattr(groups, "__iter__"):
        raise TypeError(f"param_groups must be a list of dicts, got {type(groups).__name__}")
    checked = []
    for i, group in enumerate(groups):
        name = f"param_groups[{i}]"
        if not isinstance(group, dict):
            raise TypeError(f"{name} must be a dict, got {type(group).__name__}")
        unknown = sorted(set(group) - set(_GROUP_KEYS), key=str)
        if unknown:
            raise ValueError(f"{name} has unknown keys {unknown}; the keys are "
                             f"{', '.join(_GROUP_KEYS)}")
        c: Dict[str, Any] = {}
        if "layers" in group:
            layers = group["layers"]
            layers = [layers] if isinstance(layers, (int, np.integer)) else layers
            try:
                layers = list(layers)
            except TypeError:
                raise TypeError(f"{name}['layers'] must be an int or a list of ints, got "
                                f"{type(group['layers']).__name__}") from None
            c["layers"] = tuple(sorted({v.check_int(x, f"{name}['layers']", low=0)
                                        for x in layers}))
        c["params"] = v.check_name(group.get("params", "all"), f"{name}['params']",
                                   ("all", "weights", "biases"))
        if "lr_factor" in group:
            c["lr_factor"] = v.check_float(group["lr_factor"], f"{name}['lr_factor']", 0.0)
        if "weight_decay" in group:
            c["weight_decay"] = v.check_float(group["weight_decay"],
                                              f"{name}['weight_decay']", 0.0)
        if "frozen" in group:
            if not isinstance(group["frozen"], (bool, np.bool_)):
                raise TypeError(f"{name}['frozen'] must be a bool, got {group['frozen']!r}")
            c["frozen"] = bool(group["frozen"])
        if not {"lr_factor", "weight_decay", "frozen"} & set(c):
            raise ValueError(f"{name} sets none of lr_factor, weight_decay, frozen")
        checked.append(c)
    return tuple(checked)


def _segments(groups, layout):
    """The (n, 3) int64 (start, stop, frozen) segments and their (lr_factor,
    weight_decay) rows for checked ``groups`` over a network ``layout`` (see
    ``Optimizer.native_options``): adjacent parameters with equal settings merge."""
    n_layers = len(layout)
    for i, group in enumerate(groups):
        bad = [l for l in group.get("layers", ()) if l >= n_layers]
        if bad:
            raise ValueError(f"param_groups[{i}]['layers'] names layer {bad[0]}, but the "
                             f"network has {n_layers} layers (0 to {n_layers - 1})")
    segments, rows = [], []
    for l, (w0, w1, b0, b1) in enumerate(layout):
        for start, stop, kind in ((w0, w1, "weights"), (b0, b1, "biases")):
            lr_factor, weight_decay, frozen = 1.0, None, False
            for group in groups:
                if (l in group.get("layers", (l,))) and group["params"] in ("all", kind):
                    lr_factor = group.get("lr_factor", lr_factor)
                    weight_decay = group.get("weight_decay", weight_decay)
                    frozen = group.get("frozen", frozen)
            row = (lr_factor, weight_decay)
            if segments and segments[-1][1] == start and segments[-1][2] == frozen and (
                    frozen or rows[-1] == row):
                segments[-1][1] = stop
            else:
                segments.append([start, stop, frozen])
                rows.append(row)
    return np.array(segments, dtype=np.int64).reshape(-1, 3), rows


def busy_marks(obj):
    """The small dict that holds ``obj``'s busy mark (see ``exclusive``), made on first
    use.  A dict of its own, not a key of ``obj.__dict__``: setting and deleting a key
    on every step would make CPython rebuild the instance dict, a large one, every few
    steps."""
    marks = obj.__dict__.get("_marks")
    if marks is None:
        marks = obj.__dict__.setdefault("_marks", {})
    return marks


class exclusive:
    """Context manager marking ``obj`` busy for one thread, without waiting: a second
    thread entering while the first is inside raises RuntimeError.

    The mark is a key of ``busy_marks(obj)`` set with ``dict.setdefault``, which is
    atomic under the GIL; it exists only while a call runs, and pickling leaves the
    marks out, so an idle object pickles and copies as before.  It stays held while
    native code runs without the GIL."""

    __slots__ = ("marks", "what", "token")

    def __init__(self, obj, what):
        self.marks, self.what, self.token = busy_marks(obj), what, object()

    def __enter__(self):
        if self.marks.setdefault("busy", self.token) is not self.token:
            raise RuntimeError(f"{self.what} is in use by another thread; use one per "
                               f"thread (or serialise the calls with a lock)")
        return self

    def __exit__(self, *exc):
        del self.marks["busy"]
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


class NAdam(Optimizer):
    """NAdam: Adam with Nesterov momentum and torch's momentum schedule.

    ::

        decoupled_weight_decay:  p = p * (1 - lr * weight_decay)
        else:                    g = grad + weight_decay * p
        mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay));  P_t = mu_1 ... mu_t
        m = m + (1 - beta1) (g - m);  v = beta2 v + (1 - beta2) g^2
        denom = sqrt(v / (1 - beta2^t)) + eps
        p = p - lr (1 - mu_t) / (1 - P_t) * g / denom
        p = p - lr mu_{t+1} / (1 - P_t mu_{t+1}) * m / denom

    Defaults of torch.optim.NAdam: lr=2e-3, betas=(0.9, 0.999), eps=1e-8,
    weight_decay=0, momentum_decay=4e-3, decoupled_weight_decay=False.

    torch keeps the product P_t as per-parameter state, updated by one multiplication
    per step.  Here it is a function of the step count: the same running product, in
    float64, computed in Python (cached, one multiplication per step), so the step
    count in ``state_dict``, snapshots, pickles and checkpoints carries it.  PyTorch
    keeps it in its default dtype: with ``torch.get_default_dtype()`` float64 the two
    products agree bitwise; with torch's float32 default, P_t is rounded to float32 at
    every step, and the two coefficients above differ from these float64 ones by a
    relative 1.3e-8 at most over the first 1000 steps (default betas and
    momentum_decay), below float32's resolution: PyTorch's float32 scalar arithmetic,
    not a difference in the update rule.
    """

    kernel = "nadam_update"
    _native = "nadam"
    _defaults = {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                 "momentum_decay": 4e-3, "decoupled_weight_decay": False}

    def __init__(self, lr: float = 2e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, backend: str = "native") -> None:
        super().__init__(backend, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         momentum_decay=momentum_decay,
                         decoupled_weight_decay=decoupled_weight_decay)

    def _check(self, h):
        _check_common(h, [("lr", 0.0, False), ("eps", 0.0, True), ("weight_decay", 0.0, False),
                          ("momentum_decay", 0.0, False)])
        h["betas"] = v.check_betas(h["betas"])
        h["decoupled_weight_decay"] = bool(h["decoupled_weight_decay"])
        return h

    def mu_product(self, steps: Optional[int] = None) -> float:
        """torch's ``mu_product`` after ``steps`` steps (default: ``step_count``)."""
        steps = self._step_count if steps is None else steps
        beta1, momentum_decay = self._hyper["betas"][0], self._hyper["momentum_decay"]
        cache = self.__dict__.get("_mu_cache")
        if cache is not None and cache[:2] == (beta1, momentum_decay) and cache[2] <= steps:
            product = nadam_mu_product(beta1, momentum_decay, steps, cache[2], cache[3])
        else:
            product = nadam_mu_product(beta1, momentum_decay, steps)
        self._mu_cache = (beta1, momentum_decay, steps, product)
        return product

    def _kernel_kwargs(self, step):
        kwargs = super()._kernel_kwargs(step)
        kwargs["mu_product"] = self.mu_product(step - 1)
        return kwargs

    def _native_flags(self):
        return int(self._hyper["decoupled_weight_decay"])

    def _native_scalars(self, step):
        h = self._hyper
        beta1, beta2 = h["betas"]
        bias_correction2, grad_coef, exp_avg_coef, _ = nadam_step_scalars(
            h["lr"], beta1, beta2, h["momentum_decay"], step, self.mu_product(step - 1))
        return self._padded((beta1, beta2, h["eps"], h["weight_decay"],
                             1 - h["lr"] * h["weight_decay"], bias_correction2, grad_coef,
                             exp_avg_coef))


class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm.

    ::

        g = grad + weight_decay * p
        m = m + (1 - beta1) (g - m)
        u = max(beta2 * u, abs(g) + eps)
        p = p - lr / (1 - beta1^t) * m / u

    Defaults of torch.optim.Adamax: lr=2e-3, betas=(0.9, 0.999), eps=1e-8,
    weight_decay=0.
    """

    kernel = "adamax_update"
    _native = "adamax"
    _defaults = {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}

    def __init__(self, lr: float = 2e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, backend: str = "native") -> None:
        super().__init__(backend, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _check(self, h):
        _check_common(h, [("lr", 0.0, False), ("eps", 0.0, True), ("weight_decay", 0.0, False)])
        h["betas"] = v.check_betas(h["betas"])
        return h

    def _native_scalars(self, step):
        h = self._hyper
        beta1, beta2 = h["betas"]
        clr = h["lr"] / (1 - beta1 ** step)
        return self._padded((beta1, beta2, h["eps"], h["weight_decay"], clr))


class RAdam(Optimizer):
    """RAdam: Adam with the variance rectification.

    ::

        decoupled_weight_decay:  p = p * (1 - lr * weight_decay)
        else:                    g = grad + weight_decay * p
        m = m + (1 - beta1) (g - m);  v = beta2 v + (1 - beta2) g^2
        rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        rho_t > 5:  r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                    p = p - m / (1 - beta1^t) * lr * sqrt(1 - beta2^t) / (sqrt(v) + eps) * r
        else:       p = p - m / (1 - beta1^t) * lr

    Defaults of torch.optim.RAdam: lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
    weight_decay=0, decoupled_weight_decay=False.  rho_t and r depend on the step
    count alone and are computed in Python in float64, as PyTorch computes them from
    its step (a float of its default dtype, exact for the step counts used).  With the
    default betas the first 5 steps are unrectified.
    """

    kernel = "radam_update"
    _native = "radam"
    _defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                 "decoupled_weight_decay": False}

    def __init__(self, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 decoupled_weight_decay: bool = False, backend: str = "native") -> None:
        super().__init__(backend, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         decoupled_weight_decay=decoupled_weight_decay)

    def _check(self, h):
        _check_common(h, [("lr", 0.0, False), ("eps", 0.0, True), ("weight_decay", 0.0, False)])
        h["betas"] = v.check_betas(h["betas"])
        h["decoupled_weight_decay"] = bool(h["decoupled_weight_decay"])
        return h

    def _native_flags(self):
        return int(self._hyper["decoupled_weight_decay"])

    def _native_scalars(self, step):
        h = self._hyper
        beta1, beta2 = h["betas"]
        bias_correction1, bias_correction2_sqrt, rect = radam_step_scalars(beta1, beta2, step)
        return self._padded((beta1, beta2, h["eps"], h["weight_decay"], h["lr"],
                             bias_correction1, bias_correction2_sqrt, rect))


class Rprop(Optimizer):
    """Rprop: resilient backpropagation, which uses only the sign of the gradient.

    ::

        f = etaplus if g * prev > 0, etaminus if < 0, else 1
        step_size = clip(step_size * f, step_sizes[0], step_sizes[1])
        g = 0 where f == etaminus           (no move after a sign change)
        p = p - sign(g) * step_size;  prev = g

    Defaults of torch.optim.Rprop: lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50).
    As in PyTorch, ``lr`` is only the initial step size of every element (read at the
    first step): changing it later, by hand or by a schedule, has no effect.  Requires
    0 < etas[0] < 1 < etas[1] and 0 <= step_sizes[0] <= step_sizes[1] (PyTorch checks
    only the etas).  With parameter groups (``set_param_groups``) a group's
    ``lr_factor`` scales its initial step size, as a torch parameter group's ``lr``
    does; it is applied before the first step of a network.
    """

    kernel = "rprop_update"
    _native = "rprop"
    _defaults = {"lr": 1e-2, "etas": (0.5, 1.2), "step_sizes": (1e-6, 50)}
    _state_options = ("lr",)
    _state_only = ("lr",)
    _uses_step = False

    def __init__(self, lr: float = 1e-2, etas: Tuple[float, float] = (0.5, 1.2),
                 step_sizes: Tuple[float, float] = (1e-6, 50), backend: str = "native"
                 ) -> None:
        super().__init__(backend, lr=lr, etas=etas, step_sizes=step_sizes)

    def _check(self, h):
        _check_common(h, [("lr", 0.0, False)])
        etaminus, etaplus, size_min, size_max = rprop_options(h["etas"], h["step_sizes"])
        h["etas"], h["step_sizes"] = (etaminus, etaplus), (size_min, size_max)
        return h

    def _native_scalars(self, step):
        h = self._hyper
        return self._padded(h["etas"] + h["step_sizes"])

    def native_options(self, layout: Layout
                       ) -> Tuple[Clip, Optional[IntArray], Optional[List[GroupRow]]]:
        # lr is only the initial step size: before the first step, each group's segment
        # of the freshly made step_size starts at lr x its lr_factor
        result = super().native_options(layout)
        _, segments, rows = result
        step_size = self._state.get("step_size")
        if segments is not None and rows is not None and self._step_count == 0 \
                and step_size is not None:
            for (start, stop, _), (lr_factor, _) in zip(segments, rows):
                step_size[start:stop] = self._hyper["lr"] * lr_factor
        return result
