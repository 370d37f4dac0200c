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
from typing import Any, Dict, Optional, Tuple, cast

import numpy as np

from .. import _constants
from .. import _validation as v
from .._typing import ArrayLike, FloatArray, Threads

__all__ = ["optimizer_state", "sgd_update", "adagrad_update", "adadelta_update",
           "rmsprop_update", "adam_update", "adamw_update"]


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
                    initial_accumulator_value: float = 0.0) -> Dict[str, FloatArray]:
    """Fresh state buffers for optimizer ``name``, keyed by the update's argument names.

    ``sgd``: momentum_buffer (when momentum != 0); ``adagrad``: state_sum filled with
    initial_accumulator_value; ``adadelta``: square_avg, acc_delta; ``rmsprop``:
    square_avg, momentum_buffer (momentum > 0), grad_avg (centered); ``adam``/``adamw``:
    exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad).  All zeros of params' dtype except
    state_sum.  Use as ``adam_update(params, grads, **state, step=1)``.  The names and
    their order are those of ``gdcore._constants.OPTIMIZER_STATE`` (AdamW keeps Adam's).
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
    fill = 0.0
    if "state_sum" in slots:
        fill = v.check_float(initial_accumulator_value, "initial_accumulator_value", 0.0)
    return {key: np.full_like(params, fill if key == "state_sum" else 0.0)
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
    step = _check_step(step)
    lr = v.check_float(lr, "lr", 0.0)
    beta1, beta2 = v.check_betas(betas)
    eps = v.check_float(eps, "eps", 0.0, low_open=True)
    weight_decay = v.check_float(weight_decay, "weight_decay", 0.0)
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
