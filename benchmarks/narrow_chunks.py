"""Narrow layers' products with and without row chunks, interleaved in one process.

    python benchmarks/narrow_chunks.py [--rounds 15]

gdcore splits a narrow layer's Y = X @ W and dW = X^T @ D into row chunks that
OpenBLAS's small-matrix kernels take (``gemm_row_chunks`` in gdcore/_blas.pxd) when
scipy's OpenBLAS runs a SkylakeX-family core.  This times the 784-15-10 training step
of the step grid (sigmoid, softmax output, SGD) and the 784-15 layer's forward and
backward kernels with chunks (1e6 multiply-adds each) and without (one product), on
1 and 2 threads, switching the setting between rounds so both see the same load:
us per call, median over rounds, and off/on (above 1: the chunks pay).  It forces
the setting either way, so it also shows what chunks would do on a core where gdcore
leaves them off (Haswell, Zen: run it under ``OPENBLAS_CORETYPE=Haswell``).
"""
import argparse
import pathlib
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from benchmarks.bench_step_grid import blas_limits, make_case  # noqa: E402


def _per_call(call, calls):
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def _cases(dtype, batch, n_threads):
    import gdcore.kernels as K
    net, opt, X, T = make_case("native", "784-15-10_sigmoid", batch, "sgd", dtype)
    rng = np.random.default_rng(0)
    W = rng.uniform(-0.05, 0.05, (784, 15)).astype(dtype)
    b = np.zeros(15, dtype)
    Y = np.empty((batch, 15), dtype)
    dY = rng.uniform(-1, 1, (batch, 15)).astype(dtype)
    dW, db, delta = np.empty_like(W), np.empty_like(b), np.empty_like(dY)
    return {
        "train_step": lambda: net.train_step(X, T, opt, n_threads=n_threads),
        "dense_forward": lambda: K.dense_forward(X, W, b, "sigmoid", out=Y,
                                                 n_threads=n_threads),
        "dense_backward": lambda: K.dense_backward(
            X, W, Y, dY, "sigmoid", compute_dX=False, dW_out=dW, db_out=db,
            delta_out=delta, n_threads=n_threads),
    }


def main():
    from threadpoolctl import threadpool_info

    from gdcore import _blas
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15,
                        help="timed rounds per variant (>= 1; default 15)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    core, default = _blas.small_gemm_chunks()
    for info in threadpool_info():
        if info["internal_api"] == "openblas":
            print(f"# {info['filepath'].rsplit('/', 1)[-1]}: {info.get('architecture')}")
    print(f"# scipy's OpenBLAS core {core}; gdcore's default chunk: {default} "
          "multiply-adds (0: none)")
    print(f"{'case':44s} {'chunks':>9s} {'one GEMM':>9s} {'off/on':>7s}")
    blas_limits(1)
    try:
        for dtype in ("float32", "float64"):
            for batch in (128, 512, 2048):
                for n_threads in (1, 2):
                    for name, call in _cases(dtype, batch, n_threads).items():
                        times = {"on": [], "off": []}
                        for setting in ("on", "off"):        # warm up, size the blocks
                            _blas.set_small_gemm_madds(_blas.SMALL_GEMM_MADDS
                                                       if setting == "on" else 0)
                            calls = max(1, int(0.01 / _per_call(call, 3)))
                        for _ in range(args.rounds):
                            for setting in ("on", "off"):
                                _blas.set_small_gemm_madds(_blas.SMALL_GEMM_MADDS
                                                           if setting == "on" else 0)
                                times[setting].append(_per_call(call, calls))
                        on, off = (statistics.median(times[k]) * 1e6 for k in ("on", "off"))
                        label = f"{name} {dtype} B{batch} {n_threads}T"
                        print(f"{label:44s} {on:9.1f} {off:9.1f} {off / on:7.2f}",
                              flush=True)
    finally:
        _blas.set_small_gemm_madds(default)


if __name__ == "__main__":
    main()
