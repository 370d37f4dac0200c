"""Adam, NAdam, Adamax, RAdam and Rprop: one steady-state step against torch.optim,
outside asv.

    python benchmarks/optimizers_vs_torch.py

Prints ns/element (median of repeated calls) of the native update, its NumPy reference,
torch.optim's single-tensor (``foreach=False``) and multi-tensor (``foreach=True``)
paths and, for Adam, its fused CPU kernel (``fused=True``; the other four have none:
"-"), for 1e6 and 1e7 float32/float64 elements on 1 and 2 threads.  The timed step is
step 2 (RAdam: step 10, a rectified step).  Needs PyTorch.  Run it once as is and once
under ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` (the BLAS kernels in use are
printed; the updates themselves call no BLAS).
"""
import time

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from gdcore import kernels, reference

CASES = {"Adam": "adam", "NAdam": "nadam", "Adamax": "adamax", "RAdam": "radam", "Rprop": "rprop"}
TIMED_STEP = {"radam": 10}


def median_time(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def gdcore_step(module, name, dtype, n, n_threads):
    rng = np.random.default_rng(1)
    params = rng.standard_normal(n).astype(dtype)
    grads = rng.standard_normal(n).astype(dtype)
    state = reference.optimizer_state(name, params)
    update = getattr(module, f"{name}_update")
    kwargs = {} if name == "rprop" else {"step": 1}
    update(params, grads, **state, **kwargs, n_threads=n_threads)
    if name != "rprop":
        kwargs["step"] = TIMED_STEP.get(name, 2)
    return lambda: update(params, grads, **state, **kwargs, n_threads=n_threads)


def torch_step(cls, dtype, n, n_threads, mode):
    """torch.optim's step on one tensor: mode "loop", "foreach" or "fused" (None when
    the optimizer has no such path)."""
    torch.set_num_threads(n_threads)
    rng = np.random.default_rng(1)
    param = torch.nn.Parameter(torch.tensor(rng.standard_normal(n).astype(dtype)))
    param.grad = torch.tensor(rng.standard_normal(n).astype(dtype))
    if mode == "fused":
        try:
            opt = getattr(torch.optim, cls)([param], fused=True)
        except (RuntimeError, TypeError, ValueError):     # no fused path for cls
            return None
    else:
        opt = getattr(torch.optim, cls)([param], foreach=mode == "foreach")
    for _ in range(TIMED_STEP.get(CASES[cls], 2) - 1):
        opt.step()
    return opt.step


def main():
    print("gdcore ISA", kernels.ISA, "torch", torch.__version__)
    print([(i["internal_api"], i.get("architecture"), i["num_threads"])
           for i in threadpool_info()])
    print(f"{'optimizer':9} {'dtype':8} {'n':>9} {'thr':>3} {'native':>8} {'reference':>9} "
          f"{'torch-loop':>10} {'torch-foreach':>13} {'torch-fused':>11}   (ns/element)")
    for cls, name in CASES.items():
        for dtype in (np.float32, np.float64):
            for n in (10**6, 10**7):
                for nt in (1, 2):
                    with threadpool_limits(nt):
                        row = [median_time(gdcore_step(kernels, name, dtype, n, nt), 7),
                               median_time(gdcore_step(reference, name, dtype, n, nt), 3)]
                        for mode in ("loop", "foreach", "fused"):
                            step = torch_step(cls, dtype, n, nt, mode)
                            row.append(None if step is None else median_time(step, 5))
                    print(f"{cls:9} {np.dtype(dtype).name:8} {n:>9} {nt:>3} "
                          + " ".join("        -" if t is None else f"{t / n * 1e9:>9.2f}"
                                     for t in row), flush=True)


if __name__ == "__main__":
    main()
