"""Optimizer updates with the exact rules and defaults of ``torch.optim``.

Each function performs one step on flat 1-D buffers, in place: ``params`` and every
state buffer are updated, ``grads`` is only read.  The state is passed explicitly
(``optimizer_state`` allocates it) and ``step`` is the 1-based number of the step
being taken.  Scalars that depend on the step (bias corrections, the decayed rate) are
Python floats (float64); array arithmetic runs in the buffers' dtype, operation for
operation as PyTorch's single-tensor path does it, e.g. ``addcmul_(a, b, value=c)``
is ``self + (c * a) * b`` and ``addcdiv_(a, b, value=c)`` is ``self + c * (a / b)``.
Where PyTorch accepts ``eps = 0``, gdcore requires ``eps > 0``: with eps = 0 a zero
gradient gives 0/0 = NaN.
"""
import math
from typing import Any, Dict, Optional, Tuple, cast

import numpy as np

from .. import _constants
from .. import _validation as v
from .._typing import ArrayLike, FloatArray, Threads

__all__ = ["optimizer_state", "sgd_update", "adagrad_update", "adadelta_update",
           "rmsprop_update", "adam_update", "adamw_update", "nadam_update", "adamax_update",
           "radam_update", "rprop_update"]
__all__ += ["clip_grad_norm", "clip_grad_value"]


def _lerp_(start, end, weight):
    """start <- start + weight (end - start), as torch.lerp_ computes it: the weight
    is cast to the dtype and the other side is used for weights >= 0.5."""
    w = start.dtype.type(weight)
    if abs(w) < 0.5:
        start += w * (end - start)
    else:
        start[...] = end - (end - start) * (start.dtype.type(1) - w)


def _check_step(step: Any) -> int:
    return v.check_int(step, "step", low=1)


def _adam_family_options(step: Any, lr: Any, betas: Any, eps: Any, weight_decay: Any
                         ) -> Tuple[int, float, float, float, float, float]:
    """The checked (step, lr, beta1, beta2, eps, weight_decay) of the Adam family, in
    that order of checking."""
    step, lr = _check_step(step), v.check_float(lr, "lr", 0.0)
    beta1, beta2 = v.check_betas(betas)
    return (step, lr, beta1, beta2, v.check_float(eps, "eps", 0.0, low_open=True),
            v.check_float(weight_decay, "weight_decay", 0.0))


def _check_buffers(params: Any, grads: Any, **state: Any) -> Tuple[FloatArray, FloatArray]:
    params = v.param_vector(params, "params")
    grads = v.grad_vector(grads, params)
    v.check_no_overlap([("params", params), ("grads", grads)] + list(state.items()))
    return params, grads


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


# updates that run another's native loop, and so keep its state (names as in
# gdcore._constants.OPTIMIZER_STATE)
_STATE_LAYOUT = {"adamw": "adam"}


def optimizer_state(name: str, params: FloatArray, *, momentum: float = 0.0,
                    centered: bool = False, amsgrad: bool = False,
                    initial_accumulator_value: float = 0.0,
                    lr: float = 1e-2) -> Dict[str, FloatArray]:
    """Fresh state buffers for optimizer ``name``, keyed by the update's argument names.

    ``sgd``: momentum_buffer (when momentum != 0); ``adagrad``: state_sum filled with
    initial_accumulator_value; ``adadelta``: square_avg, acc_delta; ``rmsprop``:
    square_avg, momentum_buffer (momentum > 0), grad_avg (centered); ``adam``/``adamw``:
    exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad); ``nadam``/``radam``: exp_avg,
    exp_avg_sq; ``adamax``: exp_avg, exp_inf; ``rprop``: prev and step_size, filled
    with ``lr`` (torch.optim.Rprop's initial step size; the only use of ``lr``).  All
    zeros of params' dtype except state_sum and step_size.  Use as
    ``adam_update(params, grads, **state, step=1)``.  The names and their order are
    those of ``gdcore._constants.OPTIMIZER_STATE`` (AdamW keeps Adam's).
    """
    v.check_name(name, "name", tuple(_constants.OPTIMIZER_STATE) + tuple(_STATE_LAYOUT))
    params = v.param_vector(params, "params")
    slots = _constants.OPTIMIZER_STATE[_STATE_LAYOUT.get(name, name)]
    # the optional buffers, present only with the option that uses them
    wanted = {}
    if "momentum_buffer" in slots:
        wanted["momentum_buffer"] = v.check_float(momentum, "momentum", 0.0) > 0
    wanted["grad_avg"] = bool(centered)
    wanted["max_exp_avg_sq"] = bool(amsgrad)
    fill = {}
    if "state_sum" in slots:
        fill["state_sum"] = v.check_float(initial_accumulator_value,
                                          "initial_accumulator_value", 0.0)
    if "step_size" in slots:
        fill["step_size"] = v.check_float(lr, "lr", 0.0)
    return {key: np.full_like(params, fill.get(key, 0.0))
            for key in slots if wanted.get(key, True)}


