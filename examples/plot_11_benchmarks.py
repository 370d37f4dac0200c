"""
Benchmarks: native against reference
====================================

``gdcore bench`` measures every case of :mod:`gdcore.bench`; here two of them, with
:func:`gdcore.bench.measure` (median microseconds per call, repeated until the spread
of the samples is small).  Figures from a documentation build are indicative only:
the build machine is usually busy.  For measurements to keep, use the asv suite in
``benchmarks/``.
"""
import numpy as np

import gdcore as gd

rng = np.random.default_rng(0)
X = rng.standard_normal((32, 784)).astype(np.float32)
y = rng.integers(0, 10, 32)
rows = []
for backend in ("native", "reference"):
    net = gd.MLP([784, 15, 10], activation="sigmoid", seed=0, backend=backend)
    opt = gd.optim.SGD(lr=0.1)
    median, spread = gd.bench.measure(lambda: net.train_step(X, y, opt), quick=True)
    rows.append((backend, median, spread))
    print(f"train_step 784-15-10, batch 32, {backend:9s}: {median:8.1f} us "
          f"(spread {spread:.0%})")
print(f"speedup: {rows[1][1] / rows[0][1]:.1f}x")
