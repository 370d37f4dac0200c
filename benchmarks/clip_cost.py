"""Interleaved timing of one 784-256-128-10 batch-32 Adam train_step (float32, native),
without clipping, with clip_norm and with clip_value: medians and their ratios.

    python benchmarks/clip_cost.py N_THREADS ROUNDS

The three steps alternate in every round, so a busy machine slows them alike (asv's
TimeClippedStep times them in separate processes, minutes apart).
"""
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info

import gdcore as gd
nt = int(sys.argv[1]) if len(sys.argv) > 1 else 1
rng = np.random.default_rng(1)
X = rng.standard_normal((32, 784)).astype(np.float32)
T = rng.integers(0, 10, 32)
cases = {}
for name, clip in (("none", None), ("clip_norm", {"clip_norm": 1e-3}),
                   ("clip_value", {"clip_value": 1e-5})):
    net = gd.MLP([784, 256, 128, 10], activation="relu", loss="cross_entropy",
                 dtype="float32", seed=0)
    opt = gd.optim.Adam(lr=1e-3)
    if clip:
        opt.set_clipping(**clip)
    for _ in range(5):
        net.train_step(X, T, opt, n_threads=nt)
    cases[name] = (net, opt)
times = {k: [] for k in cases}
for r in range(int(sys.argv[2]) if len(sys.argv) > 2 else 600):
    for k, (net, opt) in cases.items():
        t0 = time.perf_counter()
        net.train_step(X, T, opt, n_threads=nt)
        times[k].append(time.perf_counter() - t0)
med = {k: float(np.median(v)) for k, v in times.items()}
blas = [(i["internal_api"], i.get("architecture")) for i in threadpool_info()
        if i["user_api"] == "blas"]
print(f"n_threads={nt} blas={blas} " + " ".join(f"{k}={v*1e3:.3f}ms" for k, v in med.items())
      + f" norm/none={med['clip_norm']/med['none']:.3f}"
      + f" value/none={med['clip_value']/med['none']:.3f}")