def sgd_update(params: FloatArray, grads: ArrayLike,
               momentum_buffer: Optional[FloatArray] = None, *, step: int, lr: float = 1e-3,
               momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
               nesterov: bool = False, n_threads: Threads = None) -> FloatArray:
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    ::

        g = grad + weight_decay * p
        if momentum != 0:
            b = g                                   at step 1
            b = momentum * b + (1 - dampening) * g  afterwards
            g = g + momentum * b   if nesterov else   b
        p = p - lr * g

    Defaults are torch.optim.SGD's.  Nesterov needs momentum > 0 and dampening = 0.
    """
    v.check_threads(n_threads)
    step = _check_step(step)
    lr = v.check_float(lr, "lr", 0.0)
    momentum = v.check_float(momentum, "momentum", 0.0)
    dampening = v.check_float(dampening, "dampening")
    weight_decay = v.check_float(weight_decay, "weight_decay", 0.0)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("nesterov requires momentum > 0 and dampening = 0, got "
                         f"momentum={momentum}, dampening={dampening}")
    params, grads = _check_buffers(params, grads, momentum_buffer=momentum_buffer)
    if momentum != 0:
        v.state_vector(momentum_buffer, "momentum_buffer", params, "when momentum != 0")

    g = grads
    if weight_decay != 0:
        g = g + weight_decay * params
    if momentum != 0:
        buf = cast(FloatArray, momentum_buffer)      # checked above
        if step == 1:
            buf[...] = g
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    params += -lr * g
    return params


def adagrad_update(params: FloatArray, grads: ArrayLike, state_sum: FloatArray, *, step: int,
                   lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                   eps: float = 1e-10, n_threads: Threads = None) -> FloatArray:
    """Adagrad.

    ::

        g = grad + weight_decay * p
        clr = lr / (1 + (step - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (sqrt(s) + eps)

    ``state_sum`` starts at ``initial_accumulator_value`` (see ``optimizer_state``).
    """
    v.check_threads(n_threads)
    step = _check_step(step)
    lr = v.check_float(lr, "lr", 0.0)
    lr_decay = v.check_float(lr_decay, "lr_decay", 0.0)
    weight_decay = v.check_float(weight_decay, "weight_decay", 0.0)
    eps = v.check_float(eps, "eps", 0.0, low_open=True)
    params, grads = _check_buffers(params, grads, state_sum=state_sum)
    v.state_vector(state_sum, "state_sum", params, "by Adagrad")

    g = grads
    if weight_decay != 0:
        g = g + weight_decay * params
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += g * g
    std = np.sqrt(state_sum) + eps
    params += -clr * (g / std)
    return params


def adadelta_update(params: FloatArray, grads: ArrayLike, square_avg: FloatArray,
                    acc_delta: FloatArray, *, lr: float = 1.0, rho: float = 0.9,
                    eps: float = 1e-6, weight_decay: float = 0.0,
                    n_threads: Threads = None) -> FloatArray:
    """Adadelta (eps inside both square roots).

    ::

        g = grad + weight_decay * p
        v = rho * v + (1 - rho) * g^2
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta^2
        p = p - lr * delta
    """
    v.check_threads(n_threads)
    lr = v.check_float(lr, "lr", 0.0)
    rho = v.check_float(rho, "rho", 0.0, 1.0)
    eps = v.check_float(eps, "eps", 0.0, low_open=True)
    weight_decay = v.check_float(weight_decay, "weight_decay", 0.0)
    params, grads = _check_buffers(params, grads, square_avg=square_avg, acc_delta=acc_delta)
    v.state_vector(square_avg, "square_avg", params, "by Adadelta")
    v.state_vector(acc_delta, "acc_delta", params, "by Adadelta")

    g = grads
    if weight_decay != 0:
        g = g + weight_decay * params
    square_avg *= rho
    square_avg += (1 - rho) * g * g
    std = np.sqrt(square_avg + eps)
    delta = np.sqrt(acc_delta + eps) / std * g
    acc_delta *= rho
    acc_delta += (1 - rho) * delta * delta
    params += -lr * delta
    return params


def rmsprop_update(params: FloatArray, grads: ArrayLike, square_avg: FloatArray,
                   momentum_buffer: Optional[FloatArray] = None,
                   grad_avg: Optional[FloatArray] = None, *, lr: float = 1e-2,
                   alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                   momentum: float = 0.0, centered: bool = False,
                   n_threads: Threads = None) -> FloatArray:
    """RMSprop (eps outside the square root).

    ::

        g = grad + weight_decay * p
        v = alpha * v + (1 - alpha) * g^2
        centered:  m = m + (1 - alpha) (g - m);  avg = sqrt(v - m^2) + eps
        else:      avg = sqrt(v) + eps
        momentum > 0:  b = momentum * b + g / avg;  p = p - lr * b
        else:          p = p - lr * g / avg
    """
    v.check_threads(n_threads)
    lr = v.check_float(lr, "lr", 0.0)
    alpha = v.check_float(alpha, "alpha", 0.0)
    eps = v.check_float(eps, "eps", 0.0, low_open=True)
    weight_decay = v.check_float(weight_decay, "weight_decay", 0.0)
    momentum = v.check_float(momentum, "momentum", 0.0)
    params, grads = _check_buffers(params, grads, square_avg=square_avg,
                                   momentum_buffer=momentum_buffer, grad_avg=grad_avg)
    v.state_vector(square_avg, "square_avg", params, "by RMSprop")
    if momentum > 0:
        v.state_vector(momentum_buffer, "momentum_buffer", params, "when momentum > 0")
    if centered:
        v.state_vector(grad_avg, "grad_avg", params, "when centered=True")

    g = grads
    if weight_decay != 0:
        g = g + weight_decay * params
    square_avg *= alpha
    square_avg += (1 - alpha) * g * g
    if centered:
        grad_avg = cast(FloatArray, grad_avg)       # checked above
        _lerp_(grad_avg, g, 1 - alpha)
        avg = np.sqrt(square_avg - grad_avg * grad_avg)
    else:
        avg = np.sqrt(square_avg)
    avg += eps
    if momentum > 0:
        momentum_buffer = cast(FloatArray, momentum_buffer)     # checked above
        momentum_buffer *= momentum
        momentum_buffer += g / avg
        params += -lr * momentum_buffer
    else:
        params += -lr * (g / avg)
    return params


def adam_step_scalars(lr: float, beta1: float, beta2: float, step: int) -> Tuple[float, float]:
    """(step_size, sqrt(bias_correction2)) of Adam's step ``step``, in float64, as
    torch.optim.Adam computes them: lr / (1 - beta1^t) and (1 - beta2^t) ** 0.5."""
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    return lr / bias_correction1, bias_correction2 ** 0.5


def _adam(params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, betas, eps,
          weight_decay, amsgrad, decoupled):
    step, lr, beta1, beta2, eps, weight_decay = _adam_family_options(
        step, lr, betas, eps, weight_decay)
    params, grads = _check_buffers(params, grads, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq,
                                   max_exp_avg_sq=max_exp_avg_sq)
    v.state_vector(exp_avg, "exp_avg", params, "by Adam")
    v.state_vector(exp_avg_sq, "exp_avg_sq", params, "by Adam")
    if amsgrad:
        v.state_vector(max_exp_avg_sq, "max_exp_avg_sq", params, "when amsgrad=True")

    g = grads
    if weight_decay != 0:
        if decoupled:
            params *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * params
    _lerp_(exp_avg, g, 1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g
    step_size, bias_correction2_sqrt = adam_step_scalars(lr, beta1, beta2, step)
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        denom = np.sqrt(max_exp_avg_sq) / bias_correction2_sqrt + eps
    else:
        denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
    params += -step_size * (exp_avg / denom)
    return params


def adam_update(params: FloatArray, grads: ArrayLike, exp_avg: FloatArray,
                exp_avg_sq: FloatArray, max_exp_avg_sq: Optional[FloatArray] = None, *,
                step: int, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                n_threads: Threads = None) -> FloatArray:
    """Adam, with L2 weight decay coupled into the gradient.

    ::

        g = grad + weight_decay * p
        m = m + (1 - beta1) (g - m)
        v = beta2 * v + (1 - beta2) * g^2
        amsgrad: vmax = max(vmax, v), used for v below
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    eps is added after the bias correction, and amsgrad keeps the maximum of the raw
    (uncorrected) second moment, as torch.optim.Adam does.
    """
    v.check_threads(n_threads)
    return _adam(params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, betas, eps,
                 weight_decay, amsgrad, decoupled=False)


def adamw_update(params: FloatArray, grads: ArrayLike, exp_avg: FloatArray,
                 exp_avg_sq: FloatArray, max_exp_avg_sq: Optional[FloatArray] = None, *,
                 step: int, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 n_threads: Threads = None) -> FloatArray:
    """AdamW: Adam with decoupled weight decay, applied before the moments.

    ::

        p = p * (1 - lr * weight_decay)
        then the Adam step of ``adam_update`` with weight_decay = 0.
    """
    v.check_threads(n_threads)
    return _adam(params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, betas, eps,
                 weight_decay, amsgrad, decoupled=True)


# ---- gradient clipping ---------------------------------------------------------------

def _check_norm_type(norm_type):
    if isinstance(norm_type, (int, float)) and norm_type == math.inf:
        return math.inf
    return v.check_float(norm_type, "norm_type", 0.0, low_open=True)


def grad_norm(grads: FloatArray, norm_type: float, active: Optional[ArrayLike] = None
              ) -> float:
    """The norm of order ``norm_type`` (> 0 or inf) of the 1-D ``grads`` over the
    elements where ``active`` is true (all without it), as the native step sums it:
    |g|^p in float64 over fixed blocks of max(NORM_BLOCK, ceil(n / NORM_MAX_BLOCKS))
    elements, element i of a block added in order into lane i mod NORM_LANES, the lanes
    added in lane order, the block sums in block order; inf: the largest |g| (NaN when
    any is NaN).  The same bits as the native norm."""
    x = np.abs(grads.astype(np.float64))
    if active is not None:
        x = np.where(active, x, 0.0)
    n = x.size
    if norm_type == math.inf:
        return float(np.max(x)) if n else 0.0
    terms = x * x if norm_type == 2 else (x if norm_type == 1 else x ** norm_type)
    bs = max(_constants.NORM_BLOCK, -(-n // _constants.NORM_MAX_BLOCKS))
    lanes = _constants.NORM_LANES
    total = 0.0
    for start in range(0, n, bs):
        block = terms[start:start + bs]
        block = np.concatenate([block, np.zeros(-len(block) % lanes)]).reshape(-1, lanes)
        block_sum = 0.0
        for lane in np.cumsum(block, axis=0)[-1]:   # sequential, as the native loop adds
            block_sum += float(lane)
        total += block_sum
    if norm_type == 1:
        return total
    if norm_type == 2:
        return math.sqrt(total)
    return total ** (1 / norm_type)


def clip_coef(max_norm: float, total: float, dtype: np.dtype[Any]) -> float:
    """torch.nn.utils.clip_grad_norm_'s factor in ``dtype``: clamp(max_norm /
    (total + 1e-6), max=1), evaluated as torch does (the reciprocal of the shifted
    norm times max_norm); NaN stays NaN and an infinite norm gives 0."""
    t = dtype.type
    with np.errstate(all="ignore"):
        c = (t(1) / (t(total) + t(1e-6))) * t(max_norm)
    return 1.0 if c > 1 else float(c)


def clip_grad_norm(grads: FloatArray, max_norm: float, *, norm_type: float = 2.0,
                   n_threads: Threads = None) -> float:
    """Scale ``grads`` in place so that its norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_`` (error_if_nonfinite=False) does, and return the
    norm before clipping.

    ::

        total = ||grads||_p            (p = norm_type > 0, or inf: max |g|)
        grads = grads * min(max_norm / (total + 1e-6), 1)

    The norm is summed in float64 (see ``grad_norm``), the factor computed in the
    gradient's dtype.  A NaN norm makes every gradient NaN and an infinite one makes
    the finite ones 0, as with torch.  ``max_norm`` must be > 0 and finite.
    """
    max_norm = v.check_float(max_norm, "max_norm", 0.0, low_open=True)
    norm_type = _check_norm_type(norm_type)
    grads = v.param_vector(grads, "grads")
    total = grad_norm(grads, norm_type)
    coef = clip_coef(max_norm, total, grads.dtype)
    if coef != 1:
        with np.errstate(invalid="ignore"):
            grads *= grads.dtype.type(coef)
    return total


def clip_grad_value(grads: FloatArray, clip_value: float, *, n_threads: Threads = None
                    ) -> FloatArray:
    """Clamp ``grads`` in place to [-clip_value, clip_value], as
    ``torch.nn.utils.clip_grad_value_`` does (NaN stays NaN); returns ``grads``.
    ``clip_value`` must be > 0 and finite."""
    clip_value = v.check_float(clip_value, "clip_value", 0.0, low_open=True)
    grads = v.param_vector(grads, "grads")
    c = grads.dtype.type(clip_value)
    with np.errstate(invalid="ignore"):
        np.clip(grads, -c, c, out=grads)
    return grads


def _decay(params, grads, lr, weight_decay, decoupled):
    """The weight decay of torch's Adam family: the parameters scaled in place by
    1 - lr * weight_decay (decoupled), or weight_decay * p added to the gradient."""
    if weight_decay == 0:
        return grads
    if decoupled:
        params *= 1 - lr * weight_decay
        return grads
    return grads + weight_decay * params


def _moments(exp_avg, exp_avg_sq, g, beta1, beta2):
    _lerp_(exp_avg, g, 1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g


def nadam_mu_product(beta1: float, momentum_decay: float, steps: int, done: int = 0,
                     product: float = 1.0) -> float:
    """mu_1 mu_2 ... mu_steps, multiplied in this order in float64: the ``mu_product``
    torch.optim.NAdam keeps after ``steps`` steps.  ``product`` given as the product of
    the first ``done`` factors continues it with the same multiplications."""
    for t in range(done + 1, steps + 1):
        product *= beta1 * (1.0 - 0.5 * (0.96 ** (t * momentum_decay)))
    return product


def nadam_step_scalars(lr: float, beta1: float, beta2: float, momentum_decay: float,
                       step: int, mu_product: float) -> Tuple[float, float, float, float]:
    """(bias_correction2, grad_coef, exp_avg_coef, mu_product after the step) of NAdam's
    step ``step``, in float64, as torch.optim.NAdam computes them from its
    ``mu_product`` before the step."""
    bias_correction2 = 1 - beta2 ** step
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
    mu_product = mu_product * mu
    grad_coef = -lr * (1.0 - mu) / (1.0 - mu_product)
    exp_avg_coef = (-lr * mu_next) / (1.0 - mu_product * mu_next)
    return bias_correction2, grad_coef, exp_avg_coef, mu_product


def nadam_update(params: FloatArray, grads: ArrayLike, exp_avg: FloatArray,
                 exp_avg_sq: FloatArray, *, step: int, lr: float = 2e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, mu_product: Optional[float] = None,
                 n_threads: Threads = None) -> FloatArray:
    """NAdam (Adam with Nesterov momentum and torch's momentum schedule).

    ::

        decoupled_weight_decay:  p = p * (1 - lr * weight_decay)
        else:                    g = grad + weight_decay * p
        mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay));  P_t = mu_1 ... mu_t
        m = m + (1 - beta1) (g - m);  v = beta2 v + (1 - beta2) g^2
        denom = sqrt(v / (1 - beta2^t)) + eps
        p = p - lr (1 - mu_t) / (1 - P_t) * g / denom
        p = p - lr mu_{t+1} / (1 - P_t mu_{t+1}) * m / denom

    ``mu_product`` is P_{t-1}, the product before this step (torch keeps it as
    per-parameter state); None computes it from the step number by the same running
    product in float64 (``nadam_mu_product``, O(step) work).
    """
    v.check_threads(n_threads)
    step, lr, beta1, beta2, eps, weight_decay = _adam_family_options(
        step, lr, betas, eps, weight_decay)
    momentum_decay = v.check_float(momentum_decay, "momentum_decay", 0.0)
    if mu_product is None:
        mu_product = nadam_mu_product(beta1, momentum_decay, step - 1)
    mu_product = v.check_float(mu_product, "mu_product", 0.0, 1.0)
    params, grads = _check_buffers(params, grads, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    v.state_vector(exp_avg, "exp_avg", params, "by NAdam")
    v.state_vector(exp_avg_sq, "exp_avg_sq", params, "by NAdam")

    g = _decay(params, grads, lr, weight_decay, decoupled_weight_decay)
    bias_correction2, grad_coef, exp_avg_coef, _ = nadam_step_scalars(
        lr, beta1, beta2, momentum_decay, step, mu_product)
    _moments(exp_avg, exp_avg_sq, g, beta1, beta2)
    denom = np.sqrt(exp_avg_sq / bias_correction2) + eps
    params += grad_coef * (g / denom)
    params += exp_avg_coef * (exp_avg / denom)
    return params


def adamax_update(params: FloatArray, grads: ArrayLike, exp_avg: FloatArray,
                  exp_inf: FloatArray, *, step: int, lr: float = 2e-3,
                  betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                  weight_decay: float = 0.0, n_threads: Threads = None) -> FloatArray:
    """Adamax (Adam with the infinity norm).

    ::

        g = grad + weight_decay * p
        m = m + (1 - beta1) (g - m)
        u = max(beta2 * u, abs(g) + eps)        (NaN wins, as torch.maximum)
        p = p - lr / (1 - beta1^t) * m / u
    """
    v.check_threads(n_threads)
    step, lr, beta1, beta2, eps, weight_decay = _adam_family_options(
        step, lr, betas, eps, weight_decay)
    params, grads = _check_buffers(params, grads, exp_avg=exp_avg, exp_inf=exp_inf)
    v.state_vector(exp_avg, "exp_avg", params, "by Adamax")
    v.state_vector(exp_inf, "exp_inf", params, "by Adamax")

    g = _decay(params, grads, lr, weight_decay, False)
    _lerp_(exp_avg, g, 1 - beta1)
    exp_inf *= beta2
    np.maximum(exp_inf, np.abs(g) + eps, out=exp_inf)
    clr = lr / (1 - beta1 ** step)
    params += -clr * (exp_avg / exp_inf)
    return params


def radam_step_scalars(beta1: float, beta2: float, step: int) -> Tuple[float, float, float]:
    """(bias_correction1, sqrt(bias_correction2), rect) of RAdam's step ``step`` in
    float64, as torch.optim.RAdam computes them; rect is 0.0 on the steps without the
    variance rectification (rho_t <= 5)."""
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
    rect = 0.0
    if rho_t > 5.0:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
    return bias_correction1, bias_correction2 ** 0.5, rect


def radam_update(params: FloatArray, grads: ArrayLike, exp_avg: FloatArray,
                 exp_avg_sq: FloatArray, *, step: int, lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False,
                 n_threads: Threads = None) -> FloatArray:
    """RAdam (Adam with the variance rectification).

    ::

        decoupled_weight_decay:  p = p * (1 - lr * weight_decay)
        else:                    g = grad + weight_decay * p
        m = m + (1 - beta1) (g - m);  v = beta2 v + (1 - beta2) g^2
        rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        rho_t > 5:  r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                    p = p - m / (1 - beta1^t) * lr * (sqrt(1 - beta2^t) / (sqrt(v) + eps)) * r
        else:       p = p - m / (1 - beta1^t) * lr

    The adaptive rate is evaluated as PyTorch evaluates ``float / tensor``: the
    reciprocal of sqrt(v) + eps times the scalar.
    """
    v.check_threads(n_threads)
    step, lr, beta1, beta2, eps, weight_decay = _adam_family_options(
        step, lr, betas, eps, weight_decay)
    params, grads = _check_buffers(params, grads, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    v.state_vector(exp_avg, "exp_avg", params, "by RAdam")
    v.state_vector(exp_avg_sq, "exp_avg_sq", params, "by RAdam")

    g = _decay(params, grads, lr, weight_decay, decoupled_weight_decay)
    _moments(exp_avg, exp_avg_sq, g, beta1, beta2)
    bias_correction1, bias_correction2_sqrt, rect = radam_step_scalars(beta1, beta2, step)
    update = exp_avg / bias_correction1 * lr
    if rect > 0:
        update = update * (np.reciprocal(np.sqrt(exp_avg_sq) + eps) * bias_correction2_sqrt)
        update = update * rect
    params -= update
    return params


def rprop_options(etas: Any, step_sizes: Any) -> Tuple[float, float, float, float]:
    """(etaminus, etaplus, min step size, max step size), checked."""
    etaminus, etaplus = v.check_pair(etas, "etas", "(etaminus, etaplus)")
    size_min, size_max = v.check_pair(step_sizes, "step_sizes",
                                      "(min_step_size, max_step_size)")
    etaminus = v.check_float(etaminus, "etas[0]", 0.0, 1.0, low_open=True, high_open=True)
    etaplus = v.check_float(etaplus, "etas[1]", 1.0, low_open=True)
    size_min = v.check_float(size_min, "step_sizes[0]", 0.0)
    size_max = v.check_float(size_max, "step_sizes[1]", size_min)
    return etaminus, etaplus, size_min, size_max


def _sign(x):
    """torch.sign: +1, -1, or 0 (for zeros of either sign and for NaN)."""
    return (x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)


def rprop_update(params: FloatArray, grads: ArrayLike, prev: FloatArray,
                 step_size: FloatArray, *, etas: Tuple[float, float] = (0.5, 1.2),
                 step_sizes: Tuple[float, float] = (1e-6, 50), n_threads: Threads = None
                 ) -> FloatArray:
    """Rprop (resilient backpropagation: only the gradient's sign is used).

    ::

        s = sign(g * prev)                   (0 for NaN, as torch.sign)
        f = etaplus (s > 0), etaminus (s < 0), 1 (s = 0)
        step_size = clip(step_size * f, step_sizes[0], step_sizes[1])
        g = 0 where f == etaminus            (no move after a sign change)
        p = p - sign(g) * step_size
        prev = g

    ``step_size`` starts at torch.optim.Rprop's lr (see ``optimizer_state``); 0 <
    etas[0] < 1 < etas[1] and 0 <= step_sizes[0] <= step_sizes[1] (PyTorch does not
    check the step sizes).  The comparison f == etaminus is made in the buffers' dtype,
    as PyTorch makes it.
    """
    v.check_threads(n_threads)
    etaminus, etaplus, size_min, size_max = rprop_options(etas, step_sizes)
    params, grads = _check_buffers(params, grads, prev=prev, step_size=step_size)
    v.state_vector(prev, "prev", params, "by Rprop")
    v.state_vector(step_size, "step_size", params, "by Rprop")

    dtype = params.dtype.type
    with np.errstate(invalid="ignore"):
        s = _sign(grads * prev)
    factor = np.where(s > 0, dtype(etaplus), np.where(s < 0, dtype(etaminus), dtype(1)))
    step_size *= factor
    np.clip(step_size, dtype(size_min), dtype(size_max), out=step_size)
    g = np.where(factor == dtype(etaminus), dtype(0), grads)
    params += -_sign(g) * step_size
    prev[...] = g
    return params
