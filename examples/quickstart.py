"""A short tour of gdcore's NumPy reference: a dense layer, a loss, backprop checked
against numerical gradients, and a few Adam steps."""
import numpy as np

import gdcore as gd
from gdcore import reference as ref

rng = np.random.default_rng(0)
X = rng.standard_normal((8, 4))
T = rng.integers(0, 3, size=8)
W = rng.standard_normal((4, 3)) * 0.5
b = np.zeros(3)

gd.show_config()
Y = ref.dense_forward(X, W, b, "softmax")
loss, D = ref.loss_delta("cross_entropy", Y, T)
_, dW, db = ref.dense_backward(X, W, Y, D, "identity", compute_dX=False)

numeric = gd.numerical_gradient(
    lambda w: ref.loss("cross_entropy", ref.dense_forward(X, w, b, "softmax"), T), W)
print(f"loss {loss:.4f}; max |analytic - numerical| dW = {np.abs(dW - numeric).max():.2e}")

params = np.concatenate([W.ravel(), b])
state = ref.optimizer_state("adam", params)
for step in range(1, 201):
    W_, b_ = params[:12].reshape(4, 3), params[12:]
    Y = ref.dense_forward(X, W_, b_, "softmax")
    loss, D = ref.loss_delta("cross_entropy", Y, T)
    _, dW, db = ref.dense_backward(X, W_, Y, D, "identity", compute_dX=False)
    ref.adam_update(params, np.concatenate([dW.ravel(), db]), **state, step=step, lr=0.05)
print(f"after 200 Adam steps: loss {loss:.4f}")
