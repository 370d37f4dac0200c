"""Scaling of data-parallel training: one epoch of 784-256-128-10 on 60,000 x 784.

    mpirun -n 1 python benchmarks/mpi_scaling.py            # also times the 1-process fit
    mpirun -n 2 python benchmarks/mpi_scaling.py            # (root: --allow-run-as-root)

Synthetic float32 data (every rank makes the same array and keeps its shard, as
``gdcore.distributed.shard`` splits it), ReLU, softmax + cross-entropy, Adam(1e-3),
global batches of ``--batch``.  Each rank runs ``--threads`` OpenMP/BLAS threads.
Rank 0 prints one JSON line:

* ``epoch_s``: median over ``--repeat`` epochs of ``gd.distributed.fit`` (the slowest
  rank's time), and ``samples_per_s`` = N / epoch_s;
* ``fit_epoch_s`` (with one rank only): the same epoch by the 1-process ``net.fit``
  (one native call per epoch), the baseline of the efficiency;
* per step, medians over ``--steps`` repetitions: ``local_step_ms`` (gather of this
  rank's rows + forward + backward), ``allreduce_ms`` (the Allreduce of the
  ``n_params + 1`` buffer alone), ``optimizer_ms`` (the Adam update).
"""
import argparse
import json
import time

import numpy as np
from mpi4py import MPI

import gdcore as gd
from gdcore.distributed import fit, shard

SIZES = [784, 256, 128, 10]


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    gd.set_num_threads(args.threads)
    from threadpoolctl import threadpool_info, threadpool_limits
    limits = threadpool_limits(limits=args.threads)

    rng = np.random.default_rng(3)
    X = rng.random((args.n, SIZES[0]), dtype=np.float32)
    T = np.random.default_rng(4).integers(0, 10, args.n)
    part = shard(args.n, size, rank)
    X_local, T_local = np.ascontiguousarray(X[part]), T[part]
    del X

    net = gd.MLP(SIZES, activation="relu", seed=0)
    optimizer = gd.optim.Adam(lr=1e-3)
    fit(net, X_local[:args.batch], T_local[:args.batch], comm=comm, epochs=1,
        batch_size=args.batch, optimizer=optimizer)                  # warm-up

    def epoch():
        comm.Barrier()
        started = time.perf_counter()
        fit(net, X_local, T_local, comm=comm, epochs=1, batch_size=args.batch,
            optimizer=optimizer)
        return comm.allreduce(time.perf_counter() - started, op=MPI.MAX)

    epoch_s = float(np.median([epoch() for _ in range(args.repeat)]))

    local_rows = np.arange(0, min(args.batch // size, X_local.shape[0]), dtype=np.int64)
    X_buf = np.empty((local_rows.size, SIZES[0]), np.float32)
    T_buf = np.empty(local_rows.size, np.int64)

    def local_step():
        Xb = np.take(X_local, local_rows, axis=0, out=X_buf)
        Tb = np.take(T_local, local_rows, axis=0, out=T_buf)
        net._step(Xb, Tb, None, True, 0.0, 0.0, 0.0, 0, None)

    buffer = np.zeros(net.n_params + 1, np.float32)

    def allreduce():
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)

    grads = np.zeros_like(net.params)
    sgd_like = gd.optim.Adam(lr=0.0)

    def optimizer_step():
        sgd_like.step(net.params, grads)

    comm.Barrier()
    local_ms = 1e3 * median_time(local_step, args.steps)
    comm.Barrier()
    allreduce_ms = 1e3 * median_time(allreduce, args.steps)
    optimizer_ms = 1e3 * median_time(optimizer_step, args.steps)
    result = {"ranks": size, "threads_per_rank": args.threads, "n": args.n,
              "batch": args.batch, "n_params": net.n_params, "epoch_s": epoch_s,
              "samples_per_s": args.n / epoch_s, "local_step_ms": local_ms,
              "allreduce_ms": allreduce_ms, "optimizer_ms": optimizer_ms,
              "blas": sorted({(p["internal_api"], p.get("architecture"))
                              for p in threadpool_info() if p["user_api"] == "blas"})}
    if size == 1:
        net1 = gd.MLP(SIZES, activation="relu", seed=0)
        opt1 = gd.optim.Adam(lr=1e-3)
        net1.fit(X_local[:args.batch], T_local[:args.batch], epochs=1,
                 batch_size=args.batch, optimizer=opt1, progress=False)
        result["fit_epoch_s"] = median_time(
            lambda: net1.fit(X_local, T_local, epochs=1, batch_size=args.batch,
                             optimizer=opt1, progress=False), args.repeat)
        result["fit_samples_per_s"] = args.n / result["fit_epoch_s"]
    limits.restore_original_limits()
    if rank == 0:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
