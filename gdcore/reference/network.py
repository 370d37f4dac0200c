"""NumPy twin of the native network step (``gdcore/_network.pxi``): the step, its
dropout masks and its input-noise stream.

Random numbers come from a counter-based hash of (step seed, stream, element index),
splitmix64: dropout of layer l draws from stream l, the input noise from stream
``NOISE_STREAM`` (``gdcore._constants``), so they do not depend on the thread count and
this module reproduces the native masks bit for bit (the noise up to libm rounding).
"""
from typing import TYPE_CHECKING, Any, Optional, cast

import numpy as np

from .. import _constants
from .. import _validation as v
from .._typing import FloatArray, NDArray
from . import optimizers
from .activations import activation, activation_backward
from .dense import dense_backward, dense_forward
from .losses import loss_delta, weighted_loss_delta

if TYPE_CHECKING:
    from ..network import MLP
    from ..optim import Optimizer

__all__ = ["network_step", "dropout_mask", "gaussian_noise"]

NOISE_STREAM = _constants.NOISE_STREAM
_MASK64 = (1 << 64) - 1
_U64 = np.uint64


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


def _splitmix64_int(x):
    """splitmix64 of one Python int (mod 2^64)."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _splitmix64(x):
    """splitmix64 of a uint64 array (wrapping arithmetic)."""
    z = x + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def _stream_bits(seed, stream, n, step=1, offset=0):
    key = _splitmix64_int(seed + stream)
    counters = (np.arange(n, dtype=np.uint64) * _U64(step) + _U64(offset) + _U64(key))
    return _splitmix64(counters)


def dropout_mask(seed: int, layer: int, n: int, keep: float) -> NDArray[np.bool_]:
    """The keep-mask of ``n`` elements of layer ``layer``'s output for a step seed:
    element i is kept when the top 53 bits of splitmix64(key + i) fall below
    keep * 2^53 (key = splitmix64(seed + layer))."""
    return (_stream_bits(seed, layer, n) >> _U64(11)) < _U64(int(keep * 2.0 ** 53))


def gaussian_noise(seed: int, n: int) -> NDArray[np.float64]:
    """``n`` standard normal numbers for a step seed, by Box-Muller from hashed
    uniforms (the native input noise computes the same, up to libm rounding)."""
    u1 = ((_stream_bits(seed, NOISE_STREAM, n, step=2) >> _U64(11)) + _U64(1)).astype(np.float64)
    u2 = (_stream_bits(seed, NOISE_STREAM, n, step=2, offset=1) >> _U64(11)).astype(np.float64)
    u1 *= 2.0 ** -53
    u2 *= 2.0 ** -53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2)


def network_step(net: "MLP", X: FloatArray, T: NDArray[Any], optimizer: Optional["Optimizer"],
                 training: bool, l1: float, l2: float, noise: float, seed: int,
                 sample_weight: Optional[FloatArray] = None) -> float:
    """One training step of the MLP ``net`` on checked X, T, as the native
    ``NetworkWorkspace.step`` computes it, with the kernels of this package.

    The forward pass adds ``noise * gaussian_noise(seed, ...)`` to the inputs and applies
    inverted dropout with ``dropout_mask(seed, layer, ...)`` when ``training``; the loss
    and its delta (sample-weighted when ``sample_weight`` is given) go back through the
    layers into ``net.grads``; the l2 and l1 penalties act on the weights only (never
    the biases) and are added to the returned loss; then, with an ``optimizer``, its
    update runs on ``net.params`` and its step count advances.  ``optimizer`` None
    computes only the gradient.

    Returns
    -------
    float
        The batch loss (with the penalties).
    """
    if training and noise:
        X = X + (noise * gaussian_noise(seed, X.size).reshape(X.shape)).astype(net.dtype)
    inputs, outputs, pre = [], [], {}
    layer_in = X
    for l, layer in enumerate(net.layers):
        inputs.append(layer_in)
        if v.activation_spec(layer.activation)[0] in v.NEEDS_PREACTIVATION:
            # gelu, silu: the derivative needs the pre-activation, kept for backward
            pre[l] = dense_forward(layer_in, layer.W, layer.b, "identity")
            Y = activation(layer.activation, pre[l])
        else:
            Y = dense_forward(layer_in, layer.W, layer.b, layer.activation)
        outputs.append(Y)
        keep = net.keep_probabilities[l]
        if training and keep < 1:
            mask = dropout_mask(seed, l, Y.size, keep).reshape(Y.shape)
            layer_in = np.where(mask, Y * net.dtype.type(1 / keep), 0).astype(net.dtype)
        else:
            layer_in = Y
    if sample_weight is None:
        loss, G = loss_delta(net.loss_spec, outputs[-1], T)
    else:
        loss, G = weighted_loss_delta(net.loss_spec, outputs[-1], T, sample_weight)
    for l in range(len(net.layers) - 1, -1, -1):
        layer = net.layers[l]
        keep = net.keep_probabilities[l]
        if training and keep < 1:
            mask = dropout_mask(seed, l, G.size, keep).reshape(G.shape)
            G = np.where(mask, G * net.dtype.type(1 / keep), 0).astype(net.dtype)
        act = net.output_backward if l == len(net.layers) - 1 else layer.activation
        if v.activation_spec(act)[0] in v.NEEDS_PREACTIVATION:
            G = activation_backward(act, pre[l], G)
            act = "identity"
        dX, _, _ = dense_backward(inputs[l], layer.W, outputs[l], G, act,
                                  compute_dX=l > 0, dW_out=layer.dW, db_out=layer.db)
        G = cast(FloatArray, dX)        # None after the first layer, where the loop ends
    if l1 or l2:
        for layer in net.layers:
            W = layer.W.astype(np.float64)
            loss += 0.5 * l2 * float(np.sum(W * W)) + l1 * float(np.sum(np.abs(W)))
            if l2:
                layer.dW[...] = layer.dW + net.dtype.type(l2) * layer.W
            if l1:
                layer.dW[...] = layer.dW + net.dtype.type(l1) * np.sign(layer.W)
    if optimizer is not None:
        optimizer.prepare(net.params)
        _update(net, optimizer)
        optimizer.step_count += 1
    return loss


def _update(net, optimizer):
    """The optimizer's update of ``net.params`` with its clipping and parameter groups,
    as the native pass does: the gradient of the parameters that are not frozen is
    clipped in place (by its norm over them, or by value), then each segment is
    updated with its group's hyperparameters."""
    clip, segments, rows = optimizer.native_options(net.param_layout)
    step = optimizer.step_count + 1
    update = getattr(optimizers, optimizer.kernel)
    if segments is None:
        segments, rows = np.array([[0, net.params.size, 0]]), [None]
    active = np.zeros(net.params.size, dtype=bool)
    for start, stop, frozen in segments:
        active[start:stop] = not frozen
    if clip is not None:
        mode, value, norm_type = clip
        g = net.grads
        if mode == _constants.CLIP_MODES.index("norm"):
            total = optimizers.grad_norm(g, norm_type, active)
            coef = optimizers.clip_coef(value, total, g.dtype)
            if coef != 1:
                with np.errstate(invalid="ignore"):
                    g[active] = g[active] * g.dtype.type(coef)
        else:
            c = g.dtype.type(value)
            with np.errstate(invalid="ignore"):
                g[active] = np.clip(g[active], -c, c)
    for (start, stop, frozen), row in zip(segments, rows):
        if frozen or start == stop:
            continue
        kwargs = (optimizer._kernel_kwargs(step) if row is None
                  else optimizer.group_kwargs(step, row))
        part = {k: buf[start:stop] for k, buf in optimizer.state.items()}
        update(net.params[start:stop], net.grads[start:stop], **part, **kwargs)
