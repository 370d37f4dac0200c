"""
Native kernels and their NumPy twins
====================================

Every native kernel in :mod:`gdcore.kernels` has a twin of the same name and signature in
:mod:`gdcore.reference`.  A dense layer's forward pass and an Adam update, side by
side: the elementwise update is bitwise equal, the GEMM-based output equal to rounding.
"""
import numpy as np

import gdcore as gd

rng = np.random.default_rng(0)
X = rng.standard_normal((64, 784)).astype(np.float32)
W = (rng.standard_normal((784, 15)) * 0.05).astype(np.float32)
b = np.zeros(15, np.float32)
native = gd.kernels.dense_forward(X, W, b, "sigmoid")
twin = gd.reference.dense_forward(X, W, b, "sigmoid")
print("dense_forward, largest difference:", float(np.max(np.abs(native - twin))))

p = rng.standard_normal(1000).astype(np.float32)
g = rng.standard_normal(1000).astype(np.float32)
p_native, p_twin = p.copy(), p.copy()
state_native = gd.kernels.optimizer_state("adam", p_native)
state_twin = gd.reference.optimizer_state("adam", p_twin)
gd.kernels.adam_update(p_native, g, **state_native, step=1)
gd.reference.adam_update(p_twin, g, **state_twin, step=1)
print("adam_update bitwise equal:", np.array_equal(p_native, p_twin))
print("instruction-set build in use:", gd.kernels.ISA)
